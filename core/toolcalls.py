"""The tool-call codec: parse model text into :class:`ToolCall` objects, render them back, compare them.

Nothing here executes model text: Python-style calls go through ``ast.parse`` and a whitelist of
literal nodes, everything else through ``json``. Before any parser runs, the bounds of
:mod:`core.decode_bounds` (shared by every decoder of model text) are checked: inputs over
``MAX_TEXT_CHARS`` are refused unparsed, bracket nesting is counted on the raw text (ignoring brackets
inside string literals and Python comments), and a Python tree deeper than ``MAX_TREE_DEPTH`` is
refused before it is walked, so hostile nesting gives ``DecodeError("too_deep")``, never a
``RecursionError``. Integers over ``MAX_INT_BITS`` (``0xfff...`` in a Python reply, a long number in
JSON) are ``DecodeError("too_large")``, so every decoded call can be written to a record.

Think stripping (:func:`strip_think`, applied by :func:`parse_calls` and by
``core.prompt_format.decode_reply``, which the training reward ``core.prompt_format.reward`` uses): every
``<think>...</think>`` block is removed; then, if a ``</think>`` is left (Qwen3 templates put the
opening tag in the prompt), everything up to and including the last ``</think>`` is dropped. An
opening ``<think>`` that is never closed is left alone. The result is whitespace-stripped.

Keyword and positional arguments in Python-style calls (:func:`parse_python_calls`): keyword
arguments become ``ToolCall.arguments``. Positional arguments are handled per ``positional``:
``"error"`` (default) raises ``DecodeError("positional_args")``; ``"drop"`` silently discards them,
as bfcl-eval's ``default_decode_ast_prompting`` does (use it for leaderboard parity); ``"map"``
assigns them, in order, to ``signatures[name]`` (the function's ordered parameter names) and raises
``DecodeError("positional_args")`` for an unknown function, too many positional arguments, or a
parameter given both ways. ``*args`` / ``**kwargs`` are never accepted (dropped with ``"drop"``).
A repeated keyword raises ``DecodeError("duplicate_arg")``. Tuples become lists; sets, bytes,
complex numbers, ``...``, names, attribute access, calls, operators (except a sign on a number),
lambdas, comprehensions and f-strings raise ``DecodeError("non_literal_value")``.
"""
from __future__ import annotations

import ast
import json
import keyword
import re
from collections import Counter
from dataclasses import dataclass

from core.decode_bounds import (  # noqa: F401  (MAX_* and DecodeError are this codec's too)
    MAX_DEPTH, MAX_TEXT_CHARS, DecodeError, check_depth, check_int, check_length, parse_python)

_OPEN, _CLOSE = "<tool_call>", "</tool_call>"
_NAME_RE = re.compile(r"\w[\w.\-]*")  # word characters, dots, hyphens
_PY_START_RE = re.compile(r"[A-Za-z_][\w.]*\(")
_JSON_START_RE = re.compile(r"\[\s*\{|\{")


def _normalize(value, depth: int = 0):
    """Copy a JSON-like value, turning tuples into lists; too deep or too long an int: DecodeError."""
    if depth > MAX_DEPTH:
        raise DecodeError("too_deep", f"value nested deeper than {MAX_DEPTH}")
    check_int(value)
    if isinstance(value, dict):
        return {k: _normalize(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_normalize(v, depth + 1) for v in value]
    return value


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: dict

    def __post_init__(self):
        if not isinstance(self.name, str):
            raise TypeError(f"ToolCall.name must be str, got {type(self.name).__name__}")
        if not isinstance(self.arguments, dict):
            raise TypeError(f"ToolCall.arguments must be dict, got {type(self.arguments).__name__}")
        object.__setattr__(self, "arguments", _normalize(self.arguments))

    def to_dict(self) -> dict:
        return {"name": self.name, "arguments": self.arguments}

    def to_bfcl(self) -> dict:
        return {self.name: self.arguments}


# ---------------------------------------------------------------------------------------- helpers

def _strip_fences(text: str) -> str:
    text = text.strip()
    if text.startswith("```"):
        nl = text.find("\n")
        text = text[nl + 1:] if nl != -1 else text[3:]
        if text.rstrip().endswith("```"):
            text = text.rstrip()[:-3]
    return text.strip()


def _check_name(name) -> str:
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name) or len(name) > 256:
        raise DecodeError("bad_name", f"invalid function name: {name!r:.80}")
    return name


def _loads(text: str, what: str):
    check_length(text)
    check_depth(text, "json")
    try:
        return json.loads(text)
    except RecursionError:
        raise DecodeError("too_deep", f"{what} nested too deeply") from None
    except ValueError as e:
        raise DecodeError("bad_json", f"{what} is not valid JSON: {e}") from None


