"""The tool-calling prompt format of training, probing and evaluation: BFCL-v3's two modes.

* prompt: bfcl-eval's own system prompt listing the tools (``formulate_system_prompt`` from the function
          docs), Python call lists as the assistant's calls;
* fc:     the docs as OpenAI-style tools through the chat template, <tool_call> blocks as the calls.

Samples (training, probe, judge) and benchmark entries (evals/) are all put to the model through here,
so what the policy learns is exactly the format it is evaluated in. Turning the messages into one
prompt string is core.prompting.render (the model's chat template).
"""
from __future__ import annotations

import copy

from core import toolcalls
from core.bfcl_lib import bfcl
from core.schema import Sample


def system_prompt(functions: list) -> str:
    bfcl()
    from bfcl_eval.constants.default_prompts import DEFAULT_SYSTEM_PROMPT_FORMAT
    from bfcl_eval.model_handler.utils import formulate_system_prompt

    return formulate_system_prompt(DEFAULT_SYSTEM_PROMPT_FORMAT, functions)


def as_tools(functions: list) -> list[dict]:
    """BFCL docs -> OpenAI-style tools (types mapped to JSON schema by bfcl's own converter, in its
    open-source-model style). That style replaces dots in names with underscores; chat templates take
    any name, so the original names are put back and the checker compares names as they are."""
    bfcl()
    from bfcl_eval.constants.enums import ModelStyle
    from bfcl_eval.constants.type_mappings import GORILLA_TO_OPENAPI
    from bfcl_eval.model_handler.utils import convert_to_tool

    converted = convert_to_tool(copy.deepcopy(functions), GORILLA_TO_OPENAPI, ModelStyle.OSSMODEL)
    if len(converted) != len(functions):
        raise RuntimeError("bfcl-eval's convert_to_tool dropped functions")
    for tool, doc in zip(converted, functions):
        tool["name"] = doc["name"]
    return [{"type": "function", "function": f} for f in converted]


def first_messages(question_turn: list[dict], functions: list, mode: str) -> list[dict]:
    """Messages of the first turn: the prompt-mode system prompt merged in as bfcl does."""
    msgs = copy.deepcopy(question_turn)
    if mode == "prompt":
        sp = system_prompt(functions)
        if msgs and msgs[0]["role"] == "system":
            msgs[0]["content"] = sp + "\n\n" + msgs[0]["content"]
        else:
            msgs.insert(0, {"role": "system", "content": sp})
    return msgs


def _calls_text(calls: list[toolcalls.ToolCall], mode: str) -> str:
    return toolcalls.render_hermes(calls) if mode == "fc" else toolcalls.render_python(calls)


def prompt_messages(sample: Sample, mode: str) -> tuple[list[dict], list[dict] | None]:
    """Chat messages (system prompt included in prompt mode) and the tools list (fc mode)."""
    msgs: list[dict] = []
    for m in sample.messages:
        if m.role == "assistant" and m.tool_calls:
            msgs.append({"role": "assistant", "content": _calls_text([c.tool_call() for c in m.tool_calls], mode)})
        elif m.role == "tool":
            msgs.append({"role": "tool", "name": m.name or "", "content": m.content})
        else:
            msgs.append({"role": m.role, "content": m.content})
    msgs = first_messages(msgs, sample.tools, mode)
    tools = as_tools(sample.tools) if mode == "fc" and sample.tools else None
    return msgs, tools


def label_text(sample: Sample, mode: str) -> str:
    """The ideal reply: the label's calls in the mode's format, or its text."""
    if sample.label.is_text:
        return sample.label.text
    return _calls_text(sample.label.tool_calls(), mode)


def decode_reply(text: str, mode: str) -> list[toolcalls.ToolCall] | None:
    """The calls in a reply; [] for a text reply; None when the reply tries calls but is malformed."""
    body = toolcalls.strip_think(text)
    try:
        if mode == "fc":
            return toolcalls.parse_hermes(body)
        stripped = body.strip().strip("`").strip()
        if not stripped.startswith("[") and "(" not in stripped.split("\n", 1)[0]:
            return []  # prose: no call
        return toolcalls.parse_python_calls(body, positional="error")
    except toolcalls.DecodeError:
        return None


def reward(response: str, sample: Sample, mode: str, list_as_set: bool = False) -> float:
    """The paper's binary exact-match reward. Text labels: 1 iff the reply makes no call (the paper's
    rule; the text itself is not judged). Call labels: 1 iff the reply's calls match by ToolMatch."""
    calls = decode_reply(response, mode)
    if sample.label.is_text:
        return 1.0 if calls == [] else 0.0
    if not calls:
        return 0.0
    return 1.0 if toolcalls.tool_match(calls, sample.label.tool_calls(), list_as_set=list_as_set) else 0.0
