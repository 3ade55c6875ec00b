"""The trainer callback that ties trl/transformers training to the loop: telemetry, pause/stop with a
checkpoint first, and periodic checkpoints (see core/stages/train.py)."""
from __future__ import annotations

import re
import time
from pathlib import Path

from transformers import TrainerCallback

from core.stages.base import StageContext, StageStopped

_CKPT_RE = re.compile(r"^checkpoint-(\d+)$")


def latest_checkpoint(root: Path) -> Path | None:
    """The newest complete trainer checkpoint under `root` (trainer_state.json is written last)."""
    if not root.is_dir():
        return None
    found = [(int(m.group(1)), p) for p in root.iterdir()
             if (m := _CKPT_RE.match(p.name)) and (p / "trainer_state.json").is_file()]
    return max(found)[1] if found else None


class LoopCallback(TrainerCallback):
    """* on_step_end: progress; reads the pause/stop flags (agreed across processes) and asks the
      trainer for a checkpoint when the last one is older than `save_every_s`;
    * on_log (right after, same step): emits the step's metrics, then acts on pause/stop: writes a
      checkpoint through the Trainer's own mechanism (so `train(resume_from_checkpoint=...)` works),
      then raises StageStopped (stop) or blocks in `ctx.control.checkpoint()` until resumed (pause).

    A pause or stop seen at the last step is left to the engine: training is finishing anyway.
    `trainer` is set after the trainer is built."""

    def __init__(self, ctx: StageContext, save_every_s: float | None = None):
        self.ctx = ctx
        self.trainer = None
        self.save_every_s = save_every_s
        self.checkpoints_saved: list[str] = []
        self._pending: tuple[bool, bool] | None = None
        self._saved_step = -1
        self._t_begin = self._t_log = self._t_save = time.monotonic()
        self._tok_begin = self._tok_log = 0
        self._t_end: float | None = None

    # -- telemetry ------------------------------------------------------------------------------

    def on_train_begin(self, args, state, control, **kwargs):
        now = time.monotonic()
        self._t_begin = self._t_log = self._t_save = now
        self._tok_begin = self._tok_log = state.num_input_tokens_seen or 0
        self._saved_step = state.global_step  # a resumed run starts at an existing checkpoint
        return control

    def on_train_end(self, args, state, control, **kwargs):
        self._t_end = time.monotonic()
        self._tok_end = state.num_input_tokens_seen or 0
        return control

    def train_seconds(self) -> float:
        return (self._t_end or time.monotonic()) - self._t_begin

    def tokens_per_s(self) -> float | None:
        secs = self.train_seconds()
        tokens = getattr(self, "_tok_end", self._tok_log) - self._tok_begin
        return round(tokens / secs, 1) if secs > 0 and tokens > 0 else None

    def on_step_end(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.ctx.progress("train", state.global_step, state.max_steps)
        stop, pause, due = self._flags(args)
        self._pending = (stop, pause)
        if due:
            control.should_save = True  # the Trainer saves right after logging this step
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        if "loss" not in logs:  # the end-of-training summary, not a step
            return control
        now = time.monotonic()
        tokens = state.num_input_tokens_seen or 0
        dt = now - self._t_log
        tps = (tokens - self._tok_log) / dt if dt > 0 and tokens > self._tok_log else None
        self._t_log, self._tok_log = now, tokens
        if state.is_world_process_zero:
            self.ctx.emit("metrics", {
                "stage": "train", "iteration": self.ctx.iteration, "step": state.global_step,
                "max_steps": state.max_steps, "loss": logs.get("loss"),
                "reward_mean": logs.get("reward"), "reward_std": logs.get("reward_std"),
                "lr": logs.get("learning_rate"), "tokens_per_s": None if tps is None else round(tps, 1),
                "epoch": logs.get("epoch", state.epoch), "grad_norm": logs.get("grad_norm"),
            })
        pending, self._pending = self._pending, None
        if pending is None or state.global_step >= state.max_steps:
            return control
        stop, pause = pending
        if stop or pause:
            self.save_checkpoint(state, control)
        if stop:
            raise StageStopped()
        if pause:
            self.ctx.control.checkpoint()  # blocks until resumed; StageStopped if stopped meanwhile
            self._t_log = time.monotonic()  # the pause is not training time
        return control

    def on_save(self, args, state, control, **kwargs):
        self._note_saved(state)
        return control

    # -- checkpoints ----------------------------------------------------------------------------

    def save_checkpoint(self, state, control) -> None:
        """A full trainer checkpoint (weights/adapter, optimizer, scheduler, RNG, trainer state) for
        this step, unless one was already written; then no second save at this step."""
        if self._saved_step != state.global_step:
            self.trainer._save_checkpoint(self.trainer.model_wrapped, trial=None)
            self._note_saved(state)
        control.should_save = False

    def _note_saved(self, state) -> None:
        self._saved_step = state.global_step
        self._t_save = time.monotonic()
        self.checkpoints_saved.append(f"checkpoint-{state.global_step}")

    def _flags(self, args) -> tuple[bool, bool, bool]:
        """(stop, pause, save due), the same on every process: collective saves must not diverge."""
        c = self.ctx.control
        due = self.save_every_s is not None and time.monotonic() - self._t_save >= self.save_every_s
        flags = [bool(c.stop.is_set()), bool(c.pause.is_set()), bool(due)]
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            import torch

            t = torch.tensor(flags, dtype=torch.int32, device=args.device)
            dist.all_reduce(t, op=dist.ReduceOp.MAX)
            flags = [bool(v) for v in t.tolist()]
        return flags[0], flags[1], flags[2]