def _call_from_obj(obj) -> ToolCall:
    """{"name","arguments"} / {"function","parameters"} / OpenAI {"function": {"name","arguments"}}."""
    if not isinstance(obj, dict):
        raise DecodeError("not_a_call_list", f"a call must be a JSON object, got {type(obj).__name__}")
    if isinstance(obj.get("function"), dict):
        obj = obj["function"]
    name = obj.get("name", obj.get("function"))
    args = obj.get("arguments", obj.get("parameters"))
    if args is None:
        args = {}
    if isinstance(args, str):
        args = _loads(args, "arguments string") if args.strip() else {}
    if not isinstance(args, dict):
        raise DecodeError("bad_arguments", f"arguments must be an object, got {type(args).__name__}")
    return ToolCall(_check_name(name), args)


# ---------------------------------------------------------------------------------------- parsers

def strip_think(text: str) -> str:
    kept, pos = [], 0  # a find() loop, not a regex: linear even for many unclosed "<think>"
    while (start := text.find("<think>", pos)) != -1:
        stop = text.find("</think>", start)
        if stop == -1:
            break
        kept.append(text[pos:start])
        pos = stop + len("</think>")
    text = "".join(kept) + text[pos:]
    end = text.rfind("</think>")
    if end != -1:
        text = text[end + len("</think>"):]
    return text.strip()


def parse_hermes(text: str) -> list[ToolCall]:
    """Every ``<tool_call>{json}</tool_call>`` block, in order; [] when there is none.

    The last block may lack ``</tool_call>`` when its JSON is complete (generation stopped at the
    stop token right after it); any other unclosed block is ``DecodeError("unclosed_tag")``.
    """
    check_length(text)
    calls, pos = [], 0
    while (start := text.find(_OPEN, pos)) != -1:
        body_start = start + len(_OPEN)
        end = text.find(_CLOSE, body_start)
        nxt = text.find(_OPEN, body_start)
        if end == -1 or (nxt != -1 and nxt < end):
            if nxt != -1:
                raise DecodeError("unclosed_tag", "a <tool_call> block is not closed before the next one")
            try:
                calls.append(_call_from_obj(_loads(text[body_start:].strip(), "tool call")))
            except DecodeError as e:
                if e.kind == "bad_json":
                    raise DecodeError("unclosed_tag", "the last <tool_call> block is not closed") from None
                raise
            break
        calls.append(_call_from_obj(_loads(text[body_start:end].strip(), "tool call")))
        pos = end + len(_CLOSE)
    return calls


def _literal(node: ast.AST, depth: int = 0):
    """A JSON-like value from a whitelisted literal node (tuples -> lists)."""
    if depth > MAX_DEPTH:
        raise DecodeError("too_deep", f"value nested deeper than {MAX_DEPTH}")
    if isinstance(node, ast.Constant):
        v = node.value
        if v is None or isinstance(v, (str, bool, int, float)):
            return v
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        v = node.operand.value if isinstance(node.operand, ast.Constant) else None
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return -v if isinstance(node.op, ast.USub) else v
    elif isinstance(node, (ast.List, ast.Tuple)):
        return [_literal(e, depth + 1) for e in node.elts]
    elif isinstance(node, ast.Dict):
        out = {}
        for k, v in zip(node.keys, node.values):
            key = None if k is None else _literal(k, depth + 1)
            if k is None or isinstance(key, (dict, list)):  # k is None for {**mapping}
                raise DecodeError("non_literal_value", "dict keys must be str, number, bool or None")
            out[key] = _literal(v, depth + 1)
        return out
    where = f" at line {getattr(node, 'lineno', '?')}, column {getattr(node, 'col_offset', '?')}"
    # No ast.unparse here: it recurses, and a 1000-deep `1+1+...` would raise RecursionError.
    raise DecodeError("non_literal_value", f"argument value is not a literal ({type(node).__name__}{where})")


def _func_name(func: ast.AST) -> str:
    parts = []
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    if not isinstance(func, ast.Name):
        raise DecodeError("bad_name", "a call's function must be a name or a dotted name")
    parts.append(func.id)
    return _check_name(".".join(reversed(parts)))


def _convert_call(node: ast.AST, positional: str, signatures) -> ToolCall:
    if not isinstance(node, ast.Call):
        raise DecodeError("not_a_call_list", "every list element must be a function call")
    name = _func_name(node.func)
    args: dict = {}
    for kw in node.keywords:
        if kw.arg is None:
            if positional == "drop":
                continue
            raise DecodeError("positional_args", f"{name}: **kwargs unpacking is not allowed")
        if kw.arg in args:
            raise DecodeError("duplicate_arg", f"{name}: argument {kw.arg!r} given twice")
        args[kw.arg] = _literal(kw.value)
    if node.args and positional == "error":
        raise DecodeError("positional_args", f"{name}: positional arguments are not allowed")
    if node.args and positional == "map":
        params = (signatures or {}).get(name)
        if params is None:
            raise DecodeError("positional_args", f"{name}: positional arguments for an unknown function")
        if len(node.args) > len(params):
            raise DecodeError("positional_args", f"{name}: {len(node.args)} positional arguments, "
                                                 f"the signature has {len(params)}")
        mapped = {}
        for param, value in zip(params, node.args):
            if isinstance(value, ast.Starred):
                raise DecodeError("positional_args", f"{name}: *args unpacking is not allowed")
            if param in args:
                raise DecodeError("positional_args", f"{name}: {param!r} given positionally and by keyword")
            mapped[param] = _literal(value)
        args = {**mapped, **args}
    return ToolCall(name, args)


