"""Tests for core.toolcalls: parsing, rendering, hostile inputs, matching, bfcl-eval parity.

The reward built on this codec (core.prompt_format.reward) is tested in test_prompt_format.py."""
from __future__ import annotations

import json

import pytest

from core.toolcalls import (
    MAX_DEPTH,
    MAX_TEXT_CHARS,
    DecodeError,
    ToolCall,
    parse_calls,
    parse_hermes,
    parse_json_calls,
    parse_openai_tool_calls,
    parse_python_calls,
    render_call_string,
    render_hermes,
    render_python,
    strip_think,
    tool_match,
)

CALLS = [
    ToolCall("get_weather", {"city": "Paris", "unit": "celsius"}),
    ToolCall("math.factorial", {"number": 5}),
    ToolCall("f", {"s": "it's \"quoted\" \\ é中", "n": -2.5, "b": True, "z": None,
                   "l": [1, [2, {"k": "v"}]], "d": {"x": {"y": []}}}),
    ToolCall("noargs", {}),
]


def _kind(exc_info) -> str:
    return exc_info.value.kind


# ------------------------------------------------------------------------------------ ToolCall

def test_toolcall_shapes_and_tuple_normalisation():
    c = ToolCall("f", {"a": (1, (2, 3)), "b": {"c": (4,)}})
    assert c.arguments == {"a": [1, [2, 3]], "b": {"c": [4]}}
    assert c.to_dict() == {"name": "f", "arguments": c.arguments}
    assert c.to_bfcl() == {"f": c.arguments}
    with pytest.raises(TypeError):
        ToolCall("f", [1])


def test_decode_error_is_value_error_with_kind():
    with pytest.raises(ValueError) as e:
        parse_python_calls("[f(1)]")
    assert _kind(e) == "positional_args"
    assert "positional" in str(e.value)


# ------------------------------------------------------------------------------------ round-trips

def test_roundtrip_hermes():
    text = render_hermes(CALLS)
    assert text.count("<tool_call>\n{") == len(CALLS)
    assert parse_hermes(text) == CALLS
    assert parse_calls(text) == CALLS


def test_render_hermes_matches_qwen_template_shape():
    assert render_hermes([ToolCall("f", {"a": 1, "b": "é"})]) == (
        '<tool_call>\n{"name": "f", "arguments": {"a": 1, "b": "é"}}\n</tool_call>'
    )


def test_roundtrip_python():
    text = render_python(CALLS)
    assert parse_python_calls(text) == CALLS
    assert parse_calls(text) == CALLS
    assert render_call_string(CALLS[1]) == "math.factorial(number=5)"
    assert render_python([]) == "[]"


def test_render_python_rejects_non_identifier_keys():
    with pytest.raises(ValueError):
        render_call_string(ToolCall("f", {"my-arg": 1}))
    with pytest.raises(ValueError):
        render_python([ToolCall("f", {"class": 1})])


def test_roundtrip_json():
    text = json.dumps([c.to_dict() for c in CALLS])
    assert parse_json_calls(text) == CALLS
    assert parse_calls(text) == CALLS
    assert parse_calls("```json\n" + text + "\n```") == CALLS


def test_json_shapes():
    assert parse_json_calls('{"name": "f", "arguments": {"a": 1}}') == [ToolCall("f", {"a": 1})]
    assert parse_json_calls('[{"function": "f", "parameters": {"a": 1}}]') == [ToolCall("f", {"a": 1})]
    openai = '[{"type": "function", "function": {"name": "f", "arguments": "{\\"a\\": 1}"}}]'
    assert parse_json_calls(openai) == [ToolCall("f", {"a": 1})]
    with pytest.raises(DecodeError) as e:
        parse_json_calls("[1, 2]")
    assert _kind(e) == "not_a_call_list"
    with pytest.raises(DecodeError) as e:
        parse_json_calls('{"name": "f", "arguments": [1]}')
    assert _kind(e) == "bad_arguments"
    with pytest.raises(DecodeError) as e:
        parse_json_calls('{"name": "bad name", "arguments": {}}')
    assert _kind(e) == "bad_name"


