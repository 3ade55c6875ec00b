"""The leaderboards' resolution of a parsed Python call list, reproduced without ever evaluating it.

bfcl-eval (``model_handler.utils.resolve_ast_by_type``) and ACEBench's scorer resolve the value of
every keyword argument from Python's ``ast`` the same way, with some upstream code calling ``eval`` on
parts of the model's text. This module gives the same values by walking a whitelist of nodes, with
bounded sizes; a node outside the whitelist, or a size over a bound, is a ``DecodeError``. Every way
the upstream resolution differs from plain literal parsing is one entry of :data:`QUIRKS`, named where
it is applied, so the README's "differences from the official scorers" table and the parity tests
point at the same place.

Callers (evals.bfcl_prompt, evals.acebench.decode) do the benchmark's own text preparation, parse it
with the shared bounds (core.decode_bounds.parse_python: length, nesting, integer literals) and then
call :func:`resolve_call` on each list element. Computed integers stay within ``MAX_INT_BITS`` too:
arithmetic is refused *before* it would build something over a bound, so no reply costs more than a
few milliseconds here.
"""
from __future__ import annotations

import ast
import operator

from core.decode_bounds import MAX_DEPTH, MAX_INT_BITS, DecodeError

DECODINGS = ("official", "lenient")  # the leaderboard's decoding (default) | the project's recovering one


def other_decoding(decoding: str) -> str:
    """The decoding scored beside `decoding` (its own column)."""
    if decoding not in DECODINGS:
        raise ValueError(f"decoding must be one of {DECODINGS}, not {decoding!r}")
    return DECODINGS[1 - DECODINGS.index(decoding)]


QUIRKS = {
    "unary_negates": "any unary operator on a literal negates it (bfcl and ACEBench: `+10` -> -10, "
                     "`not True` -> -1); upstream reads `-operand.value`",
    "bare_name_is_string": "a bare name is its own text (`unit=units` -> 'units')",
    "arithmetic": "arithmetic on literals is computed (`base=9 + 1` -> 10, `'a' + 'b'` -> 'ab'); upstream "
                  "evaluates the expression, here a bounded walker computes it",
    "tuple_stays_tuple": "a tuple stays a tuple, which bfcl's checker accepts only for tuple-typed "
                         "parameters",
    "kwargs_unpacking_kept": "`**{...}` becomes an argument named None holding the mapping (an unexpected "
                             "parameter for bfcl; for ACEBench a key None)",
    "positional_ignored": "positional arguments are dropped",
    "ellipsis_is_string": "`...` becomes the string '...'",
    "subscript_is_text": "a subscript becomes its source text (`x[0]` -> 'x[0]')",
    "nested_call": "a call inside an argument: with keywords `{name: {kwargs}}`; without, its unparsed text "
                   "(bfcl) or `{name: {}}` (ACEBench)",
}

# Bounds on what arithmetic may build (upstream has none; these only refuse what would be huge).
# MAX_SEQ counts every item of a built sequence, nested ones included: `[[1] * 10**4] * 10**4` is 10**8.
MAX_POW = 64
MAX_SEQ = 10_000
MAX_SHIFT = 256

_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
           ast.BitAnd: operator.and_, ast.BitOr: operator.or_, ast.BitXor: operator.xor,
           ast.LShift: operator.lshift, ast.RShift: operator.rshift}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Invert: operator.invert, ast.Not: operator.not_}


def dotted_name(func: ast.AST) -> str:
    """The call's name as upstream builds it: attribute parts joined by dots, down to a Name (a base that
    is not a Name contributes nothing, so `a[0].f` gives 'f')."""
    parts = []
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    if isinstance(func, ast.Name):
        parts.append(func.id)
    return ".".join(reversed(parts))


def resolve_call(node: ast.Call, style: str, depth: int = 0) -> dict:
    """{name: {kwarg: value}}; positional arguments dropped (quirk positional_ignored), `**mapping` kept
    under the key None (quirk kwargs_unpacking_kept). `style`: "bfcl" | "acebench"."""
    args: dict = {}
    for kw in node.keywords:
        args[kw.arg] = resolve_value(kw.value, style, depth + 1)
    return {dotted_name(node.func): args}


def resolve_value(node: ast.AST, style: str, depth: int = 0):
    if depth > MAX_DEPTH:
        raise DecodeError("too_deep", f"value nested deeper than {MAX_DEPTH}")
    if isinstance(node, ast.Constant):
        return "..." if node.value is Ellipsis else node.value  # quirk ellipsis_is_string
    if isinstance(node, ast.UnaryOp):  # quirk unary_negates: the operand must be a literal
        if not isinstance(node.operand, ast.Constant):
            raise DecodeError("non_literal_value", "unary operator on a non-literal")
        try:
            return -node.operand.value
        except TypeError:
            raise DecodeError("non_literal_value", "unary operator on a non-number") from None
    if isinstance(node, ast.List):
        return [resolve_value(v, style, depth + 1) for v in node.elts]
    if isinstance(node, ast.Tuple):  # quirk tuple_stays_tuple
        return tuple(resolve_value(v, style, depth + 1) for v in node.elts)
    if isinstance(node, ast.Dict):
        out = {}
        for k, v in zip(node.keys, node.values):
            if k is None:  # {**mapping}: upstream fails resolving the missing key
                raise DecodeError("non_literal_value", "dict unpacking is not a value")
            key = resolve_value(k, style, depth + 1)
            try:
                out[key] = resolve_value(v, style, depth + 1)
            except TypeError:
                raise DecodeError("non_literal_value", "unhashable dict key") from None
        return out
    if isinstance(node, ast.BinOp):  # quirk arithmetic
        return arithmetic(node)
    if isinstance(node, ast.Name):  # quirk bare_name_is_string
        return node.id
    if isinstance(node, ast.Call):  # quirk nested_call
        if node.keywords:
            return resolve_call(node, style, depth + 1)
        return _source(node) if style == "bfcl" else {dotted_name(node.func): {}}
    if isinstance(node, ast.Subscript):  # quirk subscript_is_text
        return _source(node.value) + "[" + _source(node.slice) + "]"
    raise DecodeError("non_literal_value", f"unsupported value ({type(node).__name__})")


