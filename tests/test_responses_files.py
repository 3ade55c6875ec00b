"""Responses files and the eval commands around them, run as the user runs them (`python -m console.cli`
in a subprocess, a fresh $LOOPTOOL_HOME each): a bad file or option is one `error:` line and exit code
2 with nothing left behind; hostile replies in a good file are scored, and a rerun resumes; `--mode auto`
is decided line by line; `eval list` into a pipe prints ids that `eval show` accepts."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from core.toolcalls import ToolCall, render_hermes
from evals import bfcl_data
from evals.acebench import data as ace_data
from evals.acebench import truth as ace_truth
from evals.bfcl_truth import single_turn_text

ROOT = Path(__file__).parents[1]
ACE_DATA = ROOT.parent / "shared" / "acebench" / "data_en"


def looptool(home: Path, *args) -> subprocess.CompletedProcess:
    env = {**os.environ, "LOOPTOOL_HOME": str(home), "LOOPTOOL_ACEBENCH_URL": "http://127.0.0.1:9"}
    return subprocess.run([sys.executable, "-m", "console.cli", *args], capture_output=True, text=True,
                          timeout=300, env=env, cwd=ROOT)


def one_error_line(p, *needles) -> str:
    assert p.returncode == 2, (p.stdout, p.stderr)
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), p.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def nothing_stored(home: Path) -> bool:
    evals = home / "evals"
    return not evals.exists() or not any(evals.iterdir())


BENCHMARKS = {"bfcl": ("simple_python_0", []), "acebench": ("special_irrelevant_0", ["--data-dir", str(ACE_DATA)])}


def score(home: Path, benchmark: str, path: Path, *more) -> subprocess.CompletedProcess:
    return looptool(home, "eval", benchmark, *BENCHMARKS[benchmark][1], "--responses", str(path), "--no-progress",
                    *more)


# ------------------------------------------------------------------------------------ bad files

def _bad_files(sid: str) -> dict[str, tuple[bytes | None, list[str]]]:
    good = json.dumps({"id": sid, "result": "x"}).encode()
    return {
        "not_utf8": (good + b'\n{"id": "b", "result": "caf\xe9"}\n',
                     [":2: not UTF-8 text (byte 0xe9 at column 27)"]),
        "deep_json": (good + b"\n" + b"[" * 100_000 + b"\n", [":2: JSON nested deeper than 100 levels"]),
        "deep_object": (b'{"id": "a", "result": ' + b'{"a": ' * 100_000 + b"1}\n", [":1: JSON nested deeper"]),
        "long_number": (b'{"id": "a", "result": ' + b"9" * 5000 + b"}\n", [":1: not valid JSON", "4300 digits"]),
        "directory": (None, ["is a directory"]),
    }


@pytest.mark.parametrize("benchmark", BENCHMARKS)
@pytest.mark.parametrize("case", list(_bad_files("x")))
def test_a_bad_responses_file_is_one_error_line_naming_it_and_nothing_is_stored(tmp_path, benchmark, case):
    content, needles = _bad_files(BENCHMARKS[benchmark][0])[case]
    path = tmp_path / "responses.jsonl"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    home = tmp_path / "home"
    line = one_error_line(score(home, benchmark, path), *needles)
    assert str(path) in line
    assert nothing_stored(home)


@pytest.mark.parametrize("benchmark", BENCHMARKS)
def test_an_unknown_mode_is_refused_with_the_allowed_values_before_anything_is_read(tmp_path, benchmark):
    path = tmp_path / "responses.jsonl"
    path.write_text(json.dumps({"id": BENCHMARKS[benchmark][0], "result": "x"}) + "\n")
    home = tmp_path / "home"
    one_error_line(score(home, benchmark, path, "--mode", "bogus"), "--mode", "'bogus'", "auto, prompt, fc")
    assert nothing_stored(home)


# ------------------------------------------------------------------------------- hostile replies

def test_hostile_replies_in_a_responses_file_are_scored_and_a_rerun_resumes(tmp_path):
    """Each of these once killed the eval (and every rerun, on the same record): a lone surrogate, a
    5,000-digit literal, a reply nested 30,000 deep for bfcl's JavaScript decoder."""
    py = bfcl_data.select(["simple_python"], 3)
    js = bfcl_data.select(["simple_javascript"], 1)[0]
    rows = [{"id": py[0].id, "result": "[f(a='\ud800')]"},
            {"id": py[1].id, "result": "[f(a=0x" + "f" * 5000 + ")]"},
            {"id": py[2].id, "result": single_turn_text(py[2], "prompt")},
            {"id": js.id, "result": "f(a=" + "!" * 30_000 + "x)"}]
    path = tmp_path / "responses.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    home = tmp_path / "home"
    first = score(home, "bfcl", path, "--json")
    assert first.returncode == 0, first.stderr[-3000:]
    summary = json.loads(first.stdout)
    records = {r["id"]: r for r in map(json.loads, open(summary["records"]))}
    assert records[py[0].id]["raw"] == "[f(a='\ud800')]"
    assert [records[r["id"]]["valid"] for r in rows] == [False, False, True, False]
    assert records[py[1].id]["error_type"] == "ast_decoder:decoder_failed:too_large"
    assert records[js.id]["error_type"] == "ast_decoder:decoder_failed:too_deep"
    again = score(home, "bfcl", path, "--json")
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads(again.stdout)["per_category"] == summary["per_category"]
    assert len(open(summary["records"]).readlines()) == len(rows)  # resumed: nothing scored twice


