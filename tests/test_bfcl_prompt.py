"""What the model is shown in each prompting mode."""
from __future__ import annotations

from core import prompt_format
from evals import bfcl_data


def test_fc_tools_keep_every_function_and_its_name():
    e = next(e for e in bfcl_data.load_category("simple_python") if "." in e.functions[0]["name"])
    tools = prompt_format.as_tools(e.functions)
    assert [t["function"]["name"] for t in tools] == [f["name"] for f in e.functions]
    params = tools[0]["function"]["parameters"]
    assert params["type"] == "object"
    assert all(p["type"] in ("string", "integer", "number", "boolean", "array", "object")
               for p in params["properties"].values())


def test_prompt_mode_system_prompt_lists_functions_and_merges_an_entry_system_message():
    e = bfcl_data.load_category("simple_python")[0]
    msgs = prompt_format.first_messages(e.question[0], e.functions, "prompt")
    assert msgs[0]["role"] == "system" and e.functions[0]["name"] in msgs[0]["content"]
    assert msgs[1:] == e.question[0]
    with_system = next(e for c in ("live_simple", "live_multiple") for e in bfcl_data.load_category(c)
                       if e.question[0][0]["role"] == "system")
    msgs = prompt_format.first_messages(with_system.question[0], with_system.functions, "prompt")
    assert sum(m["role"] == "system" for m in msgs) == 1
    assert msgs[0]["content"].endswith(with_system.question[0][0]["content"])
    assert prompt_format.first_messages(e.question[0], e.functions, "fc") == e.question[0]


def test_java_docs_shown_with_hints_checked_raw():
    e = bfcl_data.load_category("simple_java")[0]
    assert "Java 8 SDK" in e.functions[0]["description"]
    assert "Java 8 SDK" not in e.raw_functions[0]["description"]
