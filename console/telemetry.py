"""What the console knows about a core, folded from bus payloads (no Textual, no MQTT here).

Metrics, events and `history` replies all carry per-iteration numbers under the engine's own
names (core/stages/assemble.py TABLE, judge.summarize, evals/bfcl_metrics.v3_scores); `absorb_*`
pick them out wherever they arrive, so a console that attaches late and asks the core for its
history shows the same tables as one that watched the whole run.
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
    hardware: dict[str, Any] = field(default_factory=dict)
    events: deque = field(default_factory=lambda: deque(maxlen=EVENT_KEEP))
    events_total: int = 0
    metrics_total: int = 0
    configs: dict[str, str] = field(default_factory=dict)
    version: int = 0  # bumped on every change a panel may show
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
            self._absorb_scores(m.iteration, extra.get("benchmark") or extra.get("suite") or "bfcl",
                                extra.get("scores") if isinstance(extra.get("scores"), dict) else extra)
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
            elif stage == "eval" and isinstance(stats.get("scores"), dict):
                self._absorb_scores(it, stats.get("benchmark", "bfcl"), stats["scores"])
        elif e.event == "eval_done":
            scores = extra.get("scores") if isinstance(extra.get("scores"), dict) else stats.get("scores")
            if isinstance(scores, dict):
                self._absorb_scores(it, extra.get("benchmark", "bfcl"), scores)
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
            ev = doc.get("eval")
            if isinstance(ev, dict) and isinstance(ev.get("scores"), dict):
                self._absorb_scores(j, ev.get("benchmark", "bfcl"), ev["scores"])
            for bench, ev in (doc.get("evals") or {}).items() if isinstance(doc.get("evals"), dict) else ():
                if isinstance(ev, dict):
                    self._absorb_scores(j, bench, ev.get("scores", ev))
        self.version += 1

    # -- internals ----------------------------------------------------------------------------------

    def _absorb_scores(self, it, bench: str, scores: dict | None) -> None:
        if not isinstance(it, int) or not isinstance(scores, dict):
            return
        bench = "acebench" if str(bench).lower().startswith("ace") else "bfcl"
        keys = [k for _, k in (ACE_COLUMNS if bench == "acebench" else BFCL_COLUMNS)]
        got = {k: float(scores[k]) for k in keys if _is_number(scores.get(k))}
        if got:
            self.accuracy.setdefault(it, {}).setdefault(bench, {}).update(got)

    def _absorb_composition(self, it, stats: dict) -> None:
        if not isinstance(it, int):
            return
        got = {k: int(stats[k]) for k in COMPOSITION if _is_number(stats.get(k))}
        if got:
            self.composition.setdefault(it, {}).update(got)

    def _absorb_judge(self, it, stats: dict) -> None:
        if not isinstance(stats.get("verdicts"), dict):
            return
        self.judge[it] = {"verdicts": {k: int(v) for k, v in stats["verdicts"].items() if _is_number(v)},
                          "label_corrections": int(stats.get("label_corrections") or 0)}


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


def _first_number(d: dict, names) -> float | None:
    for n in names:
        if _is_number(d.get(n)):
            return float(d[n])
    return None


def _severity(name: str) -> str:
    if name in ("error", "run_failed", "stage_failed", "nan_detected"):
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
        if isinstance(stats.get("scores"), dict) and _is_number(stats["scores"].get("overall")):
            parts.append(f"overall {pct(stats['scores']['overall'])}")
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
