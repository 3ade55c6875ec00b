"""`looptool eval bfcl` end to end on the embedded model (real weights, CPU), and resume after a kill."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from evals import bfcl_data

pytestmark = pytest.mark.slow


def run(args, home, **kw):
    env = {**os.environ, "LOOPTOOL_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "console.cli", *args], capture_output=True, text=True,
                          env=env, timeout=1200, **kw)


def test_per_category_2_end_to_end(tmp_path, embedded_path):
    # Multi-turn prompts are 4-10k tokens: on 2 CPU cores one step costs ~10 s, so this run caps prompts
    # at 2,048 tokens and the multi-turn entries are recorded as too long (the driver itself runs on
    # the embedded model in test_multi_turn_entry_on_embedded_model).
    args = ["eval", "bfcl", "--model", "embedded", "--per-category", "2", "--max-new-tokens", "48",
            "--max-prompt-tokens", "2048", "--no-progress"]
    p = run(args + ["--json"], tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    s = json.loads(p.stdout)
    assert set(s["per_category"]) == set(bfcl_data.CATEGORIES)
    assert all(c["total"] == 2 for c in s["per_category"].values())
    assert s["mode"] == "prompt"  # SmolLM2's template renders no tools
    assert s["complete"] and s["generated_tokens"] > 0 and s["tokens_per_s"] > 0
    assert set(s["scores"]) >= {"overall", "non_live_ast", "live", "multi_turn", "relevance", "irrelevance"}
    records = [json.loads(x) for x in open(s["records"])]
    assert len(records) == 34 and len({r["id"] for r in records}) == 34
    for r in records:
        assert isinstance(r["valid"], bool)
        if not r["valid"]:
            assert r["error_type"]
        if r["category"].startswith("multi_turn"):
            assert r["error_type"] == "inference_error:prompt_too_long"
        else:
            assert isinstance(r["raw"], str) or r["error_type"] == "inference_error:prompt_too_long"
    assert sum(isinstance(r["raw"], str) for r in records) >= 20
    # the same command again: everything is resumed, nothing regenerated, the table is printed
    p = run(args, tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "Non-Live AST" in p.stdout and "live_irrelevance" in p.stdout and "17/17 categories" in p.stdout
    again = json.loads(run(["eval", "show", s["eval_id"], "--json"], tmp_path).stdout)
    assert again["resumed"] == 34 and again["generated_tokens"] == 0
    assert again["per_category"] == s["per_category"]


def test_multi_turn_entry_on_embedded_model(tmp_path, embedded_path):
    eid = "multi_turn_miss_func_9"  # the shortest multi-turn prompt (~3.9k tokens)
    p = run(["eval", "bfcl", "--model", "embedded", "--categories", "multi_turn_miss_func", "--ids", eid,
             "--max-new-tokens", "32", "--json", "--no-progress"], tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    s = json.loads(p.stdout)
    (rec,) = [json.loads(x) for x in open(s["records"])]
    entry = bfcl_data.select(["multi_turn_miss_func"], ids=[eid])[0]
    assert rec["id"] == eid and isinstance(rec["raw"], list)
    assert 1 <= len(rec["raw"]) <= len(entry.question)
    assert all(isinstance(step, str) for turn in rec["raw"] for step in turn)
    assert rec["valid"] is False or rec["error_type"] is None
    assert s["generated_tokens"] > 0


def test_interrupted_eval_resumes_without_redoing_samples(tmp_path, embedded_path):
    args = ["eval", "bfcl", "--model", "embedded", "--categories", "simple_python,irrelevance",
            "--per-category", "6", "--batch-size", "1", "--max-new-tokens", "24", "--no-progress"]
    env = {**os.environ, "LOOPTOOL_HOME": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-m", "console.cli", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    records = None
    while time.time() < deadline:
        found = list(tmp_path.glob("evals/*/records.jsonl"))
        if found and found[0].read_text().count("\n") >= 4:
            records = found[0]
            break
        assert proc.poll() is None, "eval finished before it could be interrupted"
        time.sleep(0.2)
    assert records is not None, "no records written within 10 minutes"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = [ln.rstrip("\n") for ln in records.read_text().splitlines(keepends=True)
              if ln.endswith("\n")]  # a line torn by the kill is cut off by the resumed run
    done_before = {json.loads(x)["id"] for x in before}
    assert 4 <= len(done_before) < 12
    p = run(args + ["--json"], tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    s = json.loads(p.stdout)
    after = records.read_text().splitlines()
    assert after[:len(before)] == before  # finished samples were not rewritten
    ids = [json.loads(x)["id"] for x in after]
    assert len(ids) == 12 and len(set(ids)) == 12
    assert s["resumed"] == len(done_before) and s["complete"]


def test_progress_callback_and_stop_checkpoint(embedded_path, hf_backend):
    """The loop's eval stage sees progress after every record and can stop between records, keeping them."""
    from evals.bfcl import EvalConfig, run_eval

    class Stop(Exception):
        pass

    seen: list[tuple[int, int]] = []

    def checkpoint():
        if len(seen) >= 3:  # the initial (0, 4) call, then two records
            raise Stop()

    cfg = EvalConfig(model=embedded_path, categories=["irrelevance"], per_category=4,
                     max_new_tokens=4, seed=7)
    with pytest.raises(Stop):
        run_eval(cfg, hf_backend, progress=False, on_progress=lambda d, t, tokens: seen.append((d, t)),
                 checkpoint=checkpoint)
    assert seen == [(0, 4), (1, 4), (2, 4)]
    seen.clear()
    summary = run_eval(cfg, hf_backend, progress=False, on_progress=lambda d, t, tokens: seen.append((d, t)))
    assert summary["resumed"] == 2 and seen[0] == (2, 4) and seen[-1] == (4, 4)
