"""Hostile model replies are scored invalid with an error type, by every decoder of both benchmarks, and
their records are written: never a crash, a hang or a record the writer cannot write.

The bounds are core.decode_bounds'; the decoders the real ones (bfcl-eval's tree-sitter decoders for
Java and JavaScript behind them). Replies that crashed the process outright are decoded in a child
process, so that the test reports the crash instead of dying of it.
"""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from core import toolcalls
from core.decode_bounds import MAX_DEPTH, MAX_TEXT_CHARS, DecodeError
from core.records import RecordLog, read_records
from evals import bfcl_data, bfcl_prompt, bfcl_score, leaderboard_ast
from evals.acebench import data as ace_data
from evals.acebench import decode as ace_decode
from evals.acebench.sandbox import executor
from evals.acebench.score import score_text
from evals.results import json_safe

ACE_DATA = Path(__file__).parents[1].parent / "shared" / "acebench" / "data_en"
HUGE_HEX = "0x" + "f" * 5000  # 20,000 bits: str() of it raises
ACE_POWER = "((9**64)**64)**2"  # 23 characters, 26,000 bits once computed


def bfcl_entry(category: str):
    return bfcl_data.select([category], 1)[0]


def ace_entry():
    return ace_data.load_category(ACE_DATA, "normal_atom_bool")[0]


def write_and_read_back(tmp_path: Path, records: list[dict]) -> list[dict]:
    log = RecordLog(tmp_path / "records.jsonl")
    for n, rec in enumerate(records):
        log.add({"id": f"r{n}", **rec})
    log.close()
    return read_records(tmp_path / "records.jsonl")


# ------------------------------------------------------------------------------------- huge numbers

def test_huge_integer_literals_are_invalid_replies_with_an_error_type_and_their_records_are_written(tmp_path):
    e = bfcl_entry("simple_python")
    fc_reply = '<tool_call>{"name": "f", "arguments": {"a": ' + "9" * 4000 + "}}</tool_call>"
    results = [bfcl_score.score_single(e, f"[f(a={HUGE_HEX})]", "prompt", d) for d in ("official", "lenient")]
    results += [bfcl_score.score_single(e, f"[f(a={v})]", "prompt")  # ast.unparse would meet the literal
                for v in (f"-{HUGE_HEX}", f"g({HUGE_HEX})", f"x[{HUGE_HEX}]")]
    results.append(bfcl_score.score_single(e, fc_reply, "fc"))
    for res in results:
        assert (res["valid"], res["error_type"]) == (False, "ast_decoder:decoder_failed:too_large"), res
    ace = [score_text(ace_entry(), f"[f(a={value})]", "prompt", decoding=d)
           for value in (HUGE_HEX, ACE_POWER, f"x[{HUGE_HEX}]") for d in ("official", "lenient")]
    for res in ace:
        assert (res["valid"], res["error_type"]) == (False, "wrong_output_format"), res
        assert res["error"].split(":")[0] in ("too_large", "non_literal_value")
    assert len(write_and_read_back(tmp_path, results + ace)) == len(results + ace)


def test_arithmetic_over_a_bound_is_refused_before_it_is_computed():
    for op, a, b in [(ast.Pow(), 9 ** 64, 64), (ast.Mult(), 2 ** 3000, 2 ** 3000), (ast.LShift(), 2 ** 4000, 200),
                     (ast.Mult(), [[1] * 100], 200), (ast.Add(), [[0] * 6000], [[0] * 6000])]:
        with pytest.raises(DecodeError):
            leaderboard_ast._check_operands(op, a, b)  # the check runs on the operands, nothing is built
    for op, a, b in [(ast.Pow(), 2, 64), (ast.Mult(), [1], 3), (ast.Mult(), 2 ** 2000, 2 ** 2000)]:
        leaderboard_ast._check_operands(op, a, b)