def test_openai_tool_calls():
    tcs = [
        {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"a": [1, 2]}'}},
        {"id": "call_2", "type": "function", "function": {"name": "g", "arguments": "{}"}},
    ]
    assert parse_openai_tool_calls(tcs) == [ToolCall("f", {"a": [1, 2]}), ToolCall("g", {})]
    assert parse_openai_tool_calls([]) == []
    with pytest.raises(DecodeError) as e:
        parse_openai_tool_calls([{"function": {"name": "f", "arguments": "{not json"}}])
    assert _kind(e) == "bad_json"


# ------------------------------------------------------------------------------------ think

def test_strip_think_with_and_without_opening_tag():
    assert strip_think("<think>\nhmm <tool_call>\n</think>\n\nHello") == "Hello"
    assert strip_think("a<think>x</think>b<think>y</think>c") == "abc"
    # Qwen3: <think> sits in the prompt, the completion starts inside the thought.
    assert strip_think("reasoning...\n</think>\n\n<tool_call>x") == "<tool_call>x"
    assert strip_think("a</think>b</think> c ") == "c"
    assert strip_think("  plain  ") == "plain"
    assert strip_think("<think>never closed") == "<think>never closed"


def test_parse_calls_strips_think():
    text = "<think>maybe [g(x=1)]</think>\n" + render_hermes([ToolCall("f", {"a": 1})])
    assert parse_calls(text) == [ToolCall("f", {"a": 1})]
    assert parse_calls("I will call f(a=1)</think>[f(a=2)]") == [ToolCall("f", {"a": 2})]


def test_parse_calls_auto_detection():
    assert parse_calls("Sure, the weather in Paris is sunny.") == []
    assert parse_calls("") == []
    assert parse_calls("[]") == []
    assert parse_calls("f(a=1)") == [ToolCall("f", {"a": 1})]
    assert parse_calls('[{"name": "f", "arguments": {}}]') == [ToolCall("f", {})]
    with pytest.raises(DecodeError):
        parse_calls("f(a=1)", fmt="json")
    with pytest.raises(ValueError):
        parse_calls("x", fmt="yaml")


# ------------------------------------------------------------------------------------ hermes

def test_hermes_multiple_blocks_and_whitespace():
    text = ('Let me check.\n<tool_call>{"name": "a", "arguments": {"x": 1}}</tool_call>'
            '<tool_call>\n\n   {"name": "b", "arguments": {}}  \n\n</tool_call>\n'
            '<tool_call>\n{"name": "a", "arguments": {"x": 1}}\n</tool_call>')
    assert parse_hermes(text) == [ToolCall("a", {"x": 1}), ToolCall("b", {}), ToolCall("a", {"x": 1})]


def test_hermes_no_tag_is_text_reply():
    assert parse_hermes("The answer is 42.") == []


def test_hermes_arguments_as_json_string():
    text = '<tool_call>\n{"name": "f", "arguments": "{\\"a\\": [1, 2], \\"b\\": \\"x\\"}"}\n</tool_call>'
    assert parse_hermes(text) == [ToolCall("f", {"a": [1, 2], "b": "x"})]


def test_hermes_bad_json():
    with pytest.raises(DecodeError) as e:
        parse_hermes('<tool_call>\n{"name": "f", "arguments": {"a": 1}\n</tool_call>')
    assert _kind(e) == "bad_json"
    with pytest.raises(DecodeError) as e:
        parse_hermes("<tool_call>\nf(a=1)\n</tool_call>")
    assert _kind(e) == "bad_json"


def test_hermes_unclosed_tags():
    # The last block may stop at the stop token when its JSON is complete.
    assert parse_hermes('<tool_call>\n{"name": "f", "arguments": {"a": 1}}\n') == [ToolCall("f", {"a": 1})]
    with pytest.raises(DecodeError) as e:
        parse_hermes('<tool_call>\n{"name": "f", "arguments": {"a": 1')
    assert _kind(e) == "unclosed_tag"
    with pytest.raises(DecodeError) as e:
        parse_hermes('<tool_call>{"name": "f", "arguments": {}}<tool_call>{"name": "g", "arguments": {}}'
                     "</tool_call>")
    assert _kind(e) == "unclosed_tag"


