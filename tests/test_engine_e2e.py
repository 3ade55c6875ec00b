"""The loop end to end on the embedded model (tests/data/tiny-run.toml), and crash safety: a core killed
with SIGKILL mid-train and mid-probe, resumed, ends with the same records as an uninterrupted run.
The core runs as `looptool core` does by default: on the bus, with its embedded broker."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
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


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory, embedded_path):
    home = tmp_path_factory.mktemp("ref-home")
    log: list[str] = []
    proc = start_core(home, "--config", str(TINY))
    rc = finish(proc, log)
    assert rc == 0, "".join(log[-60:])
    (run_dir,) = (home / "runs").iterdir()
    return home, run_dir, "".join(log)


def test_tiny_loop_runs_every_stage_and_stores_results(reference_run):
    home, run_dir, log = reference_run
    assert "run_finished" in log
    for stage in ("train", "probe", "judge", "expand", "eval"):
        assert (run_dir / "iter-1" / f"{stage}.done").exists(), stage
    assert (run_dir / "iter-1" / "assemble.done").exists()
    assert (run_dir / "iter-2" / "eval.done").exists() and (run_dir / "iter-0" / "eval.done").exists()
    assert (run_dir / "iter-1" / "policy" / "adapter_config.json").exists()
    c = counts(run_dir)
    assert len(c["iter-1/dataset.jsonl"]) == len(c["iter-2/dataset.jsonl"]) == 8
    assert c["iter-1/probe.jsonl"] == c["iter-1/dataset.jsonl"]  # every sample of D_1 probed once
    comp = c["iter-1/composition.json"]
    assert comp["total"] == 8 and comp["budget"] == 8
    assert comp["error_seeds"] + comp["expansions"] + comp["high_ppl"] + comp["fresh_seeds"] + \
        comp.get("topped_up", 0) == 8
    train2 = json.loads((run_dir / "iter-2" / "train.done").read_text())
    assert train2["method"] == "grpo"  # tiny-run: SFT first, then GRPO
    env = {**os.environ, "LOOPTOOL_HOME": str(home)}
    show = subprocess.run([sys.executable, "-m", "console.cli", "runs", "show", run_dir.name, "--json"],
                          capture_output=True, text=True, env=env, check=True)
    doc = json.loads(show.stdout)
    assert doc["run"]["state"] == "finished"
    assert [e["iteration"] for e in doc["evals"]] == [0, 1, 2]
    assert [i["iteration"] for i in doc["iterations"]] == [1, 2]
    listed = subprocess.run([sys.executable, "-m", "console.cli", "runs", "list"], capture_output=True,
                            text=True, env=env, check=True).stdout
    assert run_dir.name in listed


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


def test_sigkill_mid_train_and_mid_probe_then_resume(reference_run, tmp_path):
    _, ref_dir, _ = reference_run
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
    assert counts(run_dir) == counts(ref_dir)


def test_resume_unknown_run_and_double_start(tmp_path):
    env = {**os.environ, "LOOPTOOL_HOME": str(tmp_path)}
    p = subprocess.run([sys.executable, "-m", "console.cli", "core", "--resume", "nope"], capture_output=True,
                       text=True, env=env)
    assert p.returncode == 2 and "no such run" in p.stderr
    p = subprocess.run([sys.executable, "-m", "console.cli", "core"], capture_output=True, text=True, env=env)
    assert p.returncode == 2 and "exactly one of" in p.stderr


# -- eval compare (issue 14) --

def test_eval_compare_of_two_iterations_matches_their_records(reference_run):
    """`looptool eval compare` on the tiny run's held-out evals of iterations 1 and 2: every count it
    prints is the one the two records files give, and RUN:J names the same evals."""
    from core.store import ResultStore

    home, run_dir, _ = reference_run
    with ResultStore(home / "looptool.db.json", read_only=True) as store:
        by_iteration = {d["iteration"]: d for d in store.get_docs("evals", run_id=run_dir.name)
                        if d["benchmark"].startswith("bfcl")}
    first, second = by_iteration[1], by_iteration[2]
    env = {**os.environ, "LOOPTOOL_HOME": str(home)}
    p = subprocess.run([sys.executable, "-m", "console.cli", "eval", "compare", first["eval_id"], second["eval_id"],
                        "--json"], capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)

    def verdicts(summary: dict) -> dict[str, tuple[str, bool, object]]:
        lines = Path(summary["records"]).read_text().splitlines()
        return {r["id"]: (r["category"], r["valid"] is True, r["raw"]) for r in map(json.loads, lines)}

    a, b = verdicts(first), verdicts(second)
    assert set(a) == set(b) and len(a) == 2  # simple_python, 2 held-out entries in both
    shared = sorted(a)
    row = doc["categories"][0]
    assert [c["category"] for c in doc["categories"]] == ["simple_python"]
    assert (row["n"], row["correct_a"], row["correct_b"]) == (
        2, sum(a[i][1] for i in shared), sum(b[i][1] for i in shared))
    assert row["accuracy_b"] - row["accuracy_a"] == pytest.approx(row["difference"]["value"])
    assert row["difference"]["low"] <= row["difference"]["value"] <= row["difference"]["high"]
    broke = sorted(i for i in shared if a[i][1] and not b[i][1])
    fixed = sorted(i for i in shared if b[i][1] and not a[i][1])
    assert sorted(f["id"] for f in doc["right_to_wrong"]["entries"]) == broke
    assert sorted(f["id"] for f in doc["wrong_to_right"]["entries"]) == fixed
    for f in doc["right_to_wrong"]["entries"] + doc["wrong_to_right"]["entries"]:
        assert (f["a"]["raw"], f["b"]["raw"]) == (a[f["id"]][2], b[f["id"]][2])
    assert doc["only_in_a"]["count"] == doc["only_in_b"]["count"] == 0
    assert (doc["a"]["iteration"], doc["b"]["iteration"]) == (1, 2)
    again = subprocess.run([sys.executable, "-m", "console.cli", "eval", "compare", f"{run_dir.name}:1",
                            f"{run_dir.name}:2", "--json"], capture_output=True, text=True, env=env, check=True)
    assert json.loads(again.stdout) == doc
