"""The train stage through a real `accelerate launch`: two CPU processes (torchrun, gloo) on the embedded
model, with the shipped config core/presets/accelerate/cpu2.yaml; no stand-ins.

Each launch costs ~20 s of process start-up and model loading on 2 cores, so the file keeps to five: an
uninterrupted SFT run that the tests share (module fixture), a GRPO run, and one chain of three that
pauses, resumes, stops, is rerun, is SIGKILLed and is rerun again, ending where the uninterrupted run ended.
Budgets are tiny: 10 SFT samples, 5 optimizer steps of 2 samples (one per process).
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import threading
import time
from pathlib import Path

import psutil
import pytest
from test_train import adapter_weights, call_sample, make_cfg, make_ctx, text_sample

from core.stages import train
from core.stages.base import StageStopped, is_done
from core.stages.train_callback import CURVE_FILE, compact_curve, latest_checkpoint, read_curve
from core.stages.train_launch import LAUNCH_DIR, LAUNCH_LOG, rank_marker

pytestmark = pytest.mark.slow

RANKS = 2
SFT_STEPS = 5
SFT_DATA = [call_sample(i) if i % 3 else text_sample(i) for i in range(2 * SFT_STEPS)]
WAIT_S = 240  # for one launch to reach a point (start-up is ~20 s; a loaded CI box is slower)


def launched_cfg(method: str, **overrides):
    cfg = make_cfg(method, **overrides)
    cfg.train.launcher = "accelerate"
    cfg.train.accelerate_config = "cpu2"
    return cfg


def sft_cfg():
    # a checkpoint after every step: the chain stops and is killed between steps
    return launched_cfg("sft", batch_size=2, micro_batch=1, save_every_s=0.0)


class Job:
    """train.run on a thread of its own, its relayed telemetry collected; the test's thread plays the
    operator (pause, stop, SIGKILL) and watches the files."""

    def __init__(self, run_dir: Path, cfg, embedded_path: str, data):
        self.events: list = []
        self.ctx = make_ctx(run_dir, cfg, embedded_path, events=self.events)
        self.launch_dir = self.ctx.iter_dir / LAUNCH_DIR
        self.result: dict | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(data,), daemon=True)
        self.thread.start()

    def _run(self, data) -> None:
        try:
            self.result = train.run(self.ctx, data)
        except BaseException as e:  # noqa: BLE001 - handed to the test's thread
            self.error = e

    def of(self, kind: str, event: str | None = None) -> list[dict]:
        return [d for k, d in list(self.events) if k == kind and (event is None or d.get("event") == event)]

    def wait_for(self, what: str, condition) -> None:
        end = time.monotonic() + WAIT_S
        while not condition():
            assert self.thread.is_alive() or condition(), f"the job ended before {what}: {self.error!r}"
            assert time.monotonic() < end, f"no {what} after {WAIT_S} s"
            time.sleep(0.05)

    def join(self) -> None:
        self.thread.join(WAIT_S)
        assert not self.thread.is_alive(), f"the job did not end within {WAIT_S} s"

    @property
    def launcher_pid(self) -> int:
        return self.of("event", "train_job_started")[0]["pid"]

    def processes(self) -> list[psutil.Process]:
        """The launcher and the ranks still alive: every process whose command line names this job's
        context file."""
        context = str(self.launch_dir / "context.json")
        found = []
        for p in psutil.process_iter(["cmdline"]):
            if context in (p.info["cmdline"] or []) and p.pid != os.getpid():
                found.append(p)
        return found

    def kill_group(self) -> None:
        """SIGKILL to the launcher's process group (the job is started in a session of its own)."""
        os.killpg(self.launcher_pid, signal.SIGKILL)

    def abandon(self) -> None:
        """A test that failed midway: take down a job that still runs."""
        if self.thread.is_alive() and self.of("event", "train_job_started"):
            with contextlib.suppress(ProcessLookupError):
                self.kill_group()
            self.thread.join(60)


def watch_checkpoints(job: Job) -> dict[str, set[str]]:
    """Until the job ends: the file names each complete checkpoint was seen with (rotation and the
    end of training delete them meanwhile)."""
    root, seen = job.ctx.iter_dir / train.CKPT_DIR, {}
    while job.thread.is_alive():
        for d in root.glob("checkpoint-*") if root.is_dir() else ():
            with contextlib.suppress(FileNotFoundError):
                if (d / "trainer_state.json").is_file():
                    seen.setdefault(d.name, set()).update(f.name for f in d.iterdir())
        time.sleep(0.05)
    return seen


