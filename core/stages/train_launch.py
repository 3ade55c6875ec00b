"""Multi-GPU training: `accelerate launch` a child job running core.stages.train_entry.

The parent (the stage worker) writes the context to `iter_dir/train-launch/context.json` and the
training set to `train-launch/dataset.jsonl`, starts the command of `accelerate_command`, and relays:
    pause/stop    the worker's Events are mirrored as files `train-launch/pause` and `stop`, which every
                  training process polls (`FileFlag`); a rank blocked in a pause keeps
                  `train-launch/paused.rank<N>` while it waits (`RankControl`);
    telemetry     rank 0 appends `(kind, data)` JSON lines to `train-launch/events.jsonl`; the parent
                  re-emits them through ctx.emit.
After a stop (all ranks agree on the step and save its checkpoint first) each rank leaves
`train-launch/stopped.rank<N>` and exits with STOPPED_RC; the parent then raises StageStopped. The markers
are what the parent reads: `accelerate launch` exits 1 whenever a rank exits nonzero (torchrun's
ChildFailedError, the single-process launcher's CalledProcessError), and torchrun SIGTERMs the ranks
still running once one has left.

The job is a core.child_process.ManagedProcess: its own process group, its output in
`iter_dir/train-launch.log`, and it dies with the stage worker; each rank in turn dies with the launcher
(core.stages.train_entry), so a SIGKILLed worker or launcher leaves no rank training on, and the rerun
resumes from the newest complete checkpoint. Single-machine launches get a free rendezvous port each.

Accelerate configs ship in core/presets/accelerate/: zero3.yaml and fsdp.yaml (8 GPUs, bf16) and cpu2.yaml
(two processes on the CPU, gloo).
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from core.errors import UserError
from core.schema import Sample, write_samples
from core.stages.base import Control, StageContext, StageStopped, is_done

LAUNCHED_ENV = "LOOPTOOL_TRAIN_LAUNCHED"
STOPPED_RC = 3
LAUNCH_DIR = "train-launch"
LAUNCH_LOG = "train-launch.log"  # in iter_dir, beside LAUNCH_DIR: a rerun appends to it, it clears LAUNCH_DIR
ACCELERATE_DIR = Path(__file__).resolve().parent.parent / "presets" / "accelerate"
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def accelerate_config_path(name: str | None) -> Path:
    """`train.accelerate_config`: a shipped config name (zero3, fsdp, cpu2; default zero3) or a YAML path."""
    name = name or "zero3"
    shipped = ACCELERATE_DIR / f"{name}.yaml"
    if shipped.is_file():
        return shipped
    p = Path(name).expanduser()
    if p.is_file():
        return p.resolve()
    known = ", ".join(sorted(f.stem for f in ACCELERATE_DIR.glob("*.yaml")))
    raise UserError(f"train.accelerate_config: {name!r} is neither a shipped config ({known}) nor a file")


def _accelerate_exe() -> list[str]:
    exe = Path(sys.executable).with_name("accelerate")
    return [str(exe)] if exe.is_file() else ["accelerate"]


def accelerate_command(ctx: StageContext, num_processes: int | None = None) -> list[str]:
    """`accelerate launch --config_file <yaml> [--num_processes N] [--main_process_port P] -m
    core.stages.train_entry --context <iter_dir>/train-launch/context.json`. A single-machine config that
    names no main_process_port gets a free one: accelerate's default, 29500, is shared by every job on the
    machine, and two launches at once (two runs, parallel tests) would meet at one rendezvous."""
    config = accelerate_config_path(ctx.cfg.train.accelerate_config)
    cmd = [*_accelerate_exe(), "launch", "--config_file", str(config)]
    if num_processes:
        cmd += ["--num_processes", str(num_processes)]
    if _wants_free_port(config):
        from core.broker import free_port

        cmd += ["--main_process_port", str(free_port())]
    return cmd + ["-m", "core.stages.train_entry", "--context", str(ctx.iter_dir / LAUNCH_DIR / "context.json")]


def _wants_free_port(config: Path) -> bool:
    import yaml

    try:
        data = yaml.safe_load(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False  # accelerate reports the file's problem itself
    return isinstance(data, dict) and data.get("main_process_port") is None and (data.get("num_machines") or 1) <= 1


def write_context(ctx: StageContext, dataset: list[Sample]) -> Path:
    d = ctx.iter_dir / LAUNCH_DIR
    d.mkdir(parents=True, exist_ok=True)
    write_samples(d / "dataset.jsonl", dataset)
    data = {"cfg": ctx.cfg.model_dump(mode="json"), "run_dir": str(ctx.run_dir), "iteration": ctx.iteration,
            "model_path": ctx.model_path, "adapter": ctx.adapter, "dataset": str(d / "dataset.jsonl"),
            "pause_file": str(d / "pause"), "stop_file": str(d / "stop"), "events": str(d / "events.jsonl")}
    path = d / "context.json"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(path)
    return path


class FileFlag:
    """An Event-like flag that is set while its file exists (shared by all launched processes)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def is_set(self) -> bool:
        return self.path.exists()

    def set(self) -> None:
        self.path.touch()

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)

    def wait(self, timeout: float | None = None) -> bool:
        end = None if timeout is None else time.monotonic() + timeout
        while not self.is_set() and (end is None or time.monotonic() < end):
            time.sleep(0.05 if end is None else min(0.05, max(0.0, end - time.monotonic())))
        return self.is_set()


