"""The tiny loop (tests/data/tiny-run.toml) run as `looptool core` processes, for the end-to-end and the
kill/resume tests, and the one uninterrupted reference run both compare with.

Under make test's xdist workers the two test files run at the same time on the two workers: the
reference run is made once per session, by whichever asks first, under a file lock in the session's
shared temporary folder, and the kill/resume test asks for it only after its own run, so the two loops
(about 5 minutes each on one thread) overlap instead of queueing on one worker.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from filelock import FileLock

TINY = Path(__file__).parent / "data" / "tiny-run.toml"


def start_core(home: Path, *args) -> subprocess.Popen:
    env = {**os.environ, "LOOPTOOL_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "console.cli", "core", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def wait_for(proc: subprocess.Popen, needle: str, log: list[str], timeout=900) -> None:
    deadline = time.time() + timeout
    for line in proc.stdout:
        log.append(line)
        if needle in line:
            return
        assert time.time() < deadline, f"no {needle!r} within {timeout}s:\n{''.join(log[-30:])}"
    raise AssertionError(f"core exited before {needle!r}:\n{''.join(log[-40:])}")


def finish(proc: subprocess.Popen, log: list[str]) -> int:
    log.extend(proc.stdout)
    return proc.wait(timeout=1800)


def counts(run_dir: Path) -> dict:
    """Records per output file, and the ids in each (no duplicates allowed); the train curve is keyed by
    optimizer step (a resumed training must not repeat or lose a step)."""
    out = {}
    for f in sorted(run_dir.rglob("*.jsonl")):
        key = "step" if f.name == "train_curve.jsonl" else "id"
        ids = [json.loads(x)[key] for x in f.read_text().splitlines()]
        assert len(ids) == len(set(ids)), f"duplicate ids in {f}"
        out[str(f.relative_to(run_dir))] = sorted(ids)
    for f in sorted(run_dir.rglob("composition.json")):
        out[str(f.relative_to(run_dir))] = json.loads(f.read_text())
    return out


def kill_core(proc: subprocess.Popen) -> None:
    """SIGKILL the core alone; its stage worker must die with it (PR_SET_PDEATHSIG)."""
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    raise AssertionError("a stage worker outlived its killed core")


def shared_reference(tmp_path_factory, worker_id: str) -> tuple[Path, Path, str]:
    """(LOOPTOOL_HOME, run dir, the core's output) of the session's uninterrupted tiny run, made on first
    use. Under xdist the folder above the worker's base temp is the session's, shared by its workers;
    run alone, the session's own base temp (never a folder an earlier session left)."""
    base = tmp_path_factory.getbasetemp()
    root = base.parent if worker_id != "master" else base
    home, done, failed = root / "reference-home", root / "reference-run.json", root / "reference-run.failed"
    with FileLock(str(root / "reference-run.lock")):
        if failed.exists():
            raise AssertionError(f"the reference run failed in another worker:\n{failed.read_text()}")
        if not done.exists():
            home.mkdir(exist_ok=True)
            log: list[str] = []
            rc = finish(start_core(home, "--config", str(TINY)), log)
            if rc != 0:
                failed.write_text("".join(log[-60:]))
                raise AssertionError("".join(log[-60:]))
            (run_dir,) = (home / "runs").iterdir()
            done.write_text(json.dumps({"run_dir": str(run_dir), "log": "".join(log)}))
    doc = json.loads(done.read_text())
    return home, Path(doc["run_dir"]), doc["log"]
