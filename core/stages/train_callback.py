"""The trainer callback that ties trl/transformers training to the loop: telemetry, the train curve,
pause/stop with a checkpoint first, and periodic checkpoints (see core/stages/train.py).

The train curve (iter_dir/train_curve.jsonl, main process only): one JSON object per logged optimizer
step, {step, epoch, loss, learning_rate, grad_norm, num_tokens} and, under GRPO, {reward, reward_std,
frac_reward_zero_std, completion_length, clipped_ratio} (CURVE_KEYS maps the names trl 1.x logs);
a key the trainer did not log at that step is left out. A resumed train starts again at its
checkpoint's step, so the lines after that step are dropped when training begins (they are logged
again), and readers keep the last line per step.
"""
from __future__ import annotations

import copy
import json
import math
import re
import time
from pathlib import Path

from transformers import TrainerCallback
from transformers.integrations import TensorBoardCallback, WandbCallback

from core.stages.base import StageContext, StageStopped
from core.train_curve import CURVE_FILE, compact_curve, read_curve

_CKPT_RE = re.compile(r"^checkpoint-(\d+)$")


def latest_checkpoint(root: Path) -> Path | None:
    """The newest complete trainer checkpoint under `root` (trainer_state.json is written last)."""
    if not root.is_dir():
        return None
    found = [(int(m.group(1)), p) for p in root.iterdir()
             if (m := _CKPT_RE.match(p.name)) and (p / "trainer_state.json").is_file()]
    return max(found)[1] if found else None


# What the trainer logs (transformers: loss, learning_rate, grad_norm, epoch; trl 1.x SFTTrainer and
# GRPOTrainer: num_tokens; GRPOTrainer: the rest, means over the logging window) -> the curve's key.
CURVE_KEYS = {
    "loss": "loss", "learning_rate": "learning_rate", "grad_norm": "grad_norm", "num_tokens": "num_tokens",
    "reward": "reward", "reward_std": "reward_std", "frac_reward_zero_std": "frac_reward_zero_std",
    "completions/mean_length": "completion_length", "completions/clipped_ratio": "clipped_ratio",
}


def curve_point(logs: dict, state) -> dict:
    """The curve's line for one logged step: {step, epoch, ...CURVE_KEYS values that were logged}."""
    epoch = logs.get("epoch", state.epoch)
    point = {"step": int(state.global_step), "epoch": None if epoch is None else float(epoch)}
    for logged, key in CURVE_KEYS.items():
        value = logs.get(logged)
        if value is not None and math.isfinite(float(value)):  # NaN / inf would make the file invalid JSON
            point[key] = float(value)
    # the same count where the trainer state keeps one (SFT: include_num_input_tokens_seen; GRPO logs the
    # state's own), which a checkpoint restores: trl's SFT counter starts again at 0 on a resume
    if "num_tokens" in point and getattr(state, "num_input_tokens_seen", 0):
        point["num_tokens"] = float(state.num_input_tokens_seen)
    return point


class CurveLog:
    """iter_dir/train_curve.jsonl, written as steps are logged (see the module docstring)."""

    def __init__(self, path: Path):
        self.path = path
        self.points: dict[int, dict] = {}

    def begin(self, step: int) -> None:
        """Training (re)starts after `step`: keep the lines up to it, rewrite the file atomically."""
        self.points = {p["step"]: p for p in read_curve(self.path) if p["step"] <= step}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text("".join(json.dumps(p) + "\n" for p in self.points.values()), encoding="utf-8")
        tmp.replace(self.path)

    def add(self, point: dict) -> None:
        self.points[point["step"]] = point
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(point) + "\n")

    def ordered(self) -> list[dict]:
        return [self.points[k] for k in sorted(self.points)]