def wait_until_gone(job: Job, timeout_s: float = 10.0) -> list[psutil.Process]:
    end = time.monotonic() + timeout_s
    while (alive := job.processes()) and time.monotonic() < end:
        time.sleep(0.1)
    return alive


def log_lines(path: Path, kind: str) -> list[dict]:
    """The payloads of `kind` in a launch's events.jsonl (rank 0's telemetry file), as written."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return [data for k, data in rows if k == kind]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, embedded_path):
    """One uninterrupted two-process SFT run: (job, its checkpoints as seen while it ran)."""
    job = Job(tmp_path_factory.mktemp("reference"), sft_cfg(), embedded_path, SFT_DATA)
    try:
        seen = watch_checkpoints(job)
        job.join()
    finally:
        job.abandon()
    assert job.error is None, f"the uninterrupted run failed: {job.error!r}"
    return job, seen


def test_sft_on_two_processes_writes_from_rank0_only(reference):
    job, checkpoints = reference
    it = job.ctx.iter_dir
    stats = job.result
    assert stats["steps"] == stats["max_steps"] == SFT_STEPS and stats["resumed_from"] is None
    # one sample per process per step, two processes: world_size 2 is what the trainer ran with
    assert stats["prompts_per_step"] == RANKS
    # every checkpoint holds both ranks' RNG state (the multi-process names) and one set of weights
    assert sorted(checkpoints) == [f"checkpoint-{s}" for s in range(1, SFT_STEPS + 1)]
    for files in checkpoints.values():
        assert {f"rng_state_{r}.pth" for r in range(RANKS)} <= files and "rng_state.pth" not in files
        assert {"adapter_model.safetensors", "optimizer.pt", "scheduler.pt", "trainer_state.json"} <= files

    # telemetry, curve and done marker come from rank 0 alone: each step once, one train_started
    events = it / LAUNCH_DIR / "events.jsonl"
    assert [d["step"] for d in log_lines(events, "metrics")] == list(range(1, SFT_STEPS + 1))
    assert [d["done"] for d in log_lines(events, "progress")] == list(range(1, SFT_STEPS + 1))
    assert len([d for d in log_lines(events, "event") if d["event"] == "train_started"]) == 1
    assert [d["step"] for d in job.of("metrics")] == list(range(1, SFT_STEPS + 1))  # relayed, once each
    curve_lines = (it / CURVE_FILE).read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["step"] for line in curve_lines] == list(range(1, SFT_STEPS + 1))
    assert stats == is_done(it, "train")
    assert stats["curve"] and stats["curve"] == compact_curve(read_curve(it / CURVE_FILE))  # rank 1's is []

    assert (it / "policy" / "adapter_model.safetensors").is_file() and not (it / "policy.tmp").exists()
    assert not (it / train.CKPT_DIR).exists()
    assert not list((it / LAUNCH_DIR).glob("*.rank*"))  # never paused, never stopped
    assert "exit code 0" in (it / LAUNCH_LOG).read_text(encoding="utf-8")
    assert not job.processes()


def test_grpo_on_two_processes(tmp_path, embedded_path):
    cfg = launched_cfg("grpo", batch_size=2, micro_batch=2, num_generations=2, max_new_tokens=4)
    job = Job(tmp_path, cfg, embedded_path, [call_sample(0), text_sample(0)])
    try:
        job.join()
    finally:
        job.abandon()
    assert job.error is None, f"the GRPO run failed: {job.error!r}"
    stats = job.result
    assert stats["method"] == "grpo" and stats["steps"] == 1 and stats["num_generations"] == 2
    assert stats["prompts_per_step"] == 2  # 2 completions per process, 2 processes, 2 per prompt
    # 4 tokens never make a call: the text sample's group scores 1, the call sample's 0, gathered over
    # the ranks into one mean
    assert stats["reward_mean"] == pytest.approx(0.5)
    assert [d["reward_mean"] for d in job.of("metrics")] == [pytest.approx(0.5)]
    assert [p["step"] for p in stats["curve"]] == [1] and stats["curve"][0]["reward"] == pytest.approx(0.5)
    assert (job.ctx.iter_dir / "policy" / "adapter_config.json").is_file()
    assert not job.processes()


def test_pause_stop_kill_and_resume_end_where_the_uninterrupted_run_ends(tmp_path, embedded_path, reference):
    root = tmp_path / "iter-1" / train.CKPT_DIR
    steps = lambda job: [d["done"] for d in job.of("progress")]  # noqa: E731

    # 1. pause as training starts: every rank parks after the step it is in, with a checkpoint
    first = Job(tmp_path, sft_cfg(), embedded_path, SFT_DATA)
    parked = [rank_marker(first.launch_dir, "paused", r) for r in range(RANKS)]
    try:
        first.wait_for("train_started", lambda: first.of("event", "train_started"))
        first.ctx.control.pause.set()
        first.wait_for("both ranks parked", lambda: all(p.exists() for p in parked))
        paused_at = latest_checkpoint(root)
        time.sleep(1.0)  # the parent relays telemetry every 0.5 s
        seen_steps = steps(first)
        time.sleep(1.5)  # still paused: nothing moves
        assert all(p.exists() for p in parked) and steps(first) == seen_steps
        assert paused_at is not None and latest_checkpoint(root) == paused_at
        assert seen_steps == list(range(1, int(paused_at.name.split("-")[1]) + 1))
        # 2. resume: every rank moves on; then stop: the ranks agree on the step, save it and leave
        first.ctx.control.pause.clear()
        first.wait_for("both ranks resumed", lambda: not any(p.exists() for p in parked))
        first.ctx.control.stop.set()
        first.join()
    finally:
        first.abandon()
    assert isinstance(first.error, StageStopped), repr(first.error)
    stopped_at = latest_checkpoint(root)
    k = int(stopped_at.name.split("-")[1])
    assert stopped_at != paused_at and steps(first) == list(range(1, k + 1))
    assert k <= SFT_STEPS - 2  # room left to kill a step
    assert {"adapter_model.safetensors", "optimizer.pt", "trainer_state.json", "rng_state_0.pth",
            "rng_state_1.pth"} <= {f.name for f in stopped_at.iterdir()}
    assert all(rank_marker(first.launch_dir, "stopped", r).exists() for r in range(RANKS))  # STOPPED_RC's path
    log = (tmp_path / "iter-1" / LAUNCH_LOG).read_text(encoding="utf-8")
    # torchrun's failure report, one entry per rank ("rank : 1 (local_rank: 1)" then "exitcode : 3 (pid:
    # ...)"): 3 = STOPPED_RC; -15 = torchrun's SIGTERM to a rank still exiting when another had left
    exited = dict(re.findall(r"rank\s*:\s*(\d+) \(local_rank: \d+\)\s*\n\s*exitcode\s*:\s*(-?\d+)", log))
    assert sorted(exited) == [str(r) for r in range(RANKS)] and "3" in exited.values(), exited
    assert set(exited.values()) <= {"3", "-15"}, exited
    assert is_done(tmp_path / "iter-1", "train") is None and not (tmp_path / "iter-1" / "policy").exists()
    assert not first.processes()

    # 3. rerun: resumes from the stop's checkpoint; SIGKILL the launcher's group one checkpoint later,
    # while the next step runs
    second = Job(tmp_path, sft_cfg(), embedded_path, SFT_DATA)
    try:
        following = root / f"checkpoint-{k + 1}"
        second.wait_for(following.name, lambda: latest_checkpoint(root) == following)
        second.kill_group()
        second.join()
    finally:
        second.abandon()
    assert [d["resumed_from"] for d in second.of("event", "train_started")] == [stopped_at.name]
    assert isinstance(second.error, RuntimeError) and "exit code -9" in str(second.error), repr(second.error)
    assert wait_until_gone(second) == []  # the ranks died with the launcher
    assert is_done(tmp_path / "iter-1", "train") is None  # killed mid-train
    killed_at = latest_checkpoint(root)
    assert killed_at.name == f"checkpoint-{k + 1}"

    # 4. rerun: resumes from the newest checkpoint and ends as the uninterrupted run did
    third = Job(tmp_path, sft_cfg(), embedded_path, SFT_DATA)
    try:
        third.join()
    finally:
        third.abandon()
    assert third.error is None, repr(third.error)
    stats, ref = third.result, reference[0].result
    assert stats["resumed_from"] == killed_at.name and steps(third) == list(range(k + 2, SFT_STEPS + 1))
    assert stats["steps"] == ref["steps"] == SFT_STEPS
    # bit for bit: the steps are single-threaded per process, the adapter's init is seeded, and a resume
    # restores weights, optimizer, scheduler, RNG and the data position exactly
    assert stats["curve"] == ref["curve"] and [p["step"] for p in ref["curve"]] == list(range(1, SFT_STEPS + 1))
    resumed, uninterrupted = (adapter_weights(j.ctx.iter_dir / "policy") for j in (third, reference[0]))
    assert resumed.keys() == uninterrupted.keys()
    differ = [n for n in resumed if not resumed[n].equal(uninterrupted[n])]
    assert not differ, f"{len(differ)} adapter tensors differ, e.g. {differ[0]}"
    assert not third.processes()
