"""Evaluation: the run's benchmarks on one iteration's policy (iteration 0: the base model).

The loop runs `run` after every iteration's training, with every benchmark that is part of the run's
eval (core.benchmarks: BFCL-v3's held-out subset, and ACEBench's seeded subset when eval.acebench is set)
and marks it done with eval.done:

    {"iteration": j, "run_dir": ..., "summaries": {benchmark: summary}, "skipped": {benchmark: why},
     "wall_s": the stage's seconds, all benchmarks together}

Each summary is that benchmark's own record (the engine stores each in the store's evals table). A
benchmark whose data cannot be had here (BenchmarkUnavailable: ACEBench offline without a data folder)
is skipped with its reason in `skipped` and a warning; the run goes on. The summaries are logged to the
run's trackers (train.report_to; core/trackers.py) at step = iteration. The console's on-demand eval
(core/eval_job.py) calls `evaluate` for one benchmark with the operator's subset and size, without the
marker, so it never changes what a resumed run skips.
"""
from __future__ import annotations

import time

from core.benchmarks import BenchmarkUnavailable, EvalRequest, get, registry
from core.stages.base import StageContext, is_done, mark_done
from core.trackers import log_eval
from core.weights import trained


def evaluate(ctx: StageContext, benchmark: str, subset: str | None = None, per_category: int | None = None,
             on_demand: bool = False) -> dict:
    """One benchmark on the iteration's policy: its summary, with run_dir / iteration / on_demand."""
    def on_progress(done: int, total: int, tokens: int | None = None) -> None:
        extra = {"on_demand": True} if on_demand else {}
        if tokens is not None:
            extra["tokens"] = tokens
        ctx.progress("eval", done, total, benchmark=benchmark, **extra)

    request = EvalRequest(cfg=ctx.cfg, weights=trained(ctx), subset=subset, per_category=per_category,
                          on_progress=on_progress, checkpoint=ctx.control.checkpoint)
    summary = get(benchmark).evaluate(request)
    summary.update(run_dir=str(ctx.run_dir), iteration=ctx.iteration)
    if on_demand:
        summary["on_demand"] = True
    return summary


def run(ctx: StageContext) -> dict:
    if (done := is_done(ctx.iter_dir, "eval")) is not None:
        return done
    started = time.monotonic()
    result = {"iteration": ctx.iteration, "run_dir": str(ctx.run_dir), "summaries": {}, "skipped": {}}
    for name, bench in registry().items():
        if not bench.in_loop(ctx.cfg):
            continue
        try:
            result["summaries"][name] = evaluate(ctx, name)
        except BenchmarkUnavailable as e:
            result["skipped"][name] = str(e)
            ctx.emit("event", {"event": "warning", "stage": "eval", "iteration": ctx.iteration,
                               "benchmark": name, "message": str(e)})
    result["wall_s"] = round(time.monotonic() - started, 1)
    log_eval(ctx.cfg, ctx.run_dir, ctx.iteration, result["summaries"])  # before the marker: a resume logs again
    mark_done(ctx.iter_dir, "eval", result)
    return result
