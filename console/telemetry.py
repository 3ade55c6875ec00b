"""What the console knows about a core, folded from bus payloads (no Textual, no MQTT here).

Metrics, events and `history` replies all carry per-iteration numbers under the engine's own
names (core/stages/assemble.py TABLE, judge.summarize, core/stages/probe.summarize,
evals/bfcl.summarize, evals/bfcl_metrics.v3_scores); `absorb_*` pick them out wherever they arrive,
so a console that attaches late and asks the core for its history shows the same tables as one that
watched the whole run.

The run's own metric is `heldout`: correct/total per category on the BFCL-v3 subset the run
evaluates every iteration (iteration 0 is the base model). The BFCL-v3 Overall beside it counts every
category that was not evaluated as 0, so over a subset it is `partial` and reads far lower than the
subset's accuracy; the panels label it so.
"""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

from core.busproto import Event, Metrics

SERIES = {  # sparkline key -> (label, streams it is read from, field names tried in order)
    "tok_s": ("tok/s", ("throughput", "train"), ("tokens_per_s", "tok_s")),
    "samples_s": ("samples/s", ("throughput",), ("samples_per_s", "samples_s")),
    "loss": ("loss", ("train",), ("loss",)),
    "reward": ("reward", ("train",), ("reward_mean", "reward")),
}
BFCL_COLUMNS = (("Overall", "overall"), ("Non-Live AST", "non_live_ast"), ("Live", "live"),
                ("Multi-Turn", "multi_turn"), ("Relevance", "relevance"), ("Irrelevance", "irrelevance"))
ACE_COLUMNS = (("Normal", "normal"), ("Special", "special"), ("Agent", "agent"), ("Overall", "overall"))
COMPOSITION = ("error_seeds", "expansions", "high_ppl", "fresh_seeds", "topped_up", "total")
VERDICTS = ("PRED_WRONG", "LABEL_WRONG", "BOTH_CORRECT", "BOTH_WRONG", "JUDGE_FAILED")
SPARK_POINTS = 120
EVENT_KEEP = 500
# The categories the BFCL-v3 Overall averages over (evals/bfcl_data.CATEGORIES: the console app imports
# nothing from evals, so tests/test_console_link.py checks that the two agree).
BFCL_V3_CATEGORY_COUNT = 17


@dataclass
class HeldOut:
    """One iteration's eval on the run's held-out BFCL-v3 subset (evals/bfcl.summarize's
    `per_category`: {category: {"correct", "total", "error_types": {type: count}}}) and the v3
    Overall computed over it."""
    per_category: dict[str, dict[str, Any]]
    overall: float | None = None

    @property
    def correct(self) -> int:
        return sum(c["correct"] for c in self.per_category.values())

    @property
    def total(self) -> int:
        return sum(c["total"] for c in self.per_category.values())

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.total if self.total else None

    @property
    def partial(self) -> bool:
        """The Overall left categories out (they count 0 in it): not comparable to a leaderboard's."""
        return len(self.per_category) < BFCL_V3_CATEGORY_COUNT

    @property
    def categories_label(self) -> str:
        """How the Overall beside it is labelled: "partial, 4/17 categories" or "17/17 categories"."""
        n = f"{len(self.per_category)}/{BFCL_V3_CATEGORY_COUNT} categories"
        return f"partial, {n}" if self.partial else n

    def top_errors(self, n: int) -> list[tuple[str, str, int]]:
        """The `n` most frequent (category, error type, count) of the failing entries."""
        found = [(cat, et, k) for cat, c in self.per_category.items() for et, k in c["error_types"].items()]
        return sorted(found, key=lambda f: (-f[2], f[0], f[1]))[:n]


@dataclass
class ProbeStats:
    """One iteration's probe of D_j (core/stages/probe.summarize): mastered/total per sample kind,
    and why the mismatched replies missed (one failure class each, core/failures.py)."""
    samples: int
    mastered: int
    by_kind: dict[str, dict[str, int]]  # kind -> {"mastered", "total"}
    failure_classes: dict[str, int]  # class -> count (zeros included when the core sends them)
    by_kind_failures: dict[str, dict[str, int]]  # kind -> class -> count
    unclassified: int = 0  # mismatched records without a class (written before classes existed)


