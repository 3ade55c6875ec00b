"""Crash safety end to end: a core killed with SIGKILL mid-train and mid-probe, resumed, ends with the same
records as an uninterrupted run of the same config (the session's reference run, tests/loop_runs.py)."""
from __future__ import annotations

import json
import time

import pytest
from loop_runs import TINY, counts, finish, kill_core, shared_reference, start_core, wait_for

pytestmark = pytest.mark.slow


def test_sigkill_mid_train_and_mid_probe_then_resume(tmp_path, tmp_path_factory, worker_id, embedded_path):
    log: list[str] = []
    proc = start_core(tmp_path, "--config", str(TINY))
    wait_for(proc, "iter 1 train 1/", log)  # first optimizer step done; its checkpoint follows
    (run_dir,) = (tmp_path / "runs").iterdir()
    deadline = time.time() + 300
    while not list((run_dir / "iter-1" / "train-ckpt").glob("checkpoint-*/trainer_state.json")):
        assert time.time() < deadline, "no training checkpoint within 300 s"
        time.sleep(0.05)
    kill_core(proc)
    assert not (run_dir / "iter-1" / "train.done").exists()

    proc = start_core(tmp_path, "--resume", run_dir.name)
    wait_for(proc, "iter 1 probe", log)
    time.sleep(1.0)
    kill_core(proc)
    assert not (run_dir / "iter-1" / "probe.done").exists()

    proc = start_core(tmp_path, "--resume", run_dir.name)
    assert finish(proc, log) == 0, "".join(log[-60:])
    train1 = json.loads((run_dir / "iter-1" / "train.done").read_text())
    assert train1["resumed_from"], "training did not resume from its checkpoint"
    _, ref_dir, _ = shared_reference(tmp_path_factory, worker_id)  # asked for last: made meanwhile elsewhere
    assert counts(run_dir) == counts(ref_dir)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "tracker" / "train"))  # report_to = ["tensorboard"]
    events.Reload()
    steps = train1["steps"] + json.loads((run_dir / "iter-2" / "train.done").read_text())["steps"]
    assert [e.step for e in events.Scalars("train/loss")] == list(range(1, steps + 1))  # the resumed steps once


