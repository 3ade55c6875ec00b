"""Property tests: every decoder of model text, and both benchmarks' responses-file readers, give a valid
result or their documented error (DecodeError for a reply, UserError for a file), never anything else,
on arbitrary text, deep nesting, huge literals, lone surrogates and invalid UTF-8 bytes.

The decoders are the real ones, reached the way the scorers reach them: core.toolcalls, evals.bfcl_prompt
(bfcl-eval's own tree-sitter decoders for Java and JavaScript behind the project's bounds) and
evals.acebench.decode. A valid result must also be writable: what a scorer records of it goes through
the records writer, so every decoded value is checked to be JSON-encodable.
"""
from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from core import toolcalls
from core.decode_bounds import MAX_INT_BITS, DecodeError
from core.errors import UserError
from evals import bfcl_prompt
from evals.acebench import decode as ace_decode
from evals.acebench import responses as ace_responses
from evals.acebench.sandbox import executor
from evals import bfcl_responses

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Text that reaches the interesting paths: call syntax, brackets, quotes, operators, think and tool_call
# tags, numbers of every size, lone surrogates, and runs of one unit long enough to nest deep.
_UNITS = ["[", "]", "(", ")", "{", "}", "f(", "a=", "=", ",", "'", '"', "`", "\\", "-", "!", "not ", "+", "*",
          "**", "<", "->", "a<", ".", "x", "1", "0x", "9" * 50, "f" * 50, " ", "\n", "#", "//", "/*", "...",
          "lambda:", "<tool_call>", "</tool_call>", "<think>", "</think>", "```", "\ud800", "\udfff", "\x00",
          "{\"name\": \"f\", \"arguments\": ", "new int[]{", "**{", "1e999", "True", "None", "null"]
# Repeat counts around every bound: bracket depth (100), tree depth (200), Python's recursion limit
# (~330 levels of ast.unparse), its parser's limits, tree-sitter's crash depth (~30,000).
_runs = st.one_of(st.sampled_from([99, 101, 199, 201, 350, 600, 1000, 3000, 30_000]), st.integers(0, 40_000))
# Integers by their size in bits, so that huge ones are as likely as small ones.
_big = st.integers(0, 20_000).map(lambda bits: 2 ** bits - 1)
_piece = st.one_of(
    st.sampled_from(_UNITS),
    st.text(st.characters(codec=None), max_size=8),
    st.characters(categories=["Cs"]),  # lone surrogates (excluded from text() by default)
    st.builds(lambda u, n: u * n, st.sampled_from(_UNITS), _runs),  # deep or long runs
    st.integers(0, 13_000).map(lambda bits: str(2 ** bits - 1)),  # decimal: under the 4,300-digit limit
    _big.map(hex),
)
model_text = st.lists(_piece, max_size=12).map("".join)

# Argument values built the way a reply writes them: literals of every size and operators over them,
# which the leaderboards' decoders fold (bounded before anything is computed).
_atom = st.one_of(st.integers(-(2 ** 80), 2 ** 80).map(str), _big.map(hex),
                  st.sampled_from(["9", "64", "2", "10", "1.5", "1e308", "'ab'", "''", "[1]", "[]", "(1,)",
                                   "True", "None", "x", "...", "[[1] * 100]"]))
_expr = st.recursive(_atom, lambda e: st.one_of(
    st.builds(lambda a, op, b: f"({a}){op}({b})", e, st.sampled_from(
        ["**", "*", "+", "-", "/", "//", "%", "<<", ">>", "&", "|", "^"]), e),
    st.builds(lambda op, a: f"{op}({a})", st.sampled_from(["-", "+", "~", "not "]), e),
    st.lists(e, max_size=3).map(lambda xs: "[" + ", ".join(xs) + "]"),
    st.builds(lambda a: f"g({a})", e), st.builds(lambda a: f"x[{a}]", e)), max_leaves=8)
call_text = st.lists(_expr, min_size=1, max_size=3).map(
    lambda vs: "[f(" + ", ".join(f"a{i}={v}" for i, v in enumerate(vs)) + ")]")
reply = st.one_of(model_text, call_text)


def writable(value) -> None:
    """What the scorers record must encode (ints over Python's digit limit or odd types would not)."""
    json.dumps(value, ensure_ascii=True, default=str)


def _check(decode, text):
    try:
        out = decode(text)
    except DecodeError as e:
        assert e.kind and isinstance(e.kind, str)
        return
    writable(out)


HEX_LITERAL = "0x" + "f" * 5000  # 20,000 bits: str() of it raises
HUGE_HEX = f"[f(a={HEX_LITERAL})]"
ACE_POWER = "[f(a=((9**64)**64)**2)]"


@FUZZ
@given(reply)
@example(HUGE_HEX)
@example("[f(a=-0x" + "f" * 5000 + ")]")
@example('<tool_call>{"name": "f", "arguments": {"a": ' + "9" * 4000 + "}}</tool_call>")
@example("[f(a=x[" + "-" * 600 + "1])]")
@example("\ud800")
def test_codec_decoders_give_calls_or_a_decode_error(text):
    for parse in (toolcalls.parse_calls, toolcalls.parse_hermes, toolcalls.parse_json_calls,
                  toolcalls.parse_python_calls):
        _check(lambda t: [c.to_dict() for c in parse(t)], text)
    _check(lambda t: [c.to_dict() for c in toolcalls.parse_python_calls(t, positional="drop")], text)


