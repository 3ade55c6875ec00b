"""Stage work in a child process, so the model it loads is freed when the stage ends.

The engine starts `run_stage` in a spawned process with the run's config text (the only thing that
crosses the process boundary; it is parsed once here), the stage name and the iteration; telemetry goes
back on a multiprocessing queue; pause/stop are multiprocessing Events. Every stage reads its inputs
from the run directory and writes its outputs there (core/stages/__init__.py).
"""
from __future__ import annotations

import asyncio
import queue as queue_mod
import traceback
from pathlib import Path
from typing import Awaitable, Callable

from core import config as config_mod
from core import weights
from core.errors import fixable
from core.stages import stage_module
from core.stages.base import Control, StageContext, StageStopped


def run_stage(cfg_text: str, run_dir: str, stage: str, iteration: int, queue, pause, stop) -> None:
    """Process entry point. Puts ("done", stats) / ("stopped", None) / ("fault", message: an OSError the
    operator can fix, core.errors.fixable) / ("failed", traceback) last."""
    def emit(kind: str, data: dict) -> None:
        queue.put((kind, data))

    detach_from_terminal()
    try:
        cfg = config_mod.parse(cfg_text, "run config")
        ctx = make_context(cfg, Path(run_dir), iteration, Control(pause, stop), emit)
        queue.put(("done", stage_module(stage).run(ctx)))
    except StageStopped:
        queue.put(("stopped", None))
    except OSError as e:
        # a full disk or a permission: the engine pauses the run with the reason, resume runs the stage again
        queue.put(("fault", f"{e}") if fixable(e) else ("failed", traceback.format_exc()))
    except BaseException:  # reported to the engine, which records and shows it
        queue.put(("failed", traceback.format_exc()))


def detach_from_terminal() -> None:
    """What every worker process does first: die with its parent, and leave Ctrl-C to the engine.

    If the core is killed (even with SIGKILL), its worker must not live on and keep writing files a
    resumed run also writes: Linux SIGKILLs us when the parent dies. Ctrl-C in a terminal reaches the
    whole process group: the engine turns it into a stop request that the worker honours at its next safe
    point, so the worker ignores SIGINT/SIGTERM itself."""
    import ctypes
    import os
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(1)


def make_context(cfg, run_dir: Path, iteration: int, control: Control, emit) -> StageContext:
    """The stage context of iteration `iteration`, starting from the weights the previous one left
    (core.weights.start); sets torch's thread count when the run config asks for one."""
    if cfg.run.threads:
        import torch

        torch.set_num_threads(cfg.run.threads)
    start = weights.start(cfg, run_dir, iteration)
    return StageContext(cfg=cfg, run_dir=run_dir, iteration=iteration, model_path=start.model,
                        adapter=start.adapter, control=control, emit=emit)


async def watch_worker(proc, q, finals: tuple[str, ...], on_message: Callable[[str, object], None],
                       on_idle: Callable[[], Awaitable] | None = None, what: str = "worker") -> tuple[str, object]:
    """The engine's side of the protocol above: start a spawned worker (a stage, or an on-demand eval
    job, core/eval_job.py) and follow its queue until it sends one of `finals`, returned as (kind,
    data), or dies first: ("failed", "<what> exited with code N"). Other messages go to on_message;
    on_idle runs between polls. The process is joined off the event loop."""
    proc.start()
    while True:
        try:
            kind, data = q.get_nowait()
        except queue_mod.Empty:
            if not proc.is_alive():
                proc.join()
                outcome = ("failed", f"{what} exited with code {proc.exitcode}")
                break
            if on_idle is not None:
                await on_idle()
            await asyncio.sleep(0.1)
            continue
        if kind in finals:
            outcome = (kind, data)
            break
        on_message(kind, data)
    await asyncio.get_running_loop().run_in_executor(None, proc.join)
    return outcome