def _source(node: ast.AST) -> str:
    """ast.unparse, which recurses: the tree's depth is bounded by the parse (MAX_TREE_DEPTH), and a
    RecursionError that a deep caller stack still meets is a decode error, never a crash."""
    try:
        return ast.unparse(node)
    except RecursionError:
        raise DecodeError("too_deep", "expression nested too deeply to render") from None


def arithmetic(node: ast.AST, depth: int = 0):
    """What Python computes for an expression of literals and operators, with bounded sizes. Names,
    attributes and calls inside it are refused (upstream would evaluate them: a documented deviation)."""
    if depth > 50:
        raise DecodeError("too_deep", "arithmetic nested too deeply")
    if isinstance(node, ast.Constant) and node.value is not Ellipsis:
        return node.value
    if isinstance(node, (ast.List, ast.Tuple)):
        items = [arithmetic(e, depth + 1) for e in node.elts]
        return items if isinstance(node, ast.List) else tuple(items)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:  # real unary semantics inside eval
        return _apply(_UNARY[type(node.op)], arithmetic(node.operand, depth + 1))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        a, b = arithmetic(node.left, depth + 1), arithmetic(node.right, depth + 1)
        _check_operands(node.op, a, b)
        return _apply(_BINOPS[type(node.op)], a, b)
    raise DecodeError("non_literal_value", f"expression with {type(node).__name__} is not computed")


def _number(x) -> bool:
    return isinstance(x, (int, float, complex))


_SEQ = (str, bytes, list, tuple)


def _bits(x) -> int:
    """An upper bound on the bits of an int-like operand (bool included); 0 for anything else."""
    return abs(int(x)).bit_length() if isinstance(x, int) else 0


def _items(x, limit: int) -> int:
    """How many items a str/bytes/list/tuple holds, nested sequences counted in full; the count stops
    once it is over `limit` (a list may hold the same list many times: never walked in full)."""
    if not isinstance(x, _SEQ):
        return 1
    total, stack = 0, [x]
    while stack and total <= limit:
        seq = stack.pop()
        total += len(seq)
        if isinstance(seq, (list, tuple)):
            stack.extend(e for e in seq if isinstance(e, _SEQ))
    return total


def _check_operands(op: ast.operator, a, b) -> None:
    """Refuse an operation whose result would be over a bound, before it is computed."""
    if isinstance(op, ast.Pow) and _number(a) and _number(b):
        if not isinstance(b, (int, float)) or abs(b) > MAX_POW:
            raise DecodeError("non_literal_value", f"exponent over {MAX_POW}")
        if isinstance(a, int) and isinstance(b, int) and b > 0 and _bits(a) > 1 and _bits(a) * b > MAX_INT_BITS:
            raise DecodeError("non_literal_value", f"a power over {MAX_INT_BITS} bits")
    if isinstance(op, ast.Mult):
        seq, n = (a, b) if isinstance(a, _SEQ) else (b, a)
        if isinstance(seq, _SEQ) and isinstance(n, int) and n > 0 and n * _items(seq, MAX_SEQ) > MAX_SEQ:
            raise DecodeError("non_literal_value", f"repetition over {MAX_SEQ} items")
        if isinstance(a, int) and isinstance(b, int) and _bits(a) + _bits(b) > MAX_INT_BITS:
            raise DecodeError("non_literal_value", f"a product over {MAX_INT_BITS} bits")
    if isinstance(op, ast.Add) and isinstance(a, _SEQ) and isinstance(b, _SEQ):
        if _items(a, MAX_SEQ) + _items(b, MAX_SEQ) > MAX_SEQ:
            raise DecodeError("non_literal_value", f"concatenation over {MAX_SEQ} items")
    if isinstance(op, ast.Mod) and isinstance(a, (str, bytes)):  # %-formatting can build any size
        raise DecodeError("non_literal_value", "string formatting is not computed")
    if isinstance(op, ast.LShift) and isinstance(b, int):
        if b > MAX_SHIFT or (isinstance(a, int) and _bits(a) + b > MAX_INT_BITS):
            raise DecodeError("non_literal_value", f"shift over {MAX_SHIFT} bits or {MAX_INT_BITS} bits in all")


def _apply(fn, *xs):
    try:
        out = fn(*xs)
    except (TypeError, ZeroDivisionError, OverflowError, ValueError, MemoryError) as e:
        raise DecodeError("non_literal_value", f"arithmetic failed: {e}") from None
    if isinstance(out, int) and out.bit_length() > MAX_INT_BITS:
        raise DecodeError("non_literal_value", f"integer over {MAX_INT_BITS} bits")
    return out