@FUZZ
@given(reply)
@example(HUGE_HEX)
@example(ACE_POWER)
@example("[f(a=g(" + "1+" * 600 + "1))]")
@example("[f(a=[[1] * 10000] * 10000)]")
@example("f(a=" + "!" * 30_000 + "x)")
@example("f(a=" + "1+" * 30_000 + "1)")
@example("f(a='\ud800')")
@example("[f(a0=g(" + HEX_LITERAL + "))]")  # found: ast.unparse of a huge literal (bfcl's nested-call text)
@example("[f(a0=x[" + HEX_LITERAL + "])]")  # found: the same through a subscript's text
def test_bfcl_decoders_give_calls_or_a_decode_error(text):
    for language in ("python", "java", "javascript"):
        for decoding in ("official", "lenient"):
            _check(lambda t: bfcl_prompt.decode(t, "prompt", language, decoding), text)
    _check(lambda t: bfcl_prompt.decode(t, "fc"), text)
    for decoding in ("official", "lenient"):
        _check(lambda t: [c.to_dict() for c in bfcl_prompt.decode_calls(t, "prompt", decoding)], text)


@FUZZ
@given(reply)
@example(ACE_POWER)
@example("[f(a=(((9**64)**64)**64)**64)]")
@example("[f(a=x[" + "a." * 600 + "b])]")
@example("[f(a=" + "'x' * 5000 + " * 3 + "'y')]")
@example("[f(a0=x[" + HEX_LITERAL + "])]")  # found: a subscript's source text holding a huge literal
def test_acebench_decoders_give_calls_or_a_decode_error(text):
    for scoring in ("compat", "strict"):
        for multi_turn in (False, True):
            for decoding in ("official", "lenient"):
                _check(lambda t: ace_decode.decode(t, mode="prompt", scoring=scoring, multi_turn=multi_turn,
                                                   decoding=decoding), text)
    _check(lambda t: ace_decode.decode(t, mode="fc", scoring="compat"), text)
    for elements in ("fail", "skip"):  # the agent sandbox's own reading of a reply
        try:
            calls = executor.parse(text, elements)
        except executor.Unparsable:
            continue
        writable([(c.name, c.kwargs) for c in calls])


def test_decoded_integers_stay_under_the_bound():
    """The property above in its sharpest form: the largest literal and computed ints that decode."""
    at_bound = "[f(a=" + hex(2 ** MAX_INT_BITS - 1) + ")]"
    assert bfcl_prompt.decode(at_bound, "prompt") == [{"f": {"a": 2 ** MAX_INT_BITS - 1}}]
    for text in (HUGE_HEX, "[f(a=" + hex(2 ** MAX_INT_BITS) + ")]"):
        with pytest.raises(DecodeError) as e:
            bfcl_prompt.decode(text, "prompt")
        assert e.value.kind == "too_large"


# ---------------------------------------------------------------------------------- responses files

_json_value = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2 ** 70), 2 ** 70), st.floats(), model_text),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(model_text, inner, max_size=4)),
    max_leaves=12)
_ids = st.one_of(st.sampled_from(["simple_python_0", "multi_turn_base_0", "live_irrelevance_3",
                                  "normal_atom_bool_0", "special_irrelevant_0", "agent_multi_step_0",
                                  "normal_multi_turn_user_switch_0_0"]), model_text)
_line_obj = st.fixed_dictionaries({"id": _ids}, optional={"result": _json_value, "raw": _json_value,
                                                           "process": _json_value})
_line = st.one_of(
    _line_obj.map(lambda o: json.dumps(o).encode()),
    _line_obj.map(lambda o: json.dumps(o, ensure_ascii=False).encode("utf-8", "surrogatepass")),
    st.binary(max_size=40),  # invalid UTF-8 among them
    st.builds(lambda u, n: (u * n).encode(), st.sampled_from(["[", '{"a":', '"', "1"]), st.integers(0, 100_000)),
    model_text.map(lambda t: t.encode("utf-8", "surrogatepass")),
)
responses_bytes = st.lists(_line, max_size=5).map(b"\n".join)


@FUZZ
@given(responses_bytes)
@example(b'{"id": "simple_python_0", "result": "x"}\n' + b"[" * 100_000)
@example(b'{"id": "simple_python_0", "result": "\xff\xfe"}')
@example(b'{"id": "simple_python_0", "result": ' + b"9" * 5000 + b"}")
@example(b'{"id": "simple_python_0", "result": "\\ud800"}')
@example(b'\xef\xbb\xbf{"id": "simple_python_0", "result": "x"}')
@example(b"\x80")  # found: UnicodeDecodeError out of the reader
def test_responses_readers_give_rows_or_a_user_error(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("responses") / "responses.jsonl"
    path.write_bytes(data)
    for read in (bfcl_responses.read_responses, ace_responses.read_responses):
        try:
            rows = read(path)
        except UserError as e:  # one line, naming the file
            assert "\n" not in str(e) and str(path) in str(e), str(e)
            continue
        assert rows and all(isinstance(sid, str) for _, sid, _ in rows)