# ------------------------------------------------------------------------------- --mode auto

def _fc(entry) -> str:
    """The entry's expected calls as fc-mode <tool_call> blocks (its prompt-mode twin: truth.reply)."""
    gt = entry.ground_truth[0] if isinstance(entry.ground_truth, list) else entry.ground_truth
    return render_hermes([ToolCall(re.sub(r"_\d+$", "", name), args) for name, args in gt.items()])


def test_acebench_auto_mode_is_decided_line_by_line(tmp_path):
    entries = ace_data.select(ACE_DATA, ["normal_atom_enum"], per_category=4)
    rows = [{"id": e.id, "result": ace_truth.reply(e) if n % 2 else _fc(e)}
            for n, e in enumerate(entries)]
    path = tmp_path / "mixed.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    home = tmp_path / "home"
    auto = score(home, "acebench", path, "--json")
    assert auto.returncode == 0, auto.stderr[-3000:]
    assert json.loads(auto.stdout)["per_category"]["normal_atom_enum"]["correct"] == 4
    prompt = score(home, "acebench", path, "--json", "--mode", "prompt")  # one mode for all: the fc half fails
    assert json.loads(prompt.stdout)["per_category"]["normal_atom_enum"]["correct"] == 2


def test_bfcl_auto_mode_is_decided_line_by_line(tmp_path):
    entries = bfcl_data.select(["simple_python"], 4)
    rows = [{"id": e.id, "result": single_turn_text(e, "fc" if n % 2 else "prompt")}
            for n, e in enumerate(entries)]
    path = tmp_path / "mixed.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    p = score(tmp_path / "home", "bfcl", path, "--json")
    assert p.returncode == 0, p.stderr[-3000:]
    assert json.loads(p.stdout)["per_category"]["simple_python"]["correct"] == 4


# ----------------------------------------------------------------------------------- eval list

def test_eval_list_into_a_pipe_prints_whole_ids_that_eval_show_accepts(tmp_path):
    home = tmp_path / "home"
    path = tmp_path / "responses.jsonl"
    e = bfcl_data.select(["simple_python"], 1)[0]
    path.write_text(json.dumps({"id": e.id, "result": single_turn_text(e, "prompt")}) + "\n")
    stored = json.loads(score(home, "bfcl", path, "--json").stdout)["eval_id"]
    listed = looptool(home, "eval", "list")  # stdout is a pipe here, not a terminal
    assert listed.returncode == 0, listed.stderr
    rows = [ln for ln in listed.stdout.splitlines() if ln.startswith("│")]
    pasted = rows[0].split("│")[1].strip()  # the first cell, as a user would copy it
    assert pasted == stored
    shown = looptool(home, "eval", "show", pasted)
    assert shown.returncode == 0, shown.stderr
    assert "simple_python" in shown.stdout