@dataclass
class LogLine:
    ts: float
    name: str
    text: str
    severity: str = "information"  # information | warning | error

    def render(self) -> str:
        return f"{time.strftime('%H:%M:%S', time.localtime(self.ts))} {self.name:15s} {self.text}"


@dataclass
class Telemetry:
    series: dict[str, deque] = field(default_factory=lambda: {k: deque(maxlen=SPARK_POINTS) for k in SERIES})
    series_stage: dict[str, str] = field(default_factory=dict)
    accuracy: dict[int, dict[str, dict[str, float]]] = field(default_factory=dict)  # iter -> bench -> scores
    composition: dict[int, dict[str, int]] = field(default_factory=dict)  # iter j -> composition of D_{j+1}
    judge: dict[int, dict[str, Any]] = field(default_factory=dict)  # iter -> {verdicts, label_corrections}
    heldout: dict[int, HeldOut] = field(default_factory=dict)  # iter -> the run's eval on its BFCL subset
    probe: dict[int, ProbeStats] = field(default_factory=dict)  # iter -> probe mastery and failure classes
    acebench_skipped: dict[int, str] = field(default_factory=dict)  # iter -> why ACEBench was not evaluated
    hardware: dict[str, Any] = field(default_factory=dict)
    events: deque = field(default_factory=lambda: deque(maxlen=EVENT_KEEP))
    events_total: int = 0
    metrics_total: int = 0
    configs: dict[str, str] = field(default_factory=dict)
    version: int = 0  # bumped on every change a panel may show
    results_version: int = 0  # bumped only when a per-iteration table changes (panels redraw on it)
    clock: Callable[[], float] = time.time  # stamps console-side notes (fixed in snapshot tests)

    # -- inbound ------------------------------------------------------------------------------------

    def absorb_metrics(self, m: Metrics) -> None:
        data = m.model_dump(exclude={"schema_", "ts"})
        extra = m.model_extra or {}
        self.metrics_total += 1
        self.version += 1
        if m.stream == "hardware":
            self.hardware = {k: v for k, v in data.items() if k not in ("stream",)}
            return
        if m.stream == "accuracy":
            self._absorb_eval(m.iteration, extra.get("benchmark") or extra.get("suite") or "bfcl",
                              extra if isinstance(extra.get("scores"), dict) else {"scores": extra})
            return
        for key, (_, streams, names) in SERIES.items():
            if m.stream in streams:
                v = _first_number(extra, names)
                if v is not None:
                    self.series[key].append(v)
                    if m.stage:
                        self.series_stage[key] = m.stage
        if m.stage == "assemble" or any(k in extra for k in ("error_seeds", "high_ppl")):
            self._absorb_composition(m.iteration, extra)

    def absorb_event(self, e: Event) -> LogLine:
        extra = dict(e.model_extra or {})
        self.events_total += 1
        self.version += 1
        stage, it = extra.get("stage"), extra.get("iteration")
        stats = extra.get("stats") if isinstance(extra.get("stats"), dict) else {}
        if e.event == "dataset_composition" or (e.event == "stage_metrics" and stage == "assemble"):
            self._absorb_composition(it, extra)
        elif e.event == "stage_finished" and isinstance(it, int):
            if stage == "assemble":
                self._absorb_composition(it, stats)
            elif stage == "judge":
                self._absorb_judge(it, stats)
            elif stage == "probe":
                self._absorb_probe(it, stats)
            elif stage == "eval":
                self._absorb_eval(it, stats.get("benchmark", "bfcl"), stats)
        elif e.event == "eval_done":  # the daemon's brief sits at the top level; older payloads nest it in stats
            self._absorb_eval(it, extra.get("benchmark", "bfcl"),
                              extra if isinstance(extra.get("scores"), dict) or not stats else stats)
        line = LogLine(e.ts, e.event, _describe(e.event, extra), _severity(e.event))
        self.events.append(line)
        return line

    def note(self, name: str, text: str, severity: str = "information") -> LogLine:
        """A console-side line in the event log (commands, acks, connection changes)."""
        line = LogLine(self.clock(), name, text, severity)
        self.events.append(line)
        self.events_total += 1
        self.version += 1
        return line

    def absorb_history(self, table: str, rows: Any) -> None:
        """A `history` reply for table=iterations (store documents) fills the per-iteration tables."""
        if table != "iterations":
            return
        for doc in history_rows(rows):
            j = doc.get("iteration")
            if not isinstance(j, int):
                continue
            if isinstance(doc.get("assemble"), dict):
                self._absorb_composition(j, doc["assemble"])
            if isinstance(doc.get("judge"), dict):
                self._absorb_judge(j, doc["judge"])
            if isinstance(doc.get("probe"), dict):
                self._absorb_probe(j, doc["probe"])
            ev = doc.get("eval")
            if isinstance(ev, dict):
                self._absorb_eval(j, ev.get("benchmark", "bfcl"), ev)
            for bench, ev in (doc.get("evals") or {}).items() if isinstance(doc.get("evals"), dict) else ():
                if isinstance(ev, dict):
                    self._absorb_eval(j, bench, ev if isinstance(ev.get("scores"), dict) else {"scores": ev})
        self.version += 1

    # -- internals ----------------------------------------------------------------------------------

    def _absorb_eval(self, it, bench: str, summary: dict) -> None:
        """An eval summary or its brief (stage stats, eval_done, accuracy metric, iteration record):
        scores; for the run's own BFCL eval (not an on-demand one, whose subset the operator chose)
        the held-out per-category counts; why ACEBench was skipped; a nested ACEBench brief."""
        if not isinstance(it, int) or not isinstance(summary, dict):
            return
        ace = _is_acebench(bench)
        self._absorb_scores(it, bench, summary.get("scores") if isinstance(summary.get("scores"), dict) else None)
        held = None if ace or summary.get("on_demand") else heldout_of(summary)
        if held is not None and self.heldout.get(it) != held:
            self.heldout[it] = held
            self.results_version += 1
        skipped = summary.get("acebench_skipped")
        if skipped and isinstance(skipped, (str, int, float)) and self.acebench_skipped.get(it) != str(skipped):
            self.acebench_skipped[it] = str(skipped)
            self.results_version += 1
        if isinstance(summary.get("acebench"), dict):
            self._absorb_eval(it, "acebench", summary["acebench"])

    def _absorb_scores(self, it, bench: str, scores: dict | None) -> None:
        if not isinstance(it, int) or not isinstance(scores, dict):
            return
        bench = "acebench" if _is_acebench(bench) else "bfcl"
        keys = [k for _, k in (ACE_COLUMNS if bench == "acebench" else BFCL_COLUMNS)]
        got = {k: float(scores[k]) for k in keys if _is_number(scores.get(k))}
        had = self.accuracy.get(it, {}).get(bench, {})
        if got and any(had.get(k) != v for k, v in got.items()):
            self.accuracy.setdefault(it, {}).setdefault(bench, {}).update(got)
            self.results_version += 1

    def _absorb_composition(self, it, stats: dict) -> None:
        if not isinstance(it, int):
            return
        got = {k: int(stats[k]) for k in COMPOSITION if _is_number(stats.get(k))}
        had = self.composition.get(it, {})
        if got and any(had.get(k) != v for k, v in got.items()):
            self.composition.setdefault(it, {}).update(got)
            self.results_version += 1

    def _absorb_judge(self, it, stats: dict) -> None:
        if not isinstance(stats.get("verdicts"), dict):
            return
        judge = {"verdicts": {k: int(v) for k, v in stats["verdicts"].items() if _is_number(v)},
                 "label_corrections": int(stats.get("label_corrections") or 0)}
        if self.judge.get(it) != judge:
            self.judge[it] = judge
            self.results_version += 1

    def _absorb_probe(self, it, stats: dict) -> None:
        if not isinstance(it, int) or not (_is_number(stats.get("samples")) and _is_number(stats.get("mastered"))):
            return
        probe = ProbeStats(
            samples=int(stats["samples"]), mastered=int(stats["mastered"]),
            by_kind={k: {"mastered": int(v["mastered"]), "total": int(v["total"])}
                     for k, v in _dicts(stats.get("by_kind")).items()
                     if _is_number(v.get("mastered")) and _is_number(v.get("total"))},
            failure_classes=_counts(stats.get("failure_classes")),
            by_kind_failures={k: _counts(v) for k, v in _dicts(stats.get("by_kind_failures")).items()},
            unclassified=int(stats["unclassified"]) if _is_number(stats.get("unclassified")) else 0)
        if self.probe.get(it) != probe:
            self.probe[it] = probe
            self.results_version += 1


