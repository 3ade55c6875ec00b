"""A run's own per-iteration scores: its held-out BFCL-v3 subset (the run's metric, iteration 0 being the
base model) and ACEBench where the run evaluates it, and the iteration with the best held-out score.

The summaries come from each iteration's `eval.done` (core/stages/eval.py), the record the run itself
wrote: the store keys an eval by its configuration, so two runs on the same base model with the same eval
config share their iteration-0 eval id and the store's document names only the newer run. The store's
documents (run_id, iteration) fill in an iteration whose marker is missing. On-demand evals (a subset the
operator chose) are never the run's score.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core.stages.base import is_done

BFCL = "bfcl-v3"
ACEBENCH = "acebench"


def subset_accuracy(summary: dict) -> float | None:
    """Correct / entries over the categories evaluated (the v3 Overall counts missing categories as 0)."""
    per = (summary.get("per_category") or {}).values()
    total = sum(c.get("total", 0) for c in per)
    return sum(c.get("correct", 0) for c in per) / total if total else None


@dataclass(frozen=True)
class IterationScore:
    iteration: int
    bfcl: dict | None = None  # the held-out BFCL-v3 summary (evals/bfcl.summarize)
    acebench: dict | None = None

    @property
    def accuracy(self) -> float | None:
        """The held-out accuracy: correct / total over the run's BFCL-v3 subset."""
        return subset_accuracy(self.bfcl) if self.bfcl else None

    @property
    def counts(self) -> tuple[int, int]:
        per = ((self.bfcl or {}).get("per_category") or {}).values()
        return sum(c.get("correct", 0) for c in per), sum(c.get("total", 0) for c in per)


def _marker_summaries(marker: dict) -> list[dict]:
    """The benchmark summaries of an eval.done marker: {"summaries": {name: summary}}, or (as markers
    of earlier versions were) the BFCL summary itself with ACEBench's nested under "acebench"."""
    if isinstance(marker.get("summaries"), dict):
        return [s for s in marker["summaries"].values() if isinstance(s, dict)]
    nested = marker.get("acebench")
    return [marker, *([nested] if isinstance(nested, dict) else [])]


def iteration_evals(run_id: str, run_dir: Path, iteration: int, store_evals: list[dict]) -> dict[str, dict]:
    """One iteration's own evals by benchmark: the summaries its `eval.done` holds (the store's document
    of a shared eval id may name a newer run), else the store's documents of (run_id, iteration), the
    latest first. On-demand evals are never an iteration's own."""
    found: dict[str, dict] = {}
    marker = is_done(Path(run_dir) / f"iter-{iteration}", "eval")
    for s in _marker_summaries(marker) if marker else []:
        if s.get("benchmark") in (BFCL, ACEBENCH) and not s.get("on_demand"):
            found.setdefault(s["benchmark"], {**s, "run_id": run_id})  # a marker's summary names no run
    own = [s for s in store_evals if s.get("run_id") == run_id and s.get("iteration") == iteration
           and not s.get("on_demand") and s.get("benchmark") in (BFCL, ACEBENCH)]
    for s in sorted(own, key=lambda d: str(d.get("started_at") or ""), reverse=True):
        found.setdefault(s["benchmark"], s)
    return found


def iteration_scores(run_id: str, run_dir: Path, iterations: int, store_evals: list[dict]) -> list[IterationScore]:
    """Iterations 0..`iterations` with their held-out summaries (None where not evaluated).
    `store_evals`: the store's eval documents (ResultStore.list_evals)."""
    out = []
    for j in range(iterations + 1):
        found = iteration_evals(run_id, run_dir, j, store_evals)
        out.append(IterationScore(j, found.get(BFCL), found.get(ACEBENCH)))
    return out


def best_iteration(scores: list[IterationScore], trained: set[int]) -> IterationScore | None:
    """The trained iteration with the highest held-out accuracy, the latest of equal ones (it has seen the
    most training); None when no trained iteration has a held-out score."""
    scored = [s for s in scores if s.iteration in trained and s.accuracy is not None]
    return max(scored, key=lambda s: (s.accuracy, s.iteration), default=None)
