"""Seed files and the tool docs they bring.

A seed file that cannot be read (not UTF-8, a directory) is one error naming it. A bad row -- a 100k-deep
JSON line, `"tools": 5`, a tool whose properties are not objects -- is a rejected row naming its line and
key path, never a traceback; a file with no usable row stops `looptool config check` (and a run's start)
with that row as the one `error:` line. No tool doc that a Sample accepts makes the checks or the rule
judge raise.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from core.config import parse
from core.errors import InputFileError, UserError
from core.schema import Call, Label, Message, Sample, validation_message
from core.seeds.importers import FORMATS, RowError, convert_row, import_file
from core.seeds.llmgen import first_json_object
from core.seeds.pool import build_pool
from core.seeds.validate import validate
from core.stages import judge

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DEEP = 100_000

XLAM = {"query": "Convert 12.5 USD to EUR", "answers": [{"name": "cv", "arguments": {"amount": 12.5}}],
        "tools": [{"name": "cv", "description": "Convert.", "parameters": {"amount": {"type": "float"}}}]}
NATIVE = {"id": "n1", "tools": [{"name": "cv", "parameters": {"type": "dict", "properties": {
    "amount": {"type": "float"}}}}], "messages": [{"role": "user", "content": "Convert 12.5 USD"}],
    "label": {"calls": [{"name": "cv", "arguments": {"amount": 12.5}}]}}
TOOLACE_SYSTEM = "Functions you can call:\n{}\nAnswer."


def _native_tools(tools) -> str:
    return json.dumps({**NATIVE, "tools": tools})


# (line of a JSONL seed file, what the rejected row's message says after `path:line: `)
BAD_ROWS = {
    "a 100k-deep line": ('{"query": "x", "tools": ' + "[" * DEEP + "]" * DEEP + "}",
                         "nested too deeply (over 64 levels)"),
    "a 100k-deep line, unclosed": ("[" * DEEP, "nested too deeply (over 64 levels)"),
    "tools = 5 (xlam)": (json.dumps({**XLAM, "tools": 5}), "tools: expected a list of tool docs, got int"),
    "tools = 5 (looptool)": (_native_tools(5), "tools: Input should be a valid list"),
    "properties a list (looptool)": (_native_tools([{"name": "cv", "parameters": {"properties": [1, 2]}}]),
                                     "tools.0.parameters.properties: expected an object of parameter schemas, "
                                     "got array"),
    "a property an integer (looptool)": (
        _native_tools([{"name": "cv", "parameters": {"properties": {"amount": 5}}}]),
        "tools.0.parameters.properties.amount: expected an object (a parameter schema), got integer"),
    "properties a string (xlam)": (
        json.dumps({**XLAM, "tools": [{"name": "cv", "parameters": {"type": "dict", "properties": "amount"}}]}),
        "tool 'cv': parameters.properties: expected an object of parameter schemas, got string"),
    "a property a list (toolace)": (
        json.dumps({"system": TOOLACE_SYSTEM.format(json.dumps([{"name": "w", "parameters": {
            "type": "dict", "properties": {"city": ["string"]}}}])),
            "conversations": [{"from": "user", "value": "Oslo?"}, {"from": "assistant", "value": "[w(city='Oslo')]"}]}),
        "tool 'w': parameters.properties.city: expected an object (a parameter schema), got array"),
    "nested required not a list (looptool)": (
        _native_tools([{"name": "cv", "parameters": {"properties": {"a": {"type": "dict", "required": "x"}}}}]),
        'tools.0.parameters.properties.a.required: expected a list of parameter names (strings)'),
    "a tools string nested deeply (xlam)": (json.dumps({**XLAM, "tools": "[" * 70 + "]" * 70}),
                                            "tools: nested too deeply (over 64 levels)"),
}


def looptool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "console.cli", *args], capture_output=True, text=True,
                          timeout=300)


def one_error_line(p: subprocess.CompletedProcess) -> str:
    assert p.returncode == 2, (p.stdout, p.stderr)
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in p.stderr, p.stderr
    return lines[0]


def file_config(tmp_path, seed_path) -> str:
    cfg = tmp_path / "run.toml"
    cfg.write_text(f'[run]\nname = "t"\n[model]\ndevice = "cpu"\n[seeds]\nsource = "file"\n'
                   f'path = {json.dumps(str(seed_path))}\ncontamination_guard = false\n')
    return str(cfg)


# -- files that cannot be read ------------------------------------------------------------------------

def test_a_seed_file_that_is_not_utf8_is_one_error_at_its_line(tmp_path):
    path = tmp_path / "seeds.jsonl"
    path.write_bytes(json.dumps(XLAM).encode() + b'\n{"query": "caf\xe9"}\n')
    with pytest.raises(InputFileError) as e:
        import_file(path)
    assert str(e.value) == f"{path}:2: not UTF-8 text (byte 0xe9 at column 15)"


def test_a_directory_as_seed_file_is_one_error(tmp_path):
    with pytest.raises(UserError, match="is a directory, not a file"):
        import_file(tmp_path)


def test_config_check_names_an_unreadable_seed_file(tmp_path):
    bad = tmp_path / "latin1.jsonl"
    bad.write_bytes(b'{"query": "\xff"}\n')
    line = one_error_line(looptool("config", "check", file_config(tmp_path, bad)))
    assert line == f"error: {bad}:1: not UTF-8 text (byte 0xff at column 12)"
    line = one_error_line(looptool("config", "check", file_config(tmp_path, tmp_path)))
    assert line == f"error: seed file {tmp_path}: is a directory, not a file"
    line = one_error_line(looptool("config", "check", file_config(tmp_path, tmp_path / "gone.jsonl")))
    assert line == f"error: seed file {tmp_path / 'gone.jsonl'}: no such file"


# -- bad rows -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", BAD_ROWS)
def test_a_bad_row_is_rejected_with_its_line_and_key_path(tmp_path, name):
    line, message = BAD_ROWS[name]
    path = tmp_path / "seeds.jsonl"
    path.write_text("\n".join([json.dumps(XLAM), line, json.dumps(NATIVE)]) + "\n")
    samples, rejected = import_file(path)
    assert rejected == [(f"{path}:2", message)]
    assert [s.meta["origin"] for s in samples] == [f"{path}:1", f"{path}:3"]


def test_a_json_list_file_nested_100k_deep_is_one_rejected_entry(tmp_path):
    path = tmp_path / "seeds.json"
    path.write_text("[" * DEEP + "]" * DEEP)
    assert import_file(path) == ([], [(f"{path}:1", "not valid JSON: nested too deeply")])


@pytest.mark.parametrize("name", ["a 100k-deep line", "tools = 5 (xlam)", "properties a list (looptool)",
                                  "a property a list (toolace)"])
def test_config_check_of_a_file_without_a_usable_row_is_one_error_line(tmp_path, name):
    line, message = BAD_ROWS[name]
    path = tmp_path / "seeds.jsonl"
    path.write_text(line + "\n")
    got = one_error_line(looptool("config", "check", file_config(tmp_path, path)))
    assert got == f"error: {path}:1: {message} (no usable seed sample: 1 rejected, the first shown)"


def test_config_check_counts_the_rejected_rows_of_a_usable_file(tmp_path):
    path = tmp_path / "seeds.jsonl"
    path.write_text("\n".join([json.dumps(XLAM), BAD_ROWS["tools = 5 (xlam)"][0]]) + "\n")
    p = looptool("config", "check", file_config(tmp_path, path))
    assert p.returncode == 0, p.stderr
    assert (f"seeds: 1 usable samples in {path} (1 rows rejected; first: {path}:2: tools: expected a list of "
            "tool docs, got int)") in p.stdout


def test_building_the_pool_from_a_file_without_a_usable_row_is_a_user_error(tmp_path):
    path = tmp_path / "seeds.jsonl"
    path.write_text(BAD_ROWS["tools = 5 (looptool)"][0] + "\n")
    cfg = parse(open(file_config(tmp_path, path)).read(), "run.toml")
    with pytest.raises(UserError, match=f"^{path}:1: tools: Input should be a valid list"):
        build_pool(cfg, tmp_path / "pool.jsonl")
    assert not (tmp_path / "pool.jsonl").exists()


# -- tool docs: checked where they enter, so the judge never meets a broken one -----------------------

BAD_DOCS = [
    ({"name": "f", "parameters": {"properties": [1, 2]}}, "tools.0.parameters.properties: expected an object"),
    ({"name": "f", "parameters": {"properties": {"a": 5}}}, "tools.0.parameters.properties.a: expected an object"),
    ({"name": "f", "parameters": {"properties": {"a b": {"type": 3}}}},
     'tools.0.parameters.properties."a b".type: expected a type name'),
    ({"name": "f", "parameters": {"properties": {"a": {"items": [{"type": "string"}, 4]}}}},
     "tools.0.parameters.properties.a.items.1: expected an object"),
    ({"name": "f", "parameters": {"properties": {"a": {"enum": "x"}}}},
     "tools.0.parameters.properties.a.enum: expected a list"),
    ({"name": "f", "parameters": 7}, "tools.0.parameters: expected an object"),
    ({"type": "function", "function": {"name": "f"}}, "tools.0.name: a tool doc needs a non-empty string name"),
    ({"name": ""}, "tools.0.name: a tool doc needs a non-empty string name"),
    ({"name": "f", "description": ["x"]}, "tools.0.description: expected a string"),
    ("f", "tools.0: Input should be a valid dictionary"),
]


@pytest.mark.parametrize("doc, message", BAD_DOCS)
def test_a_sample_refuses_a_tool_doc_of_the_wrong_shape(doc, message):
    with pytest.raises(ValidationError) as e:
        Sample(id="s", tools=[doc], messages=[Message(role="user", content="x")], label=Label(text="ok"))
    assert validation_message(e.value).startswith(message)


def _deep_schema(levels: int) -> dict:
    node = {"type": "string"}
    for _ in range(levels):
        node = {"type": "dict", "properties": {"a": node}}
    return node


def test_schemas_nest_at_most_twenty_levels():
    ok = Sample(id="s", tools=[{"name": "f", "parameters": _deep_schema(20)}],
                messages=[Message(role="user", content="x")], label=Label(text="ok"))
    assert validate(ok) == []
    with pytest.raises(ValidationError, match="nested deeper than 20 levels"):
        Sample(id="s", tools=[{"name": "f", "parameters": _deep_schema(21)}],
               messages=[Message(role="user", content="x")], label=Label(text="ok"))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8)
params = st.sampled_from(["a", "b", "c"])
type_names = st.sampled_from(["string", "integer", "int", "float", "number", "boolean", "array", "dict",
                              "object", "null", "any", "HashMap", "tuple", "String[]"])
schemas = st.recursive(
    st.fixed_dictionaries({}, optional={"type": type_names}),
    lambda inner: st.fixed_dictionaries({}, optional={
        "type": type_names | st.lists(type_names, max_size=2) | json_values,
        "properties": st.dictionaries(params, inner, max_size=3) | json_values,
        "items": inner | st.lists(inner, max_size=2) | json_values,
        "required": st.lists(params, max_size=3) | json_values,
        "enum": st.lists(json_values, max_size=3) | json_values,
        "default": json_values}),
    max_leaves=10)
docs = st.fixed_dictionaries({"name": st.just("f") | json_values},
                             optional={"description": st.text(max_size=5) | json_values,
                                       "parameters": schemas | json_values})
arguments = st.dictionaries(params, json_values, max_size=3)


@FUZZ
@given(docs, arguments, arguments)
@example({"name": "f", "parameters": {"properties": {"a": 5}}}, {"a": "x"}, {"a": "x"})  # judge: TypeError
@example({"name": "f", "parameters": {"properties": {"a": "has a default"}}}, {"a": "x"}, {"a": "x"})
def test_every_tool_doc_a_sample_accepts_is_safe_for_the_checks_and_the_rule_judge(doc, label_args, pred_args):
    try:
        s = Sample(id="s", tools=[doc], messages=[Message(role="user", content="a b c 1 2 x")],
                   label=Label(calls=[Call(name="f", arguments=label_args)]))
    except ValidationError as e:
        assert validation_message(e).startswith("tools.0")  # the doc's problem, named where it is
        return
    assert isinstance(validate(s), list)
    for response in ('<tool_call>\n{"name": "f", "arguments": ' + json.dumps(pred_args) + "}\n</tool_call>",
                     "I cannot help.", ""):
        assert judge.rule_verdict(s, response, "fc").fallback in ("PRED_WRONG", "BOTH_WRONG")


row_keys = st.sampled_from(["query", "tools", "answers", "instruction", "input", "output", "system",
                            "conversations", "id", "messages", "label", "from", "value", "name", "arguments",
                            "parameters", "properties", "function", "calls", "text", "role", "content"])
rows = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=30) | st.sampled_from(
    ["<tools>\n{}\n</tools>", "[f(a=1)]", "<tool_call>\n{\"name\": \"f\"}\n</tool_call>", "[" * 80,
     json.dumps([{"name": "f", "parameters": {"properties": 5}}])]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(row_keys, inner, max_size=5), max_leaves=14)


@FUZZ
@given(rows, st.sampled_from(FORMATS))
@example({"query": "q", "answers": [], "tools": 5}, "auto")  # TypeError: 'int' object is not iterable
@example({"query": "q", "answers": [], "tools": "[" * DEEP}, "xlam")  # RecursionError
@example({"instruction": "<tools>\n" + "[" * DEEP + "\n</tools>", "input": "x", "output": "y"}, "auto")
@example({"system": "[" * DEEP, "conversations": [{"from": "user", "value": "x"}]}, "toolace")
def test_any_json_row_becomes_samples_or_a_rejected_row(row, fmt):
    try:
        samples = convert_row(row, fmt, "fuzz", "fuzz.jsonl:1")
    except (RowError, UserError) as e:
        assert str(e) and "\n" not in str(e).strip()
    else:
        assert all(isinstance(s, Sample) for s in samples)


# -- LLM-written seeds: the same bounds on model text --------------------------------------------------

@pytest.mark.parametrize("reply", ['{"a": ' * 40_000, "[" * DEEP, '{"a": ' * 70 + "1" + "}" * 70])
def test_an_llm_reply_nested_deeply_is_refused_not_a_crash(reply):
    with pytest.raises(ValueError, match="no JSON object|nested deeper than 64"):
        first_json_object(reply)
