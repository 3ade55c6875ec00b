"""An on-demand evaluation (the bus `eval` command) in its own spawned process, like the engine's
eval stage (core/worker.py `_eval`), but with the operator's benchmark/subset/size and without the
stage's `eval.done` marker, so it never changes what a resumed run skips.

`run_eval_job(cfg_text, run_dir, iteration, args, queue, stop)` puts ("progress", {...}) while it
works and finally ("done", summary) or ("failed", message). Iteration 0 is the base model; j >= 1 is
the policy trained in iteration j (`iter-j/policy`).
"""
from __future__ import annotations

import traceback
from pathlib import Path

BENCHMARKS = ("bfcl", "acebench")


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
        if (d / "train.done").exists() and j > best:
            best = j
    return best


def resolve_iteration(run_dir: Path, iterations: int, requested: int | None) -> int:
    if requested is None:
        return latest_trained(run_dir)
    if requested > iterations:
        raise EvalJobError(f"iteration {requested}: this run has {iterations} iterations")
    if requested > 0 and not (run_dir / f"iter-{requested}" / "train.done").exists():
        raise EvalJobError(f"iteration {requested} has no trained policy yet (its train stage has not finished)")
    return requested


ACEBENCH_HOOK = "run_eval_for_loop"


def acebench_available() -> bool:
    """True once evals.acebench offers the loop's entry point:
    run_eval_for_loop(model=, adapter=, cfg=RunConfig, subset=, per_category=, on_progress=(done, total),
                      checkpoint=callable) -> summary dict with eval_id, benchmark, scores, started_at."""
    try:
        import evals.acebench as ace  # built by the ACEBench issue
    except ImportError:
        return False
    return callable(getattr(ace, ACEBENCH_HOOK, None))


def check_request(benchmark: str) -> None:
    """Fail fast, in the core, for what no worker can do."""
    if benchmark not in BENCHMARKS:
        raise EvalJobError(f"unknown benchmark {benchmark!r}; choose from {', '.join(BENCHMARKS)}")
    if benchmark == "acebench" and not acebench_available():
        raise EvalJobError("ACEBench evaluation is not available yet in this core "
                           f"(evals.acebench has no {ACEBENCH_HOOK} entry point)")


def run_eval_job(cfg_text: str, run_dir: str, iteration: int, args: dict, queue, stop) -> None:
    """Process entry point."""
    import signal

    from core.worker import _die_with_parent

    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # stop goes through the engine's stop event
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        summary = _evaluate(cfg_text, Path(run_dir), iteration, args, queue, stop)
        queue.put(("done", summary))
    except EvalJobError as e:
        queue.put(("failed", str(e)))
    except BaseException as e:  # noqa: BLE001  reported to the operator, never raised in the core
        from core.errors import UserError
        from core.stages.base import StageStopped

        if isinstance(e, StageStopped):
            queue.put(("failed", "stopped: the run was asked to stop"))
        elif isinstance(e, UserError):
            queue.put(("failed", str(e)))
        else:
            queue.put(("failed", traceback.format_exc()))


def _evaluate(cfg_text: str, run_dir: Path, iteration: int, args: dict, queue, stop) -> dict:
    import threading

    from core import config as config_mod
    from core.stages.base import Control
    from core.worker import make_context, policy_adapter

    benchmark = args.get("benchmark", "bfcl")
    check_request(benchmark)
    cfg = config_mod.parse(cfg_text, "run config")
    if cfg.run.threads:
        import torch

        torch.set_num_threads(cfg.run.threads)
    ctx = make_context(cfg, run_dir, iteration, Control(threading.Event(), stop), lambda k, d: queue.put((k, d)))
    adapter = policy_adapter(ctx) if iteration > 0 else None
    model = ctx.model_path
    if iteration > 0 and (ctx.iter_dir / "policy" / "config.json").exists():
        model = str(ctx.iter_dir / "policy")
    if benchmark == "acebench":
        return _acebench(ctx, model, adapter, args)
    return _bfcl(ctx, model, adapter, args)


def _progress(ctx, benchmark: str):
    def on_progress(done: int, total: int) -> None:
        ctx.emit("progress", {"stage": "eval", "iteration": ctx.iteration, "done": done, "total": total,
                              "on_demand": True, "benchmark": benchmark})
    return on_progress


def _bfcl(ctx, model: str, adapter: str | None, args: dict) -> dict:
    from core.backends import load_backend
    from evals.bfcl import EvalConfig, run_eval
    from evals.bfcl_data import parse_categories

    e, m = ctx.cfg.eval, ctx.cfg.model
    categories = parse_categories(args.get("subset") or e.bfcl_categories)
    per_category = args.get("per_category") or e.bfcl_per_category
    options = {"hf": {"device": m.device, "batch_size": ctx.cfg.probe.batch_size},
               "vllm": {"enable_lora": adapter is not None},
               "openai": {"base_url": m.base_url}}[m.backend]
    backend = load_backend(m.backend, model, **options)
    try:
        cfg = EvalConfig(model=model, backend=m.backend, adapter=adapter, mode=m.mode, categories=categories,
                         per_category=per_category, seed=e.holdout_seed, max_new_tokens=e.bfcl_max_new_tokens)
        summary = run_eval(cfg, backend, progress=False, on_progress=_progress(ctx, "bfcl"),
                           checkpoint=ctx.control.checkpoint)
    finally:
        backend.close()
    summary.update(run_dir=str(ctx.run_dir), iteration=ctx.iteration, on_demand=True)
    return summary


def _acebench(ctx, model: str, adapter: str | None, args: dict) -> dict:
    import evals.acebench as ace

    runner = getattr(ace, ACEBENCH_HOOK, None)
    if runner is None:
        raise EvalJobError(f"ACEBench evaluation is not available yet (evals.acebench has no {ACEBENCH_HOOK})")
    summary = runner(model=model, adapter=adapter, cfg=ctx.cfg, subset=args.get("subset"),
                     per_category=args.get("per_category"),
                     on_progress=_progress(ctx, "acebench"),
                     checkpoint=ctx.control.checkpoint)
    summary.update(run_dir=str(ctx.run_dir), iteration=ctx.iteration, on_demand=True)
    return summary

