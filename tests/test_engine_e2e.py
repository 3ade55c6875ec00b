"""The loop end to end on the embedded model (tests/data/tiny-run.toml): every stage's output, the store,
`runs show` / `runs list`, and the operator's tools on the finished run. The core runs as `looptool
core` does by default: on the bus, with its embedded broker. The kill/resume test is in
test_engine_resume.py and compares with the same reference run (tests/loop_runs.py)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from loop_runs import counts, shared_reference

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory, worker_id, embedded_path):
    return shared_reference(tmp_path_factory, worker_id)


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


def test_resume_unknown_run_and_double_start(tmp_path):
    env = {**os.environ, "LOOPTOOL_HOME": str(tmp_path)}
    p = subprocess.run([sys.executable, "-m", "console.cli", "core", "--resume", "nope"], capture_output=True,
                       text=True, env=env)
    assert p.returncode == 2 and "no such run" in p.stderr
    p = subprocess.run([sys.executable, "-m", "console.cli", "core"], capture_output=True, text=True, env=env)
    assert p.returncode == 2 and "exactly one of" in p.stderr
