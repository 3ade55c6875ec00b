"""Experiment trackers of a run (`train.report_to`: tensorboard, wandb): one per run, across its iterations.

    <run_dir>/tracker/train/   what trl and transformers log while training (their own tracker callbacks:
                               train/loss, train/learning_rate, under GRPO train/reward, ...), at the run's
                               optimizer step: the steps of the iterations before are added
                               (core.stages.train_callback.continue_run_steps), so the curves continue
                               from one iteration to the next instead of starting again at 0
    <run_dir>/tracker/eval/    each iteration's loop eval (the eval stage), at step = iteration (0: the
                               base model): heldout/<benchmark>/<category> (accuracy on the run's held-out
                               subset), heldout/<benchmark>/mean (correct / entries over the categories
                               evaluated) and <benchmark>/<score> (the leaderboard columns)

Train and eval are two TensorBoard runs, because their steps mean two things (optimizer steps,
iterations); `tensorboard --logdir <run_dir>/tracker` shows both. A training resumed from a checkpoint
logs the steps after it again; its event file starts with TensorBoard's restart marker (purge_step), so
readers drop what the interrupted training had logged past the checkpoint.

wandb: one wandb run per looptool run (its id derived from the run id, resumed by every process that
logs to it; project $WANDB_PROJECT, default "looptool"), files under <run_dir>/tracker/. Offline unless
the environment configures it: WANDB_MODE is kept as set, and WANDB_API_KEY alone means online.

On-demand evals (the console's) are not logged: they are not the loop's per-iteration results.
Nothing here imports a tracker until one is used, and core/preflight.py checks that each is installed.
"""
from __future__ import annotations

import importlib.util
import math
import os
import re
from pathlib import Path

from core.errors import UserError

TRACKER_DIR = "tracker"
INSTALL = {"tensorboard": "pip install 'looptool[trackers]' (tensorboard)", "wandb": "pip install wandb"}


def tracker_dir(run_dir: Path) -> Path:
    return Path(run_dir) / TRACKER_DIR


def check_installed(cfg) -> str:
    """preflight's note on train.report_to; UserError naming the key when a tracker is not installed."""
    trackers = cfg.train.trackers
    for name in trackers:
        if importlib.util.find_spec(name) is None:
            raise UserError(f"train.report_to: {name} is not installed here: {INSTALL[name]}, or leave it out")
    if not trackers:
        return "train.report_to: none"
    return f"train.report_to: {', '.join(trackers)} (files in <run dir>/{TRACKER_DIR}/)"


def wandb_run_id(run_dir: Path) -> str:
    """The wandb run of a looptool run: its run id with what wandb's ids may not hold replaced."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", Path(run_dir).name)[:120]


def _wandb_env(run_dir: Path) -> dict[str, str]:
    env = {"WANDB_DIR": str(tracker_dir(run_dir)), "WANDB_RUN_ID": wandb_run_id(run_dir),
           "WANDB_RESUME": "allow", "WANDB_PROJECT": os.environ.get("WANDB_PROJECT", "looptool")}
    if "WANDB_MODE" not in os.environ and "WANDB_API_KEY" not in os.environ:
        env["WANDB_MODE"] = "offline"
    return env


def set_train_env(cfg, run_dir: Path) -> None:
    """Where transformers' tracker callbacks write, set in this (stage worker or launched rank) process's
    environment before the trainer is built; they read it there."""
    trackers = cfg.train.trackers
    if "tensorboard" in trackers:
        os.environ["TENSORBOARD_LOGGING_DIR"] = str(tracker_dir(run_dir) / "train")
    if "wandb" in trackers:
        tracker_dir(run_dir).mkdir(parents=True, exist_ok=True)
        os.environ.update(_wandb_env(run_dir))


def step_offset(run_dir: Path, iteration: int) -> int:
    """Optimizer steps of the run's iterations before `iteration` (their train.done stats)."""
    from core.stages.base import is_done

    return sum(int((is_done(Path(run_dir) / f"iter-{j}", "train") or {}).get("steps") or 0)
               for j in range(1, iteration))


def eval_scalars(summaries: dict[str, dict]) -> dict[str, float]:
    """The tags and values one iteration's eval logs (see the module docstring), by benchmark name."""
    from core.run_scores import subset_accuracy

    scalars: dict[str, float] = {}
    for bench, summary in summaries.items():
        for category, c in (summary.get("per_category") or {}).items():
            scalars[f"heldout/{bench}/{category}"] = c.get("accuracy")
        scalars[f"heldout/{bench}/mean"] = subset_accuracy(summary)
        for key, value in (summary.get("scores") or {}).items():
            scalars[f"{bench}/{key}"] = value
    return {tag: float(v) for tag, v in scalars.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}


def log_eval(cfg, run_dir: Path, iteration: int, summaries: dict[str, dict]) -> dict[str, float]:
    """Log one iteration's eval summaries to the run's trackers; returns what was logged ({} without)."""
    trackers = cfg.train.trackers
    if not trackers or not summaries:
        return {}
    scalars = eval_scalars(summaries)
    if "tensorboard" in trackers:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(log_dir=str(tracker_dir(run_dir) / "eval"))
        try:
            for tag, value in scalars.items():
                writer.add_scalar(tag, value, global_step=iteration)
        finally:
            writer.close()
    if "wandb" in trackers:
        _wandb_log(run_dir, iteration, scalars)
    return scalars


def _wandb_log(run_dir: Path, iteration: int, scalars: dict[str, float]) -> None:
    try:
        import wandb
    except ImportError:
        raise UserError(f"train.report_to: wandb is not installed here: {INSTALL['wandb']}") from None
    env = _wandb_env(run_dir)
    tracker_dir(run_dir).mkdir(parents=True, exist_ok=True)
    run = wandb.init(project=env["WANDB_PROJECT"], id=env["WANDB_RUN_ID"], resume="allow", dir=env["WANDB_DIR"],
                     name=Path(run_dir).name, mode=os.environ.get("WANDB_MODE", env.get("WANDB_MODE", "online")))
    try:
        run.define_metric("iteration")
        for prefix in sorted({tag.split("/", 1)[0] for tag in scalars}):
            run.define_metric(f"{prefix}/*", step_metric="iteration")
        run.log({**scalars, "iteration": iteration})
    finally:
        run.finish()