def parse_python_calls(text: str, positional: str = "error",
                       signatures: dict[str, list[str]] | None = None) -> list[ToolCall]:
    """``[f(a=1), g(b='x')]``, a bare ``f(a=1)`` or ``f(a=1), g(b=2)``; ``[]`` or empty text -> []."""
    if positional not in ("error", "drop", "map"):
        raise ValueError(f"positional must be 'error', 'drop' or 'map', not {positional!r}")
    check_length(text)
    text = _strip_fences(text).strip("`").strip()
    if not text:
        return []
    body = parse_python(text)
    if isinstance(body, ast.Call):
        elts = [body]
    elif isinstance(body, (ast.List, ast.Tuple)):
        elts = body.elts
    else:
        raise DecodeError("not_a_call_list", "expected a list of function calls")
    return [_convert_call(e, positional, signatures) for e in elts]


def parse_json_calls(text: str) -> list[ToolCall]:
    """A JSON list of call objects (or one object), optionally in a ```json fence."""
    check_length(text)
    data = _loads(_strip_fences(text), "tool call list")
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise DecodeError("not_a_call_list", "expected a JSON list of call objects")
    return [_call_from_obj(obj) for obj in data]


def parse_openai_tool_calls(tool_calls: list[dict]) -> list[ToolCall]:
    """An OpenAI message's ``tool_calls`` list; None -> []."""
    if tool_calls is None:
        return []
    if not isinstance(tool_calls, list):
        raise DecodeError("not_a_call_list", "tool_calls must be a list")
    return [_call_from_obj(tc) for tc in tool_calls]


def parse_calls(text: str, fmt: str = "auto", positional: str = "error", signatures=None) -> list[ToolCall]:
    """Strip think blocks, then parse as ``fmt`` (hermes/python/json/auto); plain text -> []."""
    check_length(text)
    text = strip_think(text)
    if fmt == "auto":
        if _OPEN in text:
            fmt = "hermes"
        else:
            body = _strip_fences(text)
            if _JSON_START_RE.match(body):
                fmt = "json"
            elif body.startswith("[") or _PY_START_RE.match(body):
                fmt = "python"
            else:
                return []
    if fmt == "hermes":
        return parse_hermes(text)
    if fmt == "json":
        return parse_json_calls(text)
    if fmt == "python":
        return parse_python_calls(text, positional=positional, signatures=signatures)
    raise ValueError(f"unknown tool-call format {fmt!r}")


# -------------------------------------------------------------------------------------- renderers

def render_hermes(calls: list[ToolCall]) -> str:
    """Byte-identical to the Qwen2.5/Qwen3 chat templates' ``tojson`` rendering."""
    return "\n".join(f"{_OPEN}\n{json.dumps(c.to_dict(), ensure_ascii=False)}\n{_CLOSE}" for c in calls)


def render_call_string(call: ToolCall) -> str:
    for key in call.arguments:
        if not isinstance(key, str) or not key.isidentifier() or keyword.iskeyword(key):
            raise ValueError(f"{call.name}: argument name {key!r} cannot be a Python keyword argument")
    return f"{call.name}({', '.join(f'{k}={v!r}' for k, v in call.arguments.items())})"


def render_python(calls: list[ToolCall]) -> str:
    return "[" + ", ".join(render_call_string(c) for c in calls) + "]"


# ---------------------------------------------------------------------------------------- scoring

def _canon(value, list_as_set: bool):
    """A hashable form under the match rules: 1 == 1.0, True != 1, "1" != 1."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, (int, float)):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        return ("num", value)
    if isinstance(value, dict):
        return ("dict", frozenset((_canon(k, list_as_set), _canon(v, list_as_set)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        items = [_canon(v, list_as_set) for v in value]
        return ("set", frozenset(items)) if list_as_set else ("list", tuple(items))
    return (type(value).__name__, value)


def tool_match(pred: list[ToolCall], label: list[ToolCall], list_as_set: bool = False) -> bool:
    """Same calls as a multiset: call order and argument key order are ignored."""
    if len(pred) != len(label):
        return False

    def bag(calls):
        return Counter((c.name, _canon(c.arguments, list_as_set)) for c in calls)

    return bag(pred) == bag(label)