# ------------------------------------------------------------------------------------ python

def test_python_forms():
    assert parse_python_calls("[f(a=1), g(b='x')]") == [ToolCall("f", {"a": 1}), ToolCall("g", {"b": "x"})]
    assert parse_python_calls("f(a=1)") == [ToolCall("f", {"a": 1})]
    assert parse_python_calls("```python\n[f(a=1)]\n```") == [ToolCall("f", {"a": 1})]
    assert parse_python_calls("```\n f(a=1) \n```") == [ToolCall("f", {"a": 1})]
    assert parse_python_calls("  []  ") == []
    assert parse_python_calls("[f(a=-1, b=-0.5, c=(1, 2), d={'k': [True, False, None]})]") == [
        ToolCall("f", {"a": -1, "b": -0.5, "c": [1, 2], "d": {"k": [True, False, None]}})
    ]


def test_python_dotted_names():
    calls = parse_python_calls("[math.factorial(number=5), a.b.c.d(x='y')]")
    assert [c.name for c in calls] == ["math.factorial", "a.b.c.d"]


def test_python_prose_is_syntax_error():
    for text in ["Here you go: [f(a=1)]", "[f(a=1)] hope this helps", "f(a=1"]:
        with pytest.raises(DecodeError) as e:
            parse_python_calls(text)
        assert _kind(e) == "syntax"


def test_python_non_calls():
    with pytest.raises(DecodeError) as e:
        parse_python_calls("[1, 2]")
    assert _kind(e) == "not_a_call_list"
    with pytest.raises(DecodeError) as e:
        parse_python_calls("[f(a=1)[0]()]")
    assert _kind(e) == "bad_name"
    with pytest.raises(DecodeError) as e:
        parse_python_calls("[f(a=1, a=2)]")
    assert _kind(e) == "duplicate_arg"


def test_positional_modes():
    text = "[f(1, 'two', c=3), g()]"
    with pytest.raises(DecodeError) as e:
        parse_python_calls(text)
    assert _kind(e) == "positional_args"
    assert parse_python_calls(text, positional="drop") == [ToolCall("f", {"c": 3}), ToolCall("g", {})]
    sigs = {"f": ["a", "b", "c"]}
    assert parse_python_calls(text, positional="map", signatures=sigs) == [
        ToolCall("f", {"a": 1, "b": "two", "c": 3}), ToolCall("g", {})
    ]
    for bad_sigs in [None, {"g": ["x"]}, {"f": ["a"]}, {"f": ["c", "b"]}]:  # unknown, too many, clash
        with pytest.raises(DecodeError) as e:
            parse_python_calls(text, positional="map", signatures=bad_sigs)
        assert _kind(e) == "positional_args"
    with pytest.raises(ValueError):
        parse_python_calls(text, positional="guess")


def test_positional_drop_still_rejects_keyword_non_literals():
    with pytest.raises(DecodeError):
        parse_python_calls("[f(1, a=g())]", positional="drop")
    with pytest.raises(DecodeError):  # mapped positional values must be literals too
        parse_python_calls("[f(os.system('x'))]", positional="map", signatures={"f": ["a"]})


# ------------------------------------------------------------------------------------ hostile

def test_import_os_system_touches_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for positional in ("error", "drop", "map"):
        with pytest.raises(DecodeError):
            parse_python_calls("[__import__('os').system('touch X')]", positional=positional,
                               signatures={"__import__": ["name"]})
        with pytest.raises(DecodeError):
            parse_calls("[__import__('os').system('touch X')]", positional=positional)
    with pytest.raises(DecodeError):
        parse_python_calls("[f(a=__import__('os').system('touch X'))]")
    assert not (tmp_path / "X").exists()


