"""An on-demand evaluation (the bus `eval` command) in its own spawned process: the eval stage's
`evaluate` (core/stages/eval.py) for one benchmark, with the operator's subset and size and without the
stage's `eval.done` marker, so it never changes what a resumed run skips.

`run_eval_job(cfg_text, run_dir, iteration, args, queue, stop)` puts ("progress", {...}) while it
works and finally ("done", summary) or ("failed", message). Iteration 0 is the base model; j >= 1 is
the policy trained in iteration j (`iter-j/policy`, core.weights).
"""
from __future__ import annotations

import traceback
from pathlib import Path

from core.stages.base import is_done


class EvalJobError(Exception):
    """A request that cannot be served; the message goes to the operator as is."""


def latest_trained(run_dir: Path) -> int:
    """The highest iteration whose training finished (0 = none: the base model)."""
    best = 0
    for d in run_dir.glob("iter-*"):
        try:
            j = int(d.name.split("-", 1)[1])
        except ValueError:
            continue
        if j > best and is_done(d, "train") is not None:
            best = j
    return best


def resolve_iteration(run_dir: Path, iterations: int, requested: int | None) -> int:
    if requested is None:
        return latest_trained(run_dir)
    if requested > iterations:
        raise EvalJobError(f"iteration {requested}: this run has {iterations} iterations")
    if requested > 0 and is_done(run_dir / f"iter-{requested}", "train") is None:
        raise EvalJobError(f"iteration {requested} has no trained policy yet (its train stage has not finished)")
    return requested


def check_request(benchmark: str) -> None:
    """Fail fast, in the core, for what no worker can do."""
    from core.benchmarks import registry
    from core.errors import UserError

    try:
        known = registry()
    except UserError as e:
        raise EvalJobError(str(e)) from None
    if benchmark not in known:
        raise EvalJobError(f"unknown benchmark {benchmark!r}; choose from {', '.join(known)}")


def run_eval_job(cfg_text: str, run_dir: str, iteration: int, args: dict, queue, stop) -> None:
    """Process entry point."""
    import threading

    from core import config as config_mod
    from core.errors import UserError
    from core.stages import eval as eval_stage
    from core.stages.base import Control, StageStopped
    from core.worker import detach_from_terminal, make_context

    detach_from_terminal()
    try:
        benchmark = args.get("benchmark", "bfcl")
        check_request(benchmark)
        cfg = config_mod.parse(cfg_text, "run config")
        ctx = make_context(cfg, Path(run_dir), iteration, Control(threading.Event(), stop),
                           lambda kind, data: queue.put((kind, data)))
        summary = eval_stage.evaluate(ctx, benchmark, subset=args.get("subset"),
                                      per_category=args.get("per_category"), on_demand=True)
        queue.put(("done", summary))
    except EvalJobError as e:
        queue.put(("failed", str(e)))
    except StageStopped:
        queue.put(("failed", "stopped: the run was asked to stop"))
    except UserError as e:
        queue.put(("failed", str(e)))
    except BaseException:  # noqa: BLE001  reported to the operator, never raised in the core
        queue.put(("failed", traceback.format_exc()))