def heldout_of(summary: Any) -> HeldOut | None:
    """The held-out counts of a BFCL-v3 eval summary or brief (None without per-category counts)."""
    if not isinstance(summary, dict):
        return None
    per_category = _per_category(summary.get("per_category"))
    if not per_category:
        return None
    scores = summary.get("scores") if isinstance(summary.get("scores"), dict) else {}
    return HeldOut(per_category, float(scores["overall"]) if _is_number(scores.get("overall")) else None)


def previous(table: dict[int, Any], j: int) -> tuple[int, Any] | tuple[None, None]:
    """The latest entry of a per-iteration table before iteration `j`: (iteration, value)."""
    earlier = [i for i in table if i < j]
    return (max(earlier), table[max(earlier)]) if earlier else (None, None)


def history_rows(result: Any) -> list[dict]:
    """A history reply's rows: a list of dicts, or {"rows": [...]}; anything else is no rows."""
    if isinstance(result, dict):
        result = result.get("rows", [])
    return [r for r in result if isinstance(r, dict)] if isinstance(result, list) else []


def pct(v: float | None) -> str:
    """Scores are fractions in [0, 1] (v3_scores); shown as percent. Values above 1 are percent already."""
    if v is None:
        return "-"
    return f"{v * 100 if v <= 1.0 else v:.1f}"


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v