@pytest.mark.parametrize("value", [ACE_POWER, "(((9**64)**64)**64)**64", "[[1] * 10000] * 10000",
                                   "[[[0] * 100] * 100] * 100", "(2**63)**64 * (2**63)**64"])
def test_folded_arithmetic_over_a_bound_is_a_decode_error_in_both_benchmarks(value):
    with pytest.raises(DecodeError):
        ace_decode.decode(f"[f(a={value})]", mode="prompt", scoring="compat")
    with pytest.raises(DecodeError):
        bfcl_prompt.decode(f"[f(a={value})]", "prompt")


def test_the_agent_sandbox_refuses_what_every_decoder_refuses():
    for text in (f"[f(a={HUGE_HEX})]", f"[f(a=-{HUGE_HEX})]", "[f(a='" + "x" * MAX_TEXT_CHARS + "')]"):
        with pytest.raises(executor.Unparsable):
            executor.parse(text, "fail")
    (call,) = executor.parse("[f(a=0xff, b='x')]", "fail")
    assert (call.name, call.kwargs) == ("f", {"a": 255, "b": "x"})


def test_the_records_writers_helper_makes_any_value_writable():
    odd = {"big": 2 ** 20_000, (1, 2 ** 20_000): "tuple key", "nested": [[2 ** 20_000]], "s": "\ud800"}
    safe = json_safe(odd)
    assert json.loads(json.dumps(safe))["s"] == "\ud800"  # a lone surrogate is kept, as an escape
    assert safe["big"] == "<integer of 20001 bits>" and safe["nested"] == [["<integer of 20001 bits>"]]


# ------------------------------------------------------------------------------------ lone surrogates

def test_a_lone_surrogate_in_a_reply_is_scored_and_its_record_written(tmp_path):
    e = bfcl_entry("simple_python")
    fc_reply = '<tool_call>{"name": "f", "arguments": {"a": "\\ud800"}}</tool_call>'  # JSON's escape
    results = [bfcl_score.score_single(e, "[f(a='\ud800')]", "prompt"),
               bfcl_score.score_single(e, fc_reply, "fc"),
               score_text(ace_entry(), "[f(a='\udfff')] \ud800", "prompt")]
    back = write_and_read_back(tmp_path, [{"raw": "x\ud800y", **r} for r in results])
    assert [r["raw"] for r in back] == ["x\ud800y"] * 3
    assert back[1]["decoded"] == [{"f": {"a": "\ud800"}}]  # decoded as written, and written as decoded


# ------------------------------------------------------------------------------------------- nesting

_CRASHERS = {  # replies that killed the process (SIGSEGV in tree-sitter's sexp(), RecursionError in unparse)
    "simple_javascript": ["f(a=" + "!" * 30_000 + "x)", "f(a=" + "1+" * 30_000 + "1)",
                          "f(a=" + "(" * 30_000 + "1" + ")" * 30_000 + ")"],
    "simple_java": ["f(a=" + "1+" * 30_000 + "1)", "f(a=" + "-" * 30_000 + "1)"],
    "simple_python": ["[f(a=x[" + "-" * 600 + "1])]", "[f(a=g(" + "1+" * 600 + "1))]",
                      "[f(a=g(" + "not " * 600 + "1))]", "[f(a=x[" + "a." * 600 + "b])]"],
}


def test_replies_nested_deep_without_brackets_are_decode_errors_not_a_crashed_process():
    script = (
        "import json, sys\n"
        "from evals import bfcl_data, bfcl_score\n"
        "cases = json.load(sys.stdin)\n"
        "out = []\n"
        "for cat, texts in cases.items():\n"
        "    e = bfcl_data.select([cat], 1)[0]\n"
        "    for t in texts:\n"
        "        for d in ('official', 'lenient'):\n"
        "            r = bfcl_score.score_single(e, t, 'prompt', d)\n"
        "            out.append((r['valid'], r['error_type']))\n"
        "print(json.dumps(out))\n")
    p = subprocess.run([sys.executable, "-c", script], input=json.dumps(_CRASHERS), capture_output=True,
                       text=True, timeout=300, cwd=Path(__file__).parents[1])
    assert p.returncode == 0, (p.returncode, p.stderr[-2000:])
    verdicts = json.loads(p.stdout)
    assert len(verdicts) == 2 * sum(map(len, _CRASHERS.values()))
    assert set(map(tuple, verdicts)) == {(False, "ast_decoder:decoder_failed:too_deep")}


