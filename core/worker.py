"""Stage work in a child process, so the model it loads is freed when the stage ends.

The engine starts `run_stage` in a spawned process with the run's config text, the stage name and the
iteration; telemetry goes back on a multiprocessing queue; pause/stop are multiprocessing Events.
Every stage reads its inputs from the run directory and writes its outputs there (core/stages/base.py).
"""
from __future__ import annotations

import json
import traceback
from pathlib import Path

from core import config as config_mod
from core.schema import Sample, load_samples
from core.stages.base import Control, StageContext, StageStopped, is_done, mark_done

STAGES = ("seed", "train", "probe", "judge", "expand", "assemble", "eval")


def run_stage(cfg_text: str, run_dir: str, stage: str, iteration: int, queue, pause, stop) -> None:
    """Process entry point. Puts ("done", stats) / ("stopped", None) / ("failed", traceback) last."""
    def emit(kind: str, data: dict) -> None:
        queue.put((kind, data))

    _die_with_parent()
    import signal

    # Ctrl-C in a terminal reaches the whole process group: the engine turns it into a stop request
    # that this worker honours at its next safe point, so the worker itself ignores the signals.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        cfg = config_mod.parse(cfg_text, "run config")
        if cfg.run.threads:
            import torch

            torch.set_num_threads(cfg.run.threads)
        ctx = make_context(cfg, Path(run_dir), iteration, Control(pause, stop), emit)
        stats = STAGE_FUNCS[stage](ctx)
        queue.put(("done", stats))
    except StageStopped:
        queue.put(("stopped", None))
    except BaseException:  # reported to the engine, which records and shows it
        queue.put(("failed", traceback.format_exc()))


def _die_with_parent() -> None:
    """If the core is killed (even with SIGKILL), its stage worker must not live on and keep writing
    files a resumed run also writes: ask Linux to SIGKILL us when the parent dies."""
    import ctypes
    import os
    import signal

    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(1)


def make_context(cfg, run_dir: Path, iteration: int, control: Control, emit) -> StageContext:
    from core.models import resolve

    prev = run_dir / f"iter-{iteration - 1}" / "policy"
    adapter = str(prev) if iteration > 1 and (prev / "adapter_config.json").exists() else None
    model_path = resolve(cfg.model.name).path
    if iteration > 1 and (prev / "config.json").exists():  # full fine-tune: continue from its weights
        model_path = str(prev)
    return StageContext(cfg=cfg, run_dir=run_dir, iteration=iteration, model_path=model_path,
                        adapter=adapter, control=control, emit=emit)


def dataset(ctx: StageContext) -> list[Sample]:
    return load_samples(ctx.iter_dir / "dataset.jsonl")


def records(path: Path) -> list[dict]:
    from core.stages.probe import read_records

    return read_records(path)


def policy_adapter(ctx: StageContext) -> str | None:
    p = ctx.iter_dir / "policy"
    return str(p) if (p / "adapter_config.json").exists() else None


# -- stage functions: inputs from files, outputs to files ----------------------------------------

def _seed(ctx: StageContext) -> dict:
    """Build the seed pool and D_1 (the first `budget` pool samples)."""
    from core.schema import write_samples
    from core.seeds.pool import build_pool

    if (done := is_done(ctx.run_dir, "seed")) is not None:
        return done
    pool_path = ctx.run_dir / "pool.jsonl"
    stats = build_pool(ctx.cfg, pool_path)
    pool = load_samples(pool_path)
    d1 = pool[:ctx.cfg.assemble.budget]
    it1 = ctx.run_dir / "iter-1"
    it1.mkdir(parents=True, exist_ok=True)
    write_samples(it1 / "dataset.jsonl", d1)
    stats = {**stats, "d1": len(d1)}
    mark_done(ctx.run_dir, "seed", stats)
    return stats


def _train(ctx: StageContext) -> dict:
    from core.stages import train

    return train.run(ctx, dataset(ctx))


def _probe(ctx: StageContext) -> dict:
    from core.stages import probe

    return probe.run(ctx, dataset(ctx))


def _judge(ctx: StageContext) -> dict:
    from core.stages import judge

    return judge.run(ctx, dataset(ctx), records(ctx.iter_dir / "probe.jsonl"))