def _is_acebench(bench) -> bool:
    return str(bench).lower().startswith("ace")


def _dicts(d) -> dict[str, dict]:
    return {str(k): v for k, v in d.items() if isinstance(v, dict)} if isinstance(d, dict) else {}


def _counts(d) -> dict[str, int]:
    return {str(k): int(v) for k, v in d.items() if _is_number(v)} if isinstance(d, dict) else {}


def _per_category(d) -> dict[str, dict[str, Any]]:
    """evals/bfcl.summarize's per_category, checked: categories without counts are left out;
    `error_types` is optional (summaries written before it existed have none)."""
    return {cat: {"correct": int(c["correct"]), "total": int(c["total"]), "error_types": _counts(c.get("error_types"))}
            for cat, c in _dicts(d).items() if _is_number(c.get("correct")) and _is_number(c.get("total"))}


def _first_number(d: dict, names) -> float | None:
    for n in names:
        if _is_number(d.get(n)):
            return float(d[n])
    return None


def _severity(name: str) -> str:
    if name in ("error", "run_failed", "stage_failed", "nan_detected", "fault"):
        return "error"
    if name in ("stalled", "warning", "stage_stopped", "stop_requested", "run_stopped"):
        return "warning"
    return "information"


def _describe(name: str, extra: dict) -> str:
    parts = []
    if "stage" in extra:
        parts.append(f"{extra['stage']}")
    if "iteration" in extra:
        parts.append(f"iter {extra['iteration']}")
    if "wall_s" in extra:
        parts.append(f"{extra['wall_s']}s")
    stats = extra.get("stats")
    if isinstance(stats, dict):
        held = heldout_of(stats)
        if held is not None:
            parts.append(f"held-out {held.correct}/{held.total} ({pct(held.accuracy)}%)")
        if isinstance(stats.get("scores"), dict) and _is_number(stats["scores"].get("overall")):
            parts.append(f"overall {pct(stats['scores']['overall'])}")
            if held is not None and held.partial:
                parts.append(f"({held.categories_label})")
        if _is_number(stats.get("mastered")) and _is_number(stats.get("samples")):
            parts.append(f"mastered {stats['mastered']}/{stats['samples']}")
        if stats.get("acebench_skipped"):
            parts.append(f"acebench skipped: {stats['acebench_skipped']}")
        if isinstance(stats.get("verdicts"), dict):
            parts.append(" ".join(f"{k}={v}" for k, v in stats["verdicts"].items() if v))
        comp = [f"{k}={stats[k]}" for k in COMPOSITION if _is_number(stats.get(k))]
        if comp:
            parts.append(" ".join(comp))
    for k, v in extra.items():
        if k in ("stage", "iteration", "wall_s", "stats", "traceback"):
            continue
        if isinstance(v, (str, int, float, bool)):
            parts.append(f"{k}={v}")
    if extra.get("traceback"):
        last = str(extra["traceback"]).strip().splitlines()[-1:]
        parts.append(f"| {last[0] if last else ''}")
    return " ".join(p for p in parts if p)