@pytest.mark.parametrize("text", [
    "[f(a=lambda: 1)]",
    "[f(a=os.environ)]",
    "[f(a=os.system)]",
    "[f(a=x)]",
    "[f(a=[i for i in range(3)])]",
    "[f(a={k: 1 for k in 'ab'})]",
    "[f(a=f'{1+1}')]",
    "[f(a=g(b=1))]",
    "[f(a=open('/etc/passwd').read())]",
    "[f(a=1 + 2)]",
    "[f(a=-True)]",
    "[f(a={1, 2})]",
    "[f(a=b'x')]",
    "[f(a=1j)]",
    "[f(a=...)]",
    "[f(a={**d})]",
    "[f(a=[1][0])]",
    "[f(a=(yield))]",
])
def test_non_literal_values_rejected(text):
    with pytest.raises(DecodeError) as e:
        parse_python_calls(text)
    assert _kind(e) in ("non_literal_value", "syntax")


def test_star_unpacking_rejected():
    with pytest.raises(DecodeError):
        parse_python_calls("[f(**{'a': 1})]")
    with pytest.raises(DecodeError):
        parse_python_calls("[f(*[1])]", positional="map", signatures={"f": ["a"]})


@pytest.mark.parametrize("text", ["[" * 100_000, "(" * 100_000 + ")" * 100_000, "f(a=" + "[" * 50_000,
                                  "[f(a=" + "[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5) + ")]"])
def test_deep_python_nesting(text):
    with pytest.raises(DecodeError) as e:
        parse_python_calls(text)
    assert _kind(e) == "too_deep"


@pytest.mark.parametrize("text", ["-" * 100_000 + "1", "a" + ".b" * 100_000 + "()",
                                  "[f(a=" + "+".join(["1"] * 200_000) + ")]", "f" + "()" * 100_000])
def test_deep_python_expressions_without_brackets(text):
    with pytest.raises(DecodeError):
        parse_python_calls(text)


@pytest.mark.parametrize("n", [300, 600, 1000, 2000, 5000])
def test_mid_depth_expressions_never_raise_recursion_error(n):
    for text in ["[f(a=" + "+".join(["1"] * n) + ")]", "[f(a=x" + ".b" * n + ")]",
                 "[f(a=" + "not " * n + "1)]", "[f(a=x" + "[0]" * n + ")]", "[f(a=" + "-" * n + "1)]",
                 "[a" + ".b" * n + "()]"]:
        with pytest.raises(DecodeError):
            parse_python_calls(text)


def test_depth_count_ignores_brackets_in_strings_and_comments():
    value = "[" * 500 + "(" * 500
    assert parse_python_calls(f"[f(a={value!r}, b=\"{'{' * 300}\")]") == [
        ToolCall("f", {"a": value, "b": "{" * 300})
    ]
    assert parse_python_calls("[f(a='''" + "[" * 300 + "''')  # " + "(" * 300 + "\n]") == [
        ToolCall("f", {"a": "[" * 300})
    ]
    assert parse_json_calls(json.dumps({"name": "f", "arguments": {"a": "{[" * 500}})) == [
        ToolCall("f", {"a": "{[" * 500})
    ]


@pytest.mark.parametrize("text", ["{" * 100_000, "[" * 100_000, '[{"name": "f", "arguments": ' + "{" * 5000])
def test_deep_json_nesting(text):
    with pytest.raises(DecodeError) as e:
        parse_json_calls(text)
    assert _kind(e) == "too_deep"
    with pytest.raises(DecodeError):
        parse_calls(text)


def test_deep_hermes_nesting():
    with pytest.raises(DecodeError) as e:
        parse_hermes("<tool_call>" + "{" * 100_000 + "</tool_call>")
    assert _kind(e) == "too_deep"
    inner = json.dumps('{"a": ' + "[" * 100_000)
    with pytest.raises(DecodeError) as e:
        parse_hermes('<tool_call>{"name": "f", "arguments": ' + inner + "}</tool_call>")
    assert _kind(e) == "too_deep"


def test_one_megabyte_string_argument_parses():
    big = "x" * 1_000_000
    assert parse_python_calls(f"f(a='{big}')") == [ToolCall("f", {"a": big})]
    assert parse_hermes(render_hermes([ToolCall("f", {"a": big})])) == [ToolCall("f", {"a": big})]


def test_over_limit_text_is_refused():
    text = "f(a='" + "x" * 3_000_000 + "')"
    assert len(text) > MAX_TEXT_CHARS
    for parse in (parse_python_calls, parse_json_calls, parse_hermes, parse_calls):
        with pytest.raises(DecodeError) as e:
            parse(text)
        assert _kind(e) == "too_long"


