"""`looptool eval acebench` end to end on the embedded model (real weights, CPU): a normal, a special and an agent
entry, then the same command again resumes without generating."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

DATA = Path(__file__).parents[1].parent / "shared" / "acebench" / "data_en"
IDS = ["normal_atom_enum_1", "special_irrelevant_0", "agent_multi_step_2"]


def run(args, home):
    env = {**os.environ, "LOOPTOOL_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "console.cli", *args], capture_output=True, text=True, env=env,
                          timeout=1200)


def test_embedded_model_end_to_end_and_resume(tmp_path, embedded_path):
    args = ["eval", "acebench", "--model", "embedded", "--ids", ",".join(IDS), "--max-new-tokens", "24",
            "--max-dialog-turns", "4", "--data-dir", str(DATA), "--no-progress"]
    p = run(args + ["--json"], tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    s = json.loads(p.stdout)
    assert s["mode"] == "prompt"  # SmolLM2's template renders no tools
    assert s["complete"] and s["generated_tokens"] > 0 and s["tokens_per_s"] > 0
    assert set(s["per_category"]) == {"normal_atom_enum", "special_irrelevant", "agent_multi_step"}
    assert 0.0 <= s["scores"]["overall"] <= 1.0 and "agent" in s["scores_strict"]
    records = {r["id"]: r for r in map(json.loads, open(s["records"]))}
    assert set(records) == set(IDS)
    for rid in IDS[:2]:
        r = records[rid]
        assert isinstance(r["raw"], str) and isinstance(r["valid"], bool) and isinstance(r["strict"]["valid"], bool)
        assert r["valid"] or r["error_type"]
    agent = records["agent_multi_step_2"]
    assert [m["sender"] for m in agent["raw"]] == ["agent", "execution", "agent", "execution"] or \
        agent["stop_reason"] == "finish conversation"
    assert agent["stop_reason"] in ("message limit", "finish conversation")
    assert isinstance(agent["state"], list) and isinstance(agent["process_score"], float)
    # the same command again: everything is resumed, nothing regenerated, the table is printed
    p = run(args, tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "Overall" in p.stdout and "agent_multi_step" in p.stdout
    summary = json.loads(Path(s["records"]).with_name("summary.json").read_text())
    assert summary["resumed"] == 3 and summary["generated_tokens"] == 0
    assert summary["per_category"] == s["per_category"]
