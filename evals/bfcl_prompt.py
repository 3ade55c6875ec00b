"""How a BFCL entry is put to a model, and how its reply is decoded, in the two prompting modes.

* ``prompt``: bfcl's default system prompt (built by bfcl-eval's own ``formulate_system_prompt`` from the
  function docs) and a Python call list as output, ``[f(a=1), g(b='x')]``. Any chat template works.
* ``fc``: the docs go in as OpenAI-style tools through the model's chat template and the model answers
  with Qwen/Hermes ``<tool_call>{json}</tool_call>`` blocks. Needs a template that renders tools.

``mode="auto"`` picks fc when the tokenizer's template renders tools, prompt otherwise.
Decoding never evaluates model text: Python calls go through ast and a whitelist walker (the official
decoding, evals.leaderboard_ast) or core.toolcalls (the lenient one);
Java/JavaScript replies in prompt mode go through bfcl-eval's tree-sitter decoders, as its runner does
(evals.bfcl_java_js). Every decoder runs the same bounds first (core.decode_bounds).
"""
from __future__ import annotations

import ast

from core import toolcalls
from core.bfcl_lib import bfcl
from core.decode_bounds import parse_python
from core.errors import UserError
from evals import leaderboard_ast
from evals.bfcl_java_js import decode_java_js
from evals.leaderboard_ast import DECODINGS

MODES = ("auto", "prompt", "fc")


def check_mode(mode: str) -> None:
    """UserError naming the allowed values unless `mode` is one of MODES (both benchmarks' modes)."""
    if mode not in MODES:
        raise UserError(f"--mode: unknown mode {mode!r:.40}; choose from {', '.join(MODES)}")


def resolve_mode(mode: str, tokenizer) -> str:
    check_mode(mode)
    if mode != "auto":
        return mode
    from core.prompting import supports_tools

    return "fc" if supports_tools(tokenizer) else "prompt"


def added_functions_message(functions: list, mode: str) -> dict:
    """The fixed user message of a miss_func turn (bfcl's own constants, not retyped)."""
    bfcl()
    from bfcl_eval.constants import default_prompts as dp

    if mode == "fc":
        return {"role": "user", "content": dp.DEFAULT_USER_PROMPT_FOR_ADDITIONAL_FUNCTION_FC}
    return {"role": "user",
            "content": dp.DEFAULT_USER_PROMPT_FOR_ADDITIONAL_FUNCTION_PROMPTING.format(functions=functions)}


def tool_result_messages(calls: list[toolcalls.ToolCall], results: list[str], mode: str) -> list[dict]:
    """Execution results fed back to the model, one tool message per call."""
    out = []
    for call, result in zip(calls, results, strict=True):
        msg = {"role": "tool", "content": result}
        if mode == "prompt":
            msg["name"] = toolcalls.render_call_string(call)
        else:
            msg["name"] = call.name
        out.append(msg)
    return out


def assistant_message(text: str) -> dict:
    return {"role": "assistant", "content": text}


def decode(text: str, mode: str, language: str = "python", decoding: str = "official") -> list[dict]:
    """Decode a reply into bfcl's shape [{name: {arg: value}}]. Raises DecodeError on malformed output;
    returns [] for a reply with no call (fc mode: no <tool_call> block).

    Python prompt-mode replies: ``decoding="official"`` reproduces bfcl-eval's
    ``default_decode_ast_prompting`` (:func:`decode_python_official`); ``"lenient"`` is the project's
    recovering codec (fences of any kind, surrounding whitespace, tuples as lists; literals only).
    fc mode and Java/JavaScript decode the same way under both."""
    if decoding not in DECODINGS:
        raise ValueError(f"decoding must be one of {DECODINGS}, not {decoding!r}")
    body = toolcalls.strip_think(text)
    if mode == "fc":
        return [c.to_bfcl() for c in toolcalls.parse_hermes(body)]
    if language == "python":
        if decoding == "official":
            return decode_python_official(_official_body(text))
        return [c.to_bfcl() for c in toolcalls.parse_python_calls(body, positional="drop")]
    return decode_java_js(body, language)


def _official_body(text: str) -> str:
    """The reply as the official decoding sees it: think blocks removed (the documented deviation) and,
    only where one was, the whitespace around the answer; otherwise the text untouched (a leading tab
    or a CRLF line end changes bfcl's verdict)."""
    return toolcalls.strip_think(text) if "</think>" in text else text


def decode_python_official(body: str) -> list[dict]:
    """bfcl-eval's prompt-mode Python decoding, without eval: the reply is trimmed of backticks, newlines
    and spaces only (so a ```python fence leaves "python" in front and a tab or CR stays), wrapped in
    [...] where it does not start or end with a bracket, trimmed of whitespace and single quotes, parsed
    by ast, and resolved by evals.leaderboard_ast (bare names as text, arithmetic computed, tuples kept,
    ``**`` kept as an argument named None, unary operators negate)."""
    text = body.strip("`\n ")
    if not text.startswith("["):
        text = "[" + text
    if not text.endswith("]"):
        text = text + "]"
    tree = parse_python(text.strip().strip("'"))
    if isinstance(tree, ast.Call):
        elts = [tree]
    elif isinstance(tree, (ast.List, ast.Tuple, ast.Set)):
        elts = tree.elts
    else:
        raise toolcalls.DecodeError("not_a_call_list", "expected a list of function calls")
    if not all(isinstance(e, ast.Call) for e in elts):
        raise toolcalls.DecodeError("not_a_call_list", "every list element must be a function call")
    return [leaderboard_ast.resolve_call(e, "bfcl") for e in elts]


def decode_calls(text: str, mode: str, decoding: str = "official") -> list[toolcalls.ToolCall]:
    """Multi-turn decoding (Python only) to ToolCall objects; [] when the reply has no call. Under the
    official decoding a call whose argument names cannot be re-rendered as Python keywords (``**``
    unpacking) is a DecodeError: the step is dropped, where bfcl would execute it and get an error."""
    body = toolcalls.strip_think(text)
    if mode == "fc":
        return toolcalls.parse_hermes(body)
    if decoding == "lenient":
        return toolcalls.parse_python_calls(body, positional="drop")
    calls = []
    for call in decode_python_official(_official_body(text)):
        (name, args), = call.items()
        if not name or not all(isinstance(k, str) and k.isidentifier() for k in args):
            raise toolcalls.DecodeError("bad_arguments", f"{name or '?'}: an argument that is not a keyword")
        calls.append(toolcalls.ToolCall(name, args))
    return calls