def rank_marker(launch_dir: str | Path, state: str, rank: int | str) -> Path:
    """`launch_dir/<state>.rank<N>`: what rank N says about itself (paused, stopped); rank "*" gives
    the glob pattern of every rank's."""
    return Path(launch_dir) / f"{state}.rank{rank}"


@dataclass
class RankControl(Control):
    """One launched rank's Control: the flags are FileFlags, and while the rank is blocked in a pause it
    keeps its `paused.rank<N>` marker, so the parent (and a test) can see that every rank is parked."""

    parked: FileFlag | None = None

    def checkpoint(self, on_pause=None) -> None:
        def park():
            if on_pause is not None:
                on_pause()
            if self.parked is not None:
                self.parked.set()

        try:
            super().checkpoint(park)
        finally:
            if self.parked is not None:
                self.parked.clear()


def read_context(path: str | Path) -> tuple[StageContext, list[Sample]]:
    """The launched side: context and dataset back from `write_context`'s files."""
    from core.config import RunConfig
    from core.schema import load_samples

    data = json.loads(Path(path).read_text())
    rank = int(os.environ.get("RANK", "0"))
    rank0 = rank == 0
    events = Path(data["events"])

    def emit(kind: str, payload: dict) -> None:
        if rank0:
            with open(events, "a", encoding="utf-8") as fh:
                fh.write(json.dumps([kind, payload], default=str) + "\n")

    ctx = StageContext(cfg=RunConfig.model_validate(data["cfg"]), run_dir=Path(data["run_dir"]),
                       iteration=int(data["iteration"]), model_path=data["model_path"],
                       adapter=data["adapter"], emit=emit,
                       control=RankControl(pause=FileFlag(data["pause_file"]), stop=FileFlag(data["stop_file"]),
                                           parked=FileFlag(rank_marker(Path(path).parent, "paused", rank))))
    return ctx, load_samples(Path(data["dataset"]))


def run_launched(ctx: StageContext, dataset: list[Sample], command: list[str] | None = None,
                 poll_s: float = 0.5) -> dict:
    """Run training as an `accelerate launch` job, relaying pause/stop and telemetry; the stats come
    from train.done, which the job writes. `command` overrides the launch command (tests)."""
    from core.child_process import ManagedProcess

    d = ctx.iter_dir / LAUNCH_DIR
    shutil.rmtree(d, ignore_errors=True)
    write_context(ctx, dataset)
    pause, stop, events = FileFlag(d / "pause"), FileFlag(d / "stop"), d / "events.jsonl"
    env = {LAUNCHED_ENV: "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")]))}
    command = command or accelerate_command(ctx)
    # stop_grace_s: torchrun passes a SIGTERM on to the ranks and waits for them; beyond that they are killed
    job = ManagedProcess(command, ctx.iter_dir / LAUNCH_LOG, None, env=env, name="accelerate launch",
                         cwd=PROJECT_ROOT, stop_grace_s=30.0)
    offset = 0
    with job:  # started here, stopped on the way out: the worker itself may be going away
        ctx.emit("event", {"event": "train_job_started", "stage": "train", "iteration": ctx.iteration,
                           "pid": job.pid, "log": str(job.log_path)})
        while True:
            rc = job.returncode
            for flag, event in ((pause, ctx.control.pause), (stop, ctx.control.stop)):
                if event.is_set() != flag.is_set():
                    flag.set() if event.is_set() else flag.clear()
            offset = _relay(events, offset, ctx)
            if rc is not None:
                break
            time.sleep(poll_s)
    if rc == STOPPED_RC or any(d.glob(rank_marker(d, "stopped", "*").name)) or (rc != 0 and ctx.control.stop.is_set()):
        raise StageStopped()
    if rc != 0:
        tail = "".join(f"\n  | {line}" for line in job.log_tail())
        raise RuntimeError(f"training job failed (exit code {rc}): {' '.join(command)}; the last lines of "
                           f"{job.log_path}:{tail}")
    stats = is_done(ctx.iter_dir, "train")
    if stats is None:
        raise RuntimeError("training job exited 0 but wrote no train.done")
    return stats


def _relay(events: Path, offset: int, ctx: StageContext) -> int:
    if not events.exists():
        return offset
    with open(events, "rb") as fh:
        fh.seek(offset)
        while True:
            line = fh.readline()
            if not line.endswith(b"\n"):  # half-written: read it next time
                return offset
            offset += len(line)
            try:
                kind, data = json.loads(line.decode("utf-8"))
            except (ValueError, TypeError):
                continue
            ctx.emit(kind, data)
