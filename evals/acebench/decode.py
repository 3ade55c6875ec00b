"""Decoding model replies into ACEBench's call shape ``[{name: {arg: value}}]``.

Nothing here evaluates model text. Three decoders:

* :func:`compat_calls` follows the official decoder (reference/acebench.md §5.1-5.2): the reply must be a
  Python list (or tuple) of calls; keyword arguments only (positional ones are ignored); besides
  literals it accepts what upstream accepts, resolved from the ast by hand: a bare name becomes its text,
  a nested call becomes ``{name: {kwargs}}``, arithmetic on literals is computed (``99*2``), ``...``
  becomes ``"..."``, a subscript its source text, and any unary operator *negates* a literal (upstream
  turns ``+3`` into -3). Tuples stay tuples, which matters to the compat type checks.
* :func:`strict_calls` uses the project's codec (:mod:`core.toolcalls`): literals only, no positional
  arguments.
* fc mode: ``<tool_call>{json}</tool_call>`` blocks through :func:`core.toolcalls.parse_hermes`.

Text extraction: single-turn files take the first balanced top-level ``[...]`` of the reply; the
multi-turn files (compat) remove all whitespace and take the reply as it is (§5.2).
"""
from __future__ import annotations

import ast
import operator

from core import toolcalls
from core.toolcalls import DecodeError

MAX_CHARS = 200_000
_MAX_POW = 64
_MAX_SEQ = 10_000


def first_list(text: str) -> str | None:
    """The first balanced top-level ``[...]`` (brackets inside quoted strings ignored), or None.
    One linear pass; quotes are tracked from the first opening bracket on, so an apostrophe in prose
    before the list is harmless. When the outermost bracket never closes, the earliest bracket that
    does close is taken."""
    if len(text) > MAX_CHARS:
        raise DecodeError("too_long", f"reply is {len(text)} characters")
    start = text.find("[")
    if start == -1:
        return None
    stack: list[int] = []
    best: tuple[int, int] | None = None
    quote, escaped = None, False
    for i in range(start, len(text)):
        ch = text[i]
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "[":
            stack.append(i)
        elif ch == "]" and stack:
            p = stack.pop()
            if not stack:
                return text[p:i + 1]
            if best is None or p < best[0]:
                best = (p, i)
    return text[best[0]:best[1] + 1] if best else None


def _parse_expr(text: str) -> ast.AST:
    if len(text) > MAX_CHARS:
        raise DecodeError("too_long", f"reply is {len(text)} characters")
    try:
        return ast.parse(text, mode="eval").body
    except (RecursionError, MemoryError):
        raise DecodeError("too_deep", "expression nested too deeply") from None
    except (SyntaxError, ValueError) as e:
        raise DecodeError("syntax", f"not a Python call list: {e.msg if isinstance(e, SyntaxError) else e}") from None


def _dotted(func: ast.AST) -> str:
    parts = []
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    if isinstance(func, ast.Name):
        parts.append(func.id)
    return ".".join(reversed(parts))


_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}


def _arith(node: ast.AST, depth: int = 0):
    """Arithmetic on number/string literals, computed without eval (bounded sizes)."""
    if depth > 50:
        raise DecodeError("too_deep", "arithmetic nested too deeply")
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str)) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        v = _arith(node.operand, depth + 1)
        if isinstance(v, (int, float)):
            return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        a, b = _arith(node.left, depth + 1), _arith(node.right, depth + 1)
        if isinstance(node.op, ast.Pow) and (not isinstance(b, (int, float)) or abs(b) > _MAX_POW):
            raise DecodeError("non_literal_value", "exponent too large")
        if isinstance(node.op, ast.Mult) and any(isinstance(x, str) for x in (a, b)):
            n = b if isinstance(a, str) else a
            if not isinstance(n, int) or n * len(a if isinstance(a, str) else b) > _MAX_SEQ:
                raise DecodeError("non_literal_value", "string repetition too large")
        try:
            return _BINOPS[type(node.op)](a, b)
        except (TypeError, ZeroDivisionError, OverflowError, ValueError) as e:
            raise DecodeError("non_literal_value", f"arithmetic failed: {e}") from None
    raise DecodeError("non_literal_value", f"unsupported expression ({type(node).__name__})")


def _value(node: ast.AST, source: str, depth: int = 0):
    if depth > toolcalls.MAX_DEPTH:
        raise DecodeError("too_deep", "value nested too deeply")
    if isinstance(node, ast.Constant):
        return "..." if node.value is Ellipsis else node.value
    if isinstance(node, ast.UnaryOp):  # upstream negates the operand whatever the operator is
        if isinstance(node.operand, ast.Constant):
            try:
                return -node.operand.value
            except TypeError:
                raise DecodeError("non_literal_value", "unary operator on a non-number") from None
        raise DecodeError("non_literal_value", "unary operator on a non-literal")
    if isinstance(node, ast.List):
        return [_value(v, source, depth + 1) for v in node.elts]
    if isinstance(node, ast.Tuple):
        return tuple(_value(v, source, depth + 1) for v in node.elts)
    if isinstance(node, ast.Dict):
        out = {}
        for k, v in zip(node.keys, node.values):
            if k is None:
                raise DecodeError("non_literal_value", "dict unpacking is not allowed")
            key = _value(k, source, depth + 1)
            try:
                out[key] = _value(v, source, depth + 1)
            except TypeError:
                raise DecodeError("non_literal_value", "unhashable dict key") from None
        return out
    if isinstance(node, ast.BinOp):
        return _arith(node)
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Call):
        return {_dotted(node.func): _kwargs(node, source, depth + 1)}
    if isinstance(node, ast.Subscript):
        return ast.get_source_segment(source, node) or ""
    raise DecodeError("non_literal_value", f"unsupported value ({type(node).__name__})")


def _kwargs(call: ast.Call, source: str, depth: int = 0) -> dict:
    out = {}
    for kw in call.keywords:
        if kw.arg is None:
            raise DecodeError("non_literal_value", "**kwargs unpacking is not allowed")
        out[kw.arg] = _value(kw.value, source, depth)
    return out


def compat_calls(text: str) -> list[dict]:
    """Upstream-compatible decoding of an (already extracted) call list. DecodeError on failure."""
    body = _parse_expr(text)
    if not isinstance(body, (ast.List, ast.Tuple, ast.Set)):
        raise DecodeError("not_a_call_list", "the reply is not a list of calls")
    calls = []
    for elt in body.elts:
        if not isinstance(elt, ast.Call):
            raise DecodeError("not_a_call_list", "every list element must be a call")
        calls.append({_dotted(elt.func): _kwargs(elt, text)})
    return calls


def strict_calls(text: str) -> list[dict]:
    """Literal-only decoding with the project's codec (positional arguments are an error)."""
    return [c.to_bfcl() for c in toolcalls.parse_python_calls(text, positional="error")]


def hermes_calls(text: str) -> list[dict]:
    return [c.to_bfcl() for c in toolcalls.parse_hermes(text)]


def decode(text: str, *, mode: str, scoring: str, multi_turn: bool = False) -> list[dict]:
    """Think-stripped reply -> calls. ``mode``: prompt | fc; ``scoring``: compat | strict."""
    if mode == "fc":
        return hermes_calls(text)
    if scoring == "compat" and multi_turn:
        return compat_calls("".join(text.split()))
    body = first_list(text)
    if body is None:
        raise DecodeError("syntax", "no [...] call list in the reply")
    return compat_calls(body) if scoring == "compat" else strict_calls(body)
