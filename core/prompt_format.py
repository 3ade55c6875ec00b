"""A Sample as the model sees it, in the same two modes as the BFCL-v3 evaluation.

* prompt: BFCL's system prompt listing the tools, Python call lists as the assistant's calls;
* fc:     tools through the chat template, <tool_call> blocks as the assistant's calls.

Training, probing and evaluation all render through here, so what the policy learns is exactly the
format it is evaluated in.
"""
from __future__ import annotations

from core import toolcalls
from core.schema import Sample
from evals import bfcl_prompt


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
    msgs = bfcl_prompt.first_messages(msgs, sample.tools, mode)
    tools = bfcl_prompt.as_tools(sample.tools) if mode == "fc" and sample.tools else None
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
