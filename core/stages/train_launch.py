"""Multi-GPU training: `accelerate launch` a child job running core.stages.train_entry.

The parent (the stage worker) writes the context to `iter_dir/train-launch/context.json` and the
training set to `train-launch/dataset.jsonl`, starts the command of `accelerate_command`, and relays:
    pause/stop    the worker's Events are mirrored as files `train-launch/pause` and `stop`, which every
                  training process polls (`FileFlag`);
    telemetry     rank 0 appends `(kind, data)` JSON lines to `train-launch/events.jsonl`; the parent
                  re-emits them through ctx.emit.
The child exits with STOPPED_RC after a stop (a checkpoint is saved first), the parent then raises
StageStopped. Accelerate configs ship in core/presets/accelerate/ (zero3.yaml, fsdp.yaml, 8 GPUs, bf16).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from core.errors import UserError
from core.schema import Sample, write_samples
from core.stages.base import Control, StageContext, StageStopped, is_done

LAUNCHED_ENV = "LOOPTOOL_TRAIN_LAUNCHED"
STOPPED_RC = 3
LAUNCH_DIR = "train-launch"
ACCELERATE_DIR = Path(__file__).resolve().parent.parent / "presets" / "accelerate"
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def accelerate_config_path(name: str | None) -> Path:
    """`train.accelerate_config`: a shipped config name (zero3, fsdp; default zero3) or a YAML path."""
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
    """`accelerate launch --config_file <yaml> [--num_processes N] -m core.stages.train_entry
    --context <iter_dir>/train-launch/context.json`."""
    cmd = [*_accelerate_exe(), "launch", "--config_file", str(accelerate_config_path(ctx.cfg.train.accelerate_config))]
    if num_processes:
        cmd += ["--num_processes", str(num_processes)]
    return cmd + ["-m", "core.stages.train_entry", "--context", str(ctx.iter_dir / LAUNCH_DIR / "context.json")]


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


def read_context(path: str | Path) -> tuple[StageContext, list[Sample]]:
    """The launched side: context and dataset back from `write_context`'s files."""
    from core.config import RunConfig
    from core.schema import load_samples

    data = json.loads(Path(path).read_text())
    rank0 = int(os.environ.get("RANK", "0")) == 0
    events = Path(data["events"])

    def emit(kind: str, payload: dict) -> None:
        if rank0:
            with open(events, "a", encoding="utf-8") as fh:
                fh.write(json.dumps([kind, payload], default=str) + "\n")

    ctx = StageContext(cfg=RunConfig.model_validate(data["cfg"]), run_dir=Path(data["run_dir"]),
                       iteration=int(data["iteration"]), model_path=data["model_path"],
                       adapter=data["adapter"], emit=emit,
                       control=Control(pause=FileFlag(data["pause_file"]), stop=FileFlag(data["stop_file"])))
    return ctx, load_samples(Path(data["dataset"]))


def run_launched(ctx: StageContext, dataset: list[Sample], command: list[str] | None = None,
                 poll_s: float = 0.5) -> dict:
    """Run training as an `accelerate launch` job, relaying pause/stop and telemetry; the stats come
    from train.done, which the job writes. `command` overrides the launch command (tests)."""
    d = ctx.iter_dir / LAUNCH_DIR
    shutil.rmtree(d, ignore_errors=True)
    write_context(ctx, dataset)
    pause, stop, events = FileFlag(d / "pause"), FileFlag(d / "stop"), d / "events.jsonl"
    env = {**os.environ, LAUNCHED_ENV: "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen(command or accelerate_command(ctx), cwd=str(PROJECT_ROOT), env=env)
    offset = 0
    try:
        while True:
            rc = proc.poll()
            for flag, event in ((pause, ctx.control.pause), (stop, ctx.control.stop)):
                if event.is_set() != flag.is_set():
                    flag.set() if event.is_set() else flag.clear()
            offset = _relay(events, offset, ctx)
            if rc is not None:
                break
            time.sleep(poll_s)
    finally:
        if proc.poll() is None:  # the worker itself is going away: take the job down with it
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
    if rc == STOPPED_RC or (rc != 0 and ctx.control.stop.is_set()):
        raise StageStopped()
    if rc != 0:
        raise RuntimeError(f"training job failed (exit code {rc}): {' '.join(command or accelerate_command(ctx))}")
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
