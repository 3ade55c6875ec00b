"""What every stage gets: its config, its files, a pause/stop control and a telemetry callback.

Stages run inside a worker process (core/worker.py) so model memory is freed between stages. Each
stage writes its output incrementally (JSONL keyed by sample id) and finally a `<name>.done` marker;
rerun after a crash, it skips ids already written, so nothing is lost or duplicated.

Iteration directory layout (`run_dir/iter-<j>/`):
    dataset.jsonl    D_j (core.schema.Sample per line), written by assemble (or seeding for j = 1)
    policy/          the policy after training on D_j (a peft LoRA adapter, or a full checkpoint)
    train-ckpt/      trainer checkpoints (resume point for a paused or killed training)
    probe.jsonl      GCP records: {id, response, ppl, mastered, reward, tokens}
    judge.jsonl      JGLV verdicts: {id, verdict, reason, by, votes}
    expand.jsonl     EDDE samples (Sample, source="expand", parent=<seed id>)
    composition.json the Table 3 columns of D_{j+1}
"""
from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from core.config import RunConfig
from core.records import write_json_atomic


class StageStopped(Exception):
    """Raised at a safe point when the operator asked to stop."""


@dataclass
class Control:
    """Pause/stop flags shared with the engine (threading or multiprocessing Events both work)."""

    pause: object = field(default_factory=threading.Event)
    stop: object = field(default_factory=threading.Event)

    def checkpoint(self, on_pause: Callable[[], None] | None = None) -> None:
        """Call between batches / optimizer steps. Raises StageStopped if stop is set; if pause is set,
        runs on_pause (e.g. save a training checkpoint) and then blocks until resumed or stopped."""
        if self.stop.is_set():
            raise StageStopped()
        if self.pause.is_set():
            if on_pause is not None:
                on_pause()
            while self.pause.is_set() and not self.stop.is_set():
                self.stop.wait(0.2)
            if self.stop.is_set():
                raise StageStopped()


@dataclass
class StageContext:
    cfg: RunConfig
    run_dir: Path
    iteration: int  # j, from 1
    model_path: str  # resolved base model (core.models.resolve(cfg.model.name).path)
    adapter: str | None = None  # LoRA adapter of the current policy, None = base weights
    control: Control = field(default_factory=Control)
    emit: Callable[[str, dict], None] = lambda kind, data: None  # telemetry: "progress" | "metrics" | "event"

    @property
    def iter_dir(self) -> Path:
        d = self.run_dir / f"iter-{self.iteration}"
        d.mkdir(parents=True, exist_ok=True)
        return d

    def progress(self, stage: str, done: int, total: int, **extra) -> None:
        self.emit("progress", {"stage": stage, "iteration": self.iteration, "done": done, "total": total,
                               **extra})


def done_marker(d: Path, name: str) -> Path:
    return d / f"{name}.done"


def mark_done(d: Path, name: str, stats: dict) -> None:
    """The stage's `<name>.done` marker with its stats, written atomically and durably (a zero-length
    marker after a power loss would make every resume skip the stage with no stats)."""
    write_json_atomic(done_marker(d, name), stats)


def is_done(d: Path, name: str) -> dict | None:
    """The stats of a finished stage, None when it has not finished. A marker that cannot be read (left
    empty or torn by a crash of an older version, or damaged) counts as not finished, with a warning: the
    stage runs again and resumes from its own incremental output."""
    m = done_marker(d, name)
    try:
        stats = json.loads(m.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError, RecursionError) as e:
        logging.getLogger(__name__).warning("%s: unreadable done marker (%s); the stage runs again", m, e)
        return None
    return stats if isinstance(stats, dict) else None
