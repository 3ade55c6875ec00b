"""`looptool eval acebench`: bad input gives one clear line and exit code 2; --responses scores a file."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from evals.acebench import data, truth

DATA = Path(__file__).parents[1].parent / "shared" / "acebench" / "data_en"


def looptool(*args, home=None):
    env = dict(os.environ)
    if home is not None:
        env["LOOPTOOL_HOME"] = str(home)
    env["LOOPTOOL_ACEBENCH_URL"] = "http://127.0.0.1:9"  # never the network, even if a test forgets --data-dir
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        env.pop(var, None)
    return subprocess.run([sys.executable, "-m", "console.cli", *args], capture_output=True, text=True, timeout=300,
                          env=env)


def one_error_line(p, *needles):
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert "Traceback" not in p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, p.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def test_help():
    p = looptool("eval", "acebench", "--help")
    assert p.returncode == 0 and "--user-model" in p.stdout and "--data-dir" in p.stdout


@pytest.mark.parametrize("args,needles", [
    (["--categories", "atom,bogus"], ["unknown category 'bogus'"]),
    (["--ids", "special_irrelevant_999", "--categories", "special"], ["special_irrelevant_999"]),
    (["--backend", "tgi"], ["unknown backend 'tgi'"]),
    (["--backend", "openai"], ["--base-url"]),
    (["--mode", "xml"], ["unknown mode 'xml'"]),
    (["--user-backend", "openai"], ["--user-backend needs --user-model"]),
    (["--user-model", "gpt-4o", "--user-backend", "openai-chat"], ["--user-base-url"]),
    (["--user-model", "x", "--user-backend", "carrier-pigeon"], ["unknown backend 'carrier-pigeon'"]),
    (["--model", "no-such-model"], ["unknown model 'no-such-model'"]),
])
def test_bad_arguments(args, needles):
    one_error_line(looptool("eval", "acebench", "--data-dir", str(DATA), *args), "error:", *needles)


def test_bad_data_dir(tmp_path):
    one_error_line(looptool("eval", "acebench", "--data-dir", str(tmp_path / "nope")), "no such directory")
    (tmp_path / "d").mkdir()
    one_error_line(looptool("eval", "acebench", "--data-dir", str(tmp_path / "d")), "missing")


def test_offline_default_download_fails_clearly(tmp_path):
    one_error_line(looptool("eval", "acebench", "--categories", "special", home=tmp_path),
                   "cannot download ACEBench data", "--data-dir")


@pytest.mark.parametrize("lines,needle", [
    (['{"id": "special_irrelevant_0", "result": "x"}', "{not json"], ":2: not valid JSON"),
    (['{"result": "x"}'], ":1: missing \"id\""),
    (['{"id": "nope_1", "result": "x"}'], ":1: unknown ACEBench id 'nope_1'"),
    (['{"id": "special_irrelevant_999", "result": "x"}'], ":1: unknown ACEBench id"),
    (['{"id": "special_irrelevant_0", "result": ["x"]}'], ":1: id 'special_irrelevant_0': \"result\" must be"),
    (['{"id": "special_irrelevant_0"}'], ":1: id 'special_irrelevant_0': missing \"result\""),
    (['{"id": "agent_multi_step_0", "result": "x"}'], ":1: id 'agent_multi_step_0': agent \"result\""),
    (['{"id": "agent_multi_step_0", "result": [], "process": "x"}'], ":1: id 'agent_multi_step_0': \"process\""),
    (['{"id": "special_irrelevant_0", "result": "a"}', '{"id": "special_irrelevant_0", "result": "b"}'],
     ":2: duplicate id"),
    (['[1, 2]'], ":1: expected a JSON object"),
])
def test_malformed_responses_file(tmp_path, lines, needle):
    f = tmp_path / "resp.jsonl"
    f.write_text("\n".join(lines) + "\n")
    line = one_error_line(looptool("eval", "acebench", "--data-dir", str(DATA), "--responses", str(f)),
                          str(f) + needle)
    assert line.startswith("error: ")


def test_score_responses_then_list(tmp_path):
    rows = []
    for cat in ("normal_atom_enum", "normal_similar_api", "special_incomplete", "special_irrelevant"):
        for e in data.select(DATA, [cat], per_category=3):
            rows.append({"id": e.id, "result": truth.reply(e)})
    rows.append({"id": "normal_multi_turn_user_switch_0_0", "result": "[wrong()]"})  # its turn 0_1 is missing
    rows.append({"id": "normal_atom_bool_3", "result": "[__import__('os').system('touch PWNED')]"})
    rows.append({"id": "agent_multi_step_3", "result": [], "process": ["[turn_on_wifi()]"]})
    f = tmp_path / "resp.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    p = looptool("eval", "acebench", "--data-dir", str(DATA), "--responses", str(f), "--json", "--no-progress",
                 home=tmp_path)
    assert p.returncode == 0, p.stderr
    s = json.loads(p.stdout)
    per = s["per_category"]
    for cat in ("normal_atom_enum", "normal_similar_api", "special_incomplete", "special_irrelevant"):
        assert per[cat] == {**per[cat], "correct": 3, "total": 3, "accuracy": 1.0}, cat
    assert per["normal_atom_bool"]["correct"] == 0 and per["agent_multi_step"]["correct"] == 0
    mt = per["normal_multi_turn_user_switch"]
    assert (mt["total"], mt["turns_total"], mt["correct"]) == (1, 2, 0)
    assert s["error_types"]["wrong number of class"] == 1
    assert not (tmp_path / "PWNED").exists() and not Path("PWNED").exists()
    records = [json.loads(x) for x in open(s["records"])]
    assert len(records) == len(rows) + 1 and any(r.get("missing") for r in records)
    listed = json.loads(looptool("eval", "list", "--json", home=tmp_path).stdout)
    assert s["eval_id"] in [r["eval_id"] for r in listed]
    p = looptool("eval", "acebench", "--data-dir", str(DATA), "--responses", str(f), "--no-progress", home=tmp_path)
    assert p.returncode == 0 and "Overall" in p.stdout and "special_incomplete" in p.stdout
    assert "lenient %" in p.stdout and "decoding official" in p.stdout
