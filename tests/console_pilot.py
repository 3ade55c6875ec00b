"""Shared by the console Pilot tests: running an app on the in-memory link, reading its screen, and a
cpu-demo shaped run (a 4-category held-out BFCL-v3 subset, ACEBench configured but offline)."""
from __future__ import annotations

import asyncio

from console.app import LoopConsole
from console.memlink import FakeCore, MemoryLink

SIZE = (140, 45)


def run(coro, timeout: float = 60.0):
    async def guarded():
        return await asyncio.wait_for(coro, timeout)
    return asyncio.run(guarded())


def make(responder=True, **kw):
    link_kw = {k: kw.pop(k) for k in ("read_only", "ack_timeout", "connected") if k in kw}
    link = MemoryLink(responder=FakeCore() if responder is True else responder or None, **link_kw)
    kw.setdefault("ask_history", False)
    return LoopConsole(link, **kw), link


def header_text(app) -> str:
    return str(app.query_one("#header").render())


def screen_text(app) -> str:
    """What the terminal shows now, line by line, as plain text (the screen's compositor output)."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


# -- a cpu-demo shaped run: a 4-category held-out BFCL-v3 subset, ACEBench configured but offline --------

def _category(correct: int, total: int, errors: dict | None = None) -> dict:
    return {"correct": correct, "total": total, "accuracy": correct / total, "error_types": errors or {}}


HELD_OUT = [  # evals/bfcl.summarize's per_category, iterations 0 (the base model) and 1
    {"simple_python": _category(12, 25, {"value_error:string": 9, "type_error:simple": 4}),
     "multiple": _category(3, 25, {"simple_function_checker:wrong_func_name": 22}),
     "parallel": _category(0, 25, {"parallel_function_checker_no_order:wrong_count": 25}),
     "irrelevance": _category(25, 25)},
    {"simple_python": _category(15, 25, {"value_error:string": 10}),
     "multiple": {"correct": 9, "total": 25, "accuracy": 0.36},  # no error_types: an older summary
     "parallel": _category(2, 25, {"parallel_function_checker_no_order:wrong_count": 23}),
     "irrelevance": _category(20, 25, {"irrelevance_error:decoder_success": 5})},
]
HELD_OUT_OVERALL = (0.067, 0.082)  # v3 Overall over the subset: the 13 other categories count 0
ACE_SKIPPED = ("offline and no eval.acebench_data_dir: run `python -m evals.acebench.fetch DIR` where the "
               "network is reachable, then set eval.acebench_data_dir = DIR")
FAILURE_CLASSES = ("no_call", "unexpected_call", "malformed", "wrong_function", "missing_argument",
                   "extra_argument", "wrong_value")


def _probe(by_kind: dict, failures: dict, by_kind_failures: dict) -> dict:
    """core/stages/probe.summarize's stats (every class present, zeros included)."""
    mastered, total = sum(m for m, _ in by_kind.values()), sum(t for _, t in by_kind.values())
    return {"samples": total, "mastered": mastered, "mismatched": total - mastered, "mean_ppl": 1.9,
            "by_kind": {k: {"mastered": m, "total": t} for k, (m, t) in sorted(by_kind.items())},
            "failure_classes": {c: failures.get(c, 0) for c in FAILURE_CLASSES},
            "by_kind_failures": by_kind_failures, "unclassified": 0}


PROBE_STATS = {
    1: _probe({"simple": (150, 200), "multiple": (80, 120), "parallel": (30, 100), "clarify": (60, 90),
               "refuse": (60, 90)},
              {"no_call": 30, "unexpected_call": 40, "malformed": 10, "wrong_function": 30, "missing_argument": 40,
               "extra_argument": 5, "wrong_value": 65},
              {"parallel": {"missing_argument": 40, "wrong_value": 30}, "clarify": {"unexpected_call": 30}}),
    2: _probe({"simple": (170, 200), "multiple": (86, 120), "parallel": (28, 100), "clarify": (66, 90),
               "refuse": (62, 90)},
              {"no_call": 22, "unexpected_call": 31, "wrong_function": 30, "missing_argument": 44,
               "extra_argument": 6, "wrong_value": 55},
              {"parallel": {"missing_argument": 38, "wrong_value": 31}, "clarify": {"unexpected_call": 24},
               "simple": {"wrong_value": 20}}),
}


def feed_subset_run(link, *, ace_skipped: bool = True) -> None:
    """Iteration 2 of 4 training after two held-out evals and two probes, as the daemon publishes them
    (stage_finished events with the engine's briefs, then the accuracy metric and eval_done)."""
    from core import busproto

    link.set_online(True)
    for j, (per_category, overall) in enumerate(zip(HELD_OUT, HELD_OUT_OVERALL)):
        stats = {"eval_id": f"bfcl-{j}", "scores": {"overall": overall, "irrelevance": 0.5},
                 "per_category": per_category, "wall_s": 40.0}
        if ace_skipped:
            stats["acebench_skipped"] = ACE_SKIPPED
        link.feed_event("stage_finished", stage="eval", iteration=j, wall_s=40.0, stats=stats,
                        ts=1_700_000_010 + j)
        link.feed_metrics("accuracy", stage="eval", iteration=j, benchmark="bfcl-v3", eval_id=f"bfcl-{j}",
                          scores=stats["scores"], ts=1_700_000_010 + j)
        link.feed_event("eval_done", iteration=j, benchmark="bfcl-v3", eval_id=f"bfcl-{j}", on_demand=False,
                        scores=stats["scores"], ts=1_700_000_010 + j)
    for j, stats in PROBE_STATS.items():
        link.feed_event("stage_finished", stage="probe", iteration=j, wall_s=60.0, stats=stats, ts=1_700_000_020 + j)
    link.feed_event("stage_started", stage="train", iteration=2, ts=1_700_000_031)
    link.feed_status(run_id="cpu-demo-20260101-120000", state="running", iteration=2, iterations=4, stage="train",
                     seq=7, ts=1_700_000_040,
                     progress=busproto.Progress(stage="train", iteration=2, done=12, total=40, eta_s=95.0))


def verbs(link) -> list[str]:
    return [v for v, _ in link.sent]


async def settle(pilot, t: float = 0.05):
    await pilot.pause(t)
    await pilot.pause()


async def until(pilot, cond, timeout: float = 5.0):
    """Poll (timers run at 2-4 Hz, and a busy machine delays them)."""
    for _ in range(int(timeout / 0.05)):
        if cond():
            return
        await pilot.pause(0.05)
    assert cond()