class LoopCallback(TrainerCallback):
    """* on_step_end: progress; reads the pause/stop flags (agreed across processes) and asks the
      trainer for a checkpoint when the last one is older than `save_every_s`;
    * on_log (right after, same step): emits the step's metrics and appends them to the train curve
      (main process), then acts on pause/stop: writes a checkpoint through the Trainer's own
      mechanism (so `train(resume_from_checkpoint=...)` works),
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
        self.curve_log = CurveLog(Path(ctx.iter_dir) / CURVE_FILE)

    def curve(self) -> list[dict]:
        """This training's curve (resumed steps included), floats to 5 significant digits; [] off the
        main process."""
        return compact_curve(self.curve_log.ordered())

    # -- telemetry ------------------------------------------------------------------------------

    def on_train_begin(self, args, state, control, **kwargs):
        now = time.monotonic()
        self._t_begin = self._t_log = self._t_save = now
        self._tok_begin = self._tok_log = state.num_input_tokens_seen or 0
        self._saved_step = state.global_step  # a resumed run starts at an existing checkpoint
        if state.is_world_process_zero:
            self.curve_log.begin(state.global_step)
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
            self.curve_log.add(curve_point(logs, state))
        pending, self._pending = self._pending, None
        if pending is None or state.global_step >= state.max_steps:
            return control
        stop, pause = pending
        if stop or pause:
            self.save_checkpoint(state, control)
        if stop:
            raise StageStopped()
        if pause:
            try:
                self.ctx.control.checkpoint()  # blocks until resumed; StageStopped if stopped meanwhile
                stopped = False
            except StageStopped:
                stopped = True
            # every process leaves the pause the same way: one that saw the resume just before a stop
            # would otherwise wait in the next step's collectives for one that stopped
            if self._agree(args, [stopped])[0]:
                raise StageStopped()
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
            # rank 0 writes most of it; no process may leave (a stop ends the job at once) or park before
            self.trainer.accelerator.wait_for_everyone()
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
        stop, pause, due = self._agree(args, [c.stop.is_set(), c.pause.is_set(), due])
        return stop, pause, due

    @staticmethod
    def _agree(args, flags: list) -> list[bool]:
        """Each flag, set if it is set on any process (a collective: every process calls it)."""
        flags = [bool(f) for f in flags]
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            import torch

            t = torch.tensor(flags, dtype=torch.int32, device=args.device)
            dist.all_reduce(t, op=dist.ReduceOp.MAX)
            flags = [bool(v) for v in t.tolist()]
        return flags


# -- trackers (train.report_to, core/trackers.py) ----------------------------------------------------

class _RunStep:
    """A tracker callback that logs at the run's step: the trainer's step plus `offset`, the steps of the
    iterations before (every iteration's trainer counts from 0). Only the logged step changes."""
    offset = 0

    def on_log(self, args, state, control, **kwargs):
        run_state = copy.copy(state)  # the trainer's own state keeps its step
        run_state.global_step = state.global_step + self.offset
        return super().on_log(args, run_state, control, **kwargs)


class RunStepTensorBoard(_RunStep, TensorBoardCallback):
    """A training resumed from its checkpoint logs the steps after it again: the writer's purge_step (a
    restart marker in the event file) has TensorBoard drop what the interrupted training logged past it."""
    purge_step = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.purge_step = self.offset + state.global_step + 1 if state.global_step else None
        return super().on_train_begin(args, state, control, **kwargs)

    def _init_summary_writer(self, args):  # transformers' own, given the purge step
        self.tb_writer = self._SummaryWriter(log_dir=self.logging_dir, purge_step=self.purge_step)


class RunStepWandb(_RunStep, WandbCallback):
    pass


RUN_STEP_CALLBACKS = {TensorBoardCallback: RunStepTensorBoard, WandbCallback: RunStepWandb}


def continue_run_steps(trainer, offset: int) -> None:
    """Swap the tracker callbacks that train.report_to had trl add for ones that log at the run's step,
    each in its place (callbacks run in list order: the tracker's line is written before LoopCallback
    may pause or stop at that step)."""
    callbacks = trainer.callback_handler.callbacks
    for i, callback in enumerate(callbacks):
        continued = RUN_STEP_CALLBACKS.get(type(callback))
        if continued is not None:
            callbacks[i] = continued()
            callbacks[i].offset = offset