@pytest.mark.parametrize("text", ["[f(a=x[" + "-" * 600 + "1])]", "[f(a=x[" + "a." * 600 + "b])]",
                                  "[f(a=" + "1+" * 600 + "1)]"])
def test_acebench_python_replies_nested_deep_without_brackets_are_decode_errors(text):
    for scoring in ("compat", "strict"):
        with pytest.raises(DecodeError) as e:
            ace_decode.decode(text, mode="prompt", scoring=scoring)
        assert e.value.kind in ("too_deep", "non_literal_value")


def test_values_nested_under_the_bounds_still_decode():
    depth = MAX_DEPTH - 10
    py = "[f(a=" + "[" * depth + "1" + "]" * depth + ")]"
    nested = [1]
    for _ in range(depth - 1):
        nested = [nested]
    assert bfcl_prompt.decode(py, "prompt") == [{"f": {"a": nested}}]
    assert bfcl_prompt.decode(py, "prompt", decoding="lenient") == [{"f": {"a": nested}}]
    assert ace_decode.decode(py, mode="prompt", scoring="compat") == [{"f": {"a": nested}}]
    js = "f(a=" + "[" * depth + "1" + "]" * depth + ")"
    assert bfcl_prompt.decode(js, "prompt", "javascript") == [{"f": {"a": js[4:-1]}}]  # bfcl keeps it as text
    java = "new A(" * depth + "1" + ")" * depth  # two tree levels a bracket: 180 of the 200 allowed
    assert bfcl_prompt.decode(f'f(a={java}, b="x")', "prompt", "java") == [{"f": {"a": java, "b": "x"}}]


def test_a_tree_sitter_parse_that_cannot_finish_in_time_is_cut_and_the_next_reply_decodes():
    slow = "f(a=" + "->" * 8000  # tree-sitter's error recovery: minutes, unbounded
    with pytest.raises(DecodeError) as e:
        bfcl_prompt.decode(slow, "prompt", "javascript")
    assert e.value.kind == "too_slow"
    # the parser was reset: the next parse starts afresh instead of resuming the one cut off
    assert bfcl_prompt.decode("f(a=1, b='x')", "prompt", "javascript") == [{"f": {"a": "1", "b": "x"}}]
    res = bfcl_score.score_single(bfcl_entry("simple_javascript"), slow, "prompt")
    assert (res["valid"], res["error_type"]) == (False, "ast_decoder:decoder_failed:too_slow")


# ------------------------------------------------------------------------------------------- length

def test_every_decoder_refuses_text_over_the_one_length_bound():
    over = "f(a='" + "x" * MAX_TEXT_CHARS + "')"
    decoders = [toolcalls.parse_calls, toolcalls.parse_hermes, toolcalls.parse_json_calls,
                toolcalls.parse_python_calls, ace_decode.first_list, ace_decode.official_list,
                ace_decode.compat_calls, ace_decode.strict_calls]
    decoders += [lambda t, lang=lang: bfcl_prompt.decode(t, "prompt", lang)
                 for lang in ("python", "java", "javascript")]
    decoders += [lambda t: bfcl_prompt.decode(t, "fc")]
    for decode in decoders:
        with pytest.raises(DecodeError) as e:
            decode(over)
        assert e.value.kind == "too_long"


def test_acebench_has_no_length_bound_of_its_own():
    reply = "[f(a='" + "x" * 300_000 + "')] and some prose"  # over the 200,000 characters it once had
    assert ace_decode.decode(reply, mode="prompt", scoring="compat") == [{"f": {"a": "x" * 300_000}}]
