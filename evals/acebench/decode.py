"""Decoding model replies into ACEBench's call shape ``[{name: {arg: value}}]``.

Nothing here evaluates model text. Three decoders:

* :func:`compat_calls` follows the official decoder (reference/acebench.md §5.1-5.2): the reply must be a
  Python list (or tuple) of calls; keyword arguments only (positional ones are ignored); values resolve
  as upstream resolves them (evals.leaderboard_ast: a bare name becomes its text, a nested call
  ``{name: {kwargs}}``, arithmetic on literals is computed, ``...`` becomes ``"..."``, a subscript its
  source text, any unary operator *negates* a literal, tuples stay tuples, ``**mapping`` becomes an
  argument named None).
* :func:`strict_calls` uses the project's codec (:mod:`core.toolcalls`): literals only, no positional
  arguments.
* fc mode: ``<tool_call>{json}</tool_call>`` blocks through :func:`core.toolcalls.parse_hermes`.

Text extraction: single-turn files take the list the official extraction finds (:func:`official_list`,
brackets counted without regard to quotes) under the official decoding, and the first balanced
top-level ``[...]`` outside quoted strings (:func:`first_list`) under the lenient one and the strict
scorer; the multi-turn files (compat) remove all whitespace and take the reply as it is (§5.2).
The bounds of core.decode_bounds (length, nesting, integer size) run before every parser, as for BFCL.
"""
from __future__ import annotations

import ast

from core import toolcalls
from core.decode_bounds import DecodeError, check_length, parse_python
from evals import leaderboard_ast


def first_list(text: str) -> str | None:
    """The first balanced top-level ``[...]`` (brackets inside quoted strings ignored), or None.
    One linear pass; quotes are tracked from the first opening bracket on, so an apostrophe in prose
    before the list is harmless. When the outermost bracket never closes, the earliest bracket that
    does close is taken."""
    check_length(text)
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


def official_list(text: str) -> str | None:
    """The official scorer's list extraction: brackets counted over the whole reply with no regard to
    quotes, from depth 0; the span from the first bracket opened at depth 0 to the bracket that brings
    the depth back to 0. So a `]` or `[` inside a string value, a stray `]` in prose before the list
    (the depth goes below 0 and never comes back) or an unclosed outer bracket give a broken span or
    None: the reply is invalid, as officially."""
    check_length(text)
    depth, start = 0, None
    for i, ch in enumerate(text):
        if ch == "[":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "]":
            depth -= 1
            if depth == 0 and start is not None:
                return text[start:i + 1]
    return None


def compat_calls(text: str, decoding: str = "official") -> list[dict]:
    """Upstream-compatible decoding of an (already extracted) call list. DecodeError on failure.
    Values resolve as upstream does (evals.leaderboard_ast); ``**mapping`` is kept as an argument named
    None under the official decoding and refused under the lenient one."""
    body = parse_python(text)
    if not isinstance(body, (ast.List, ast.Tuple, ast.Set)):
        raise DecodeError("not_a_call_list", "the reply is not a list of calls")
    calls = []
    for elt in body.elts:
        if not isinstance(elt, ast.Call):
            raise DecodeError("not_a_call_list", "every list element must be a call")
        if decoding == "lenient" and any(kw.arg is None for kw in elt.keywords):
            raise DecodeError("non_literal_value", "**kwargs unpacking is not allowed")
        calls.append(leaderboard_ast.resolve_call(elt, "acebench"))
    return calls


def strict_calls(text: str) -> list[dict]:
    """Literal-only decoding with the project's codec (positional arguments are an error)."""
    return [c.to_bfcl() for c in toolcalls.parse_python_calls(text, positional="error")]


def hermes_calls(text: str) -> list[dict]:
    return [c.to_bfcl() for c in toolcalls.parse_hermes(text)]


def decode(text: str, *, mode: str, scoring: str, multi_turn: bool = False, decoding: str = "official") -> list[dict]:
    """Think-stripped reply -> calls. ``mode``: prompt | fc; ``scoring``: compat | strict; ``decoding``
    (compat scoring): official (the official list extraction and value resolution) | lenient (the
    quote-aware extraction of :func:`first_list`, no ``**`` unpacking)."""
    if mode == "fc":
        return hermes_calls(text)
    if scoring == "compat" and multi_turn:
        return compat_calls("".join(text.split()), decoding)
    body = official_list(text) if scoring == "compat" and decoding == "official" else first_list(text)
    if body is None:
        raise DecodeError("syntax", "no [...] call list in the reply")
    return compat_calls(body, decoding) if scoring == "compat" else strict_calls(body)