def error_seeds(ctx: StageContext) -> tuple[list[Sample], dict[str, str]]:
    """ES = PRED_WRONG samples (label kept) and LABEL_WRONG samples (relabelled); id -> judge reason."""
    by_id = {s.id: s for s in dataset(ctx)}
    seeds, reasons = [], {}
    for r in records(ctx.iter_dir / "judge.jsonl"):
        if r.get("verdict") == "PRED_WRONG" and r["id"] in by_id:
            seeds.append(by_id[r["id"]])
        elif r.get("verdict") == "LABEL_WRONG" and r.get("relabel"):
            seeds.append(Sample.model_validate(r["relabel"]))
        else:
            continue
        reasons[seeds[-1].id] = r.get("reason", "")
    return seeds, reasons


def rule_label_judge(sample: Sample) -> bool:
    """Second validation tier for expansions without an LLM judge: the label's calls fit the schema
    and every argument value is grounded in the conversation."""
    from core.stages.judge import check_calls, ungrounded

    if sample.label.is_text:
        return True
    calls = sample.label.tool_calls()
    return not check_calls(calls, sample.tools) and not ungrounded(calls, sample)


def _expand(ctx: StageContext) -> dict:
    from core.stages import expand

    seeds, reasons = error_seeds(ctx)
    return expand.run(ctx, seeds, reasons, judge=rule_label_judge)


def _assemble(ctx: StageContext) -> dict:
    from core.stages import assemble

    return assemble.run(ctx)


def _eval(ctx: StageContext) -> dict:
    """BFCL-v3 on the run's held-out subset with this iteration's policy (iteration 0 = base model), then
    ACEBench's seeded subset when eval.acebench is set."""
    from core.backends import load_backend
    from evals.bfcl import EvalConfig, run_eval
    from evals.bfcl_data import parse_categories

    e = ctx.cfg.eval
    adapter = policy_adapter(ctx) if ctx.iteration > 0 else None
    model = ctx.model_path
    if ctx.iteration > 0 and (ctx.iter_dir / "policy" / "config.json").exists():
        model = str(ctx.iter_dir / "policy")
    options = {"hf": {"device": ctx.cfg.model.device, "batch_size": ctx.cfg.probe.batch_size},
               "vllm": {"enable_lora": adapter is not None},
               "openai": {"base_url": ctx.cfg.model.base_url}}[ctx.cfg.model.backend]
    backend = load_backend(ctx.cfg.model.backend, model, **options)
    try:
        cfg = EvalConfig(model=model, backend=ctx.cfg.model.backend, adapter=adapter, mode=ctx.cfg.model.mode,
                         categories=parse_categories(e.bfcl_categories), per_category=e.bfcl_per_category,
                         seed=e.holdout_seed, max_new_tokens=e.bfcl_max_new_tokens)
        summary = run_eval(cfg, backend, progress=False,
                           on_progress=lambda done, total: ctx.progress("eval", done, total),
                           checkpoint=ctx.control.checkpoint)
    finally:
        backend.close()
    summary["run_dir"] = str(ctx.run_dir)
    summary["iteration"] = ctx.iteration
    if e.acebench:
        from evals.acebench import run_eval_for_loop

        # Offline and without eval.acebench_data_dir the data cannot be had: the run goes on with BFCL
        # and says why in the summary (acebench_skipped) and in a warning; any other error fails the stage.
        ace = run_eval_for_loop(model=model, adapter=adapter, cfg=ctx.cfg, skip_unavailable=True,
                                on_progress=lambda done, total: ctx.progress("eval", done, total,
                                                                             benchmark="acebench"),
                                checkpoint=ctx.control.checkpoint)
        if ace.get("skipped"):
            summary["acebench_skipped"] = ace["skipped"]
            ctx.emit("event", {"event": "warning", "stage": "eval", "iteration": ctx.iteration,
                               "benchmark": "acebench", "message": ace["skipped"]})
        else:
            summary["acebench"] = {**ace, "run_dir": str(ctx.run_dir), "iteration": ctx.iteration}
    mark_done(ctx.iter_dir, "eval", summary)
    return summary


STAGE_FUNCS = {"seed": _seed, "train": _train, "probe": _probe, "judge": _judge, "expand": _expand,
               "assemble": _assemble, "eval": _eval}
