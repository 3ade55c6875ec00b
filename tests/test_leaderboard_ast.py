"""evals.leaderboard_ast: the leaderboards' value resolution, each quirk once, computed without eval and
with bounded sizes."""
from __future__ import annotations

import ast

import pytest

from core.toolcalls import DecodeError
from evals import leaderboard_ast as la


def call(src: str, style: str = "bfcl") -> dict:
    return la.resolve_call(ast.parse(src, mode="eval").body, style)


def value(src: str, style: str = "bfcl"):
    (args,) = call(f"f(v={src})", style).values()
    return args["v"]


@pytest.mark.parametrize("src,expected", [
    ("+10", -10), ("-2.5", -2.5), ("not True", -1),         # unary_negates
    ("units", "units"),                                     # bare_name_is_string
    ("9 + 1", 10), ("'a' + 'b'", "ab"), ("2 ** 10", 1024), ("7 // 2", 3), ("[1] * 3", [1, 1, 1]),
    ("-1 + 2", 1), ("1 << 3", 8), ("(1, 2) + (3,)", (1, 2, 3)),  # arithmetic (real unary inside it)
    ("(1.0, 3.0)", (1.0, 3.0)),                             # tuple_stays_tuple
    ("...", "..."),                                         # ellipsis_is_string
    ("x[0]", "x[0]"), ("a.b[1:2]", "a.b[1:2]"),             # subscript_is_text
    ("g(k=1)", {"g": {"k": 1}}), ("np.array([1,2])", "np.array([1, 2])"),  # nested_call
])
def test_each_quirk(src, expected):
    assert value(src) == expected and type(value(src)) is type(expected)


def test_call_shapes():
    assert call("f(1, a=2)") == {"f": {"a": 2}}                       # positional_ignored
    assert call("f(**{'a': 1}, b=2)") == {"f": {None: {"a": 1}, "b": 2}}  # kwargs_unpacking_kept
    assert call("a.b.c(x=1)") == {"a.b.c": {"x": 1}}
    assert call("x[0].f(a=1)") == {"f": {"a": 1}}                     # a non-Name base adds nothing
    assert value("g()", "acebench") == {"g": {}} and value("g()") == "g()"


@pytest.mark.parametrize("src", [
    "2 ** 10 ** 10", "'x' * 10 ** 9", "[0] * 10 ** 6", "1 << 10 ** 6", "(2 ** 64) ** 64 * (2 ** 64) ** 64",
    "'%0999999999d' % 1", "1 / 0", "'a' - 'b'", "len('ab') + 1", "x + 1", "a.b * 2",
    "lambda: 1", "{1, 2}", "{**d}", "f'{x}'", "a if b else c", "1 < 2", "[i for i in y]", "-x", "+'a'",
])
def test_refused_without_running_anything(src):
    with pytest.raises(DecodeError):
        value(src)


def test_deep_nesting_is_a_decode_error():
    deep = "[" * 120 + "]" * 120
    with pytest.raises(DecodeError):
        value(deep)


def test_every_quirk_is_named_where_it_is_applied():
    import inspect

    source = inspect.getsource(la)
    for name in la.QUIRKS:
        assert source.count(name) >= 2, name  # described in QUIRKS and named where it is applied