def test_many_unclosed_think_tags_is_fast_enough():
    assert strip_think("<think>" * 200_000).startswith("<think>")


# ------------------------------------------------------------------------------------ tool_match

def call(name, **kw):
    return ToolCall(name, kw)


def test_match_ignores_call_order_and_key_order():
    assert tool_match([call("a", x=1), call("b", y=2, z=3)], [call("b", z=3, y=2), call("a", x=1)])
    assert tool_match([], [])


def test_match_number_rules():
    assert tool_match([call("f", x=1)], [call("f", x=1.0)])
    assert tool_match([call("f", x=[1, {"k": 2.0}])], [call("f", x=[1.0, {"k": 2}])])
    assert not tool_match([call("f", x=True)], [call("f", x=1)])
    assert not tool_match([call("f", x=False)], [call("f", x=0.0)])
    assert not tool_match([call("f", x="1")], [call("f", x=1)])
    assert not tool_match([call("f", x=None)], [call("f", x="None")])
    assert not tool_match([call("f", x=1.5)], [call("f", x=1)])


def test_match_names_keys_and_counts():
    assert not tool_match([call("f", x=1)], [call("g", x=1)])
    assert not tool_match([call("f", x=1)], [call("f", x=1, y=2)])
    assert not tool_match([call("f", x=1)], [call("f", y=1)])
    assert not tool_match([call("f", x=1)], [])


def test_match_lists():
    assert not tool_match([call("f", x=[1, 2])], [call("f", x=[2, 1])])
    assert tool_match([call("f", x=[1, 2])], [call("f", x=[2, 1])], list_as_set=True)
    assert tool_match([call("f", x=[[1, 2], [3]])], [call("f", x=[[3], [2, 1]])], list_as_set=True)
    assert tool_match([call("f", x=[1, 1, 2])], [call("f", x=[2, 1])], list_as_set=True)
    assert not tool_match([call("f", x=[1, 1, 2])], [call("f", x=[2, 1])])


def test_match_duplicate_calls_are_counted():
    assert tool_match([call("f", x=1), call("f", x=1)], [call("f", x=1), call("f", x=1)])
    assert not tool_match([call("f", x=1), call("f", x=1)], [call("f", x=1), call("g", x=1)])
    assert not tool_match([call("f", x=1), call("f", x=1)], [call("f", x=1)])
    assert not tool_match([call("f", x=1), call("f", x=1), call("g")], [call("f", x=1), call("g"), call("g")])
    assert not tool_match([call("f", x=1), call("f", x=1)], [call("f", x=1), call("f", x=2)], list_as_set=True)


# ------------------------------------------------------------------------------------ bfcl parity

PARITY_SAMPLES = [
    "[get_weather(city='Paris', unit='celsius')]",
    "f(a=1, b='x')",
    "[math.factorial(number=5), a.b.c.d(x=1)]",
    "[f(x=[1, [2, 3]], y={'k': {'n': -1.5}, 'm': [True, False, None]})]",
    """[say(s="it's"), say(s='say "hi"'), say(s='back\\\\slash\\n')]""",
    "[f(x=-3, y=-0.25, z=1e-05, big=12345678901234567890)]",
    "[f(1, 2, a=3), g('pos', key='v')]",
    "f(a=1), g(b=2)",
    "[]",
    "  [f(a=[], b={})]  \n",
    "```\n[f(a=1)]\n```",
    "[f(d={1: 'a', 'b': [1.5, -2]}, s='unié中')]",
    "f(a=[1])",
]


@pytest.mark.parametrize("text", PARITY_SAMPLES)
def test_parity_with_bfcl_decoder(text):
    from core.bfcl_lib import bfcl

    bfcl()
    from bfcl_eval.constants.enums import ReturnFormat
    from bfcl_eval.model_handler.utils import default_decode_ast_prompting

    expected = default_decode_ast_prompting(text, ReturnFormat.PYTHON)
    assert [c.to_bfcl() for c in parse_python_calls(text, positional="drop")] == expected
