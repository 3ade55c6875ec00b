"""Decoding parity with the leaderboard: bfcl-eval's own prompt-mode decoder and checkers beside looptool's
official decoding, reply by reply, on perturbations of the ground truth of every Python AST category.

bfcl-eval's decoder is run here on replies this test writes itself (never on model text): it calls
``eval`` on arithmetic, which looptool's walker (evals.leaderboard_ast) computes instead.
"""
from __future__ import annotations

import random
from collections import Counter

import pytest

from core.toolcalls import ToolCall
from evals import bfcl_data, bfcl_score
from core.bfcl_lib import MODEL_NAME, bfcl
from evals.bfcl_truth import truth_calls
from tests.test_bfcl_checkers import JAVA_TYPED, KNOWN_UNRENDERABLE

PYTHON_AST = [c for c in bfcl_data.NON_LIVE + bfcl_data.LIVE
              if bfcl_data.kind(c) == "ast" and bfcl_data.language(c) == "python"]
RELEVANCE = ["irrelevance", "live_irrelevance"]
PER_CATEGORY = 12


def official_verdict(entry, text: str) -> bool:
    """What bfcl-eval's runner decides for a prompt-mode reply: its decoder, its format check, its checker."""
    bfcl()
    from bfcl_eval.constants.enums import Language, ReturnFormat
    from bfcl_eval.eval_checker.ast_eval.ast_checker import ast_checker
    from bfcl_eval.model_handler.utils import default_decode_ast_prompting
    from bfcl_eval.utils import is_empty_output, is_function_calling_format_output

    try:
        decoded = default_decode_ast_prompting(text, ReturnFormat.PYTHON)
    except Exception:
        decoded = None
    if entry.kind == "relevance":
        has_call = decoded is not None and not is_empty_output(decoded)
        return not has_call if "irrelevance" in entry.category else has_call
    if decoded is None or not is_function_calling_format_output(decoded):
        return False
    try:
        return bool(ast_checker(entry.raw_functions, decoded, entry.ground_truth, Language.PYTHON,
                                entry.category, MODEL_NAME)["valid"])
    except Exception:  # the checker meeting a value shape it does not expect: invalid for the runner too
        return False


# -- perturbations -------------------------------------------------------------------------------------

def _value(v, style: str) -> str:
    if style == "tuple" and isinstance(v, list):
        return "(" + "".join(_value(x, "repr") + ", " for x in v) + ")"
    if style == "json" and (isinstance(v, bool) or v is None):
        return {True: "true", False: "false", None: "null"}[v]
    if style == "dq" and isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(v)


def render(calls: list[ToolCall], style: str = "repr", first: str | None = None, positional: bool = False) -> str:
    """calls as a Python call list; `first` replaces the source of the first call's first argument value."""
    parts = []
    for ci, c in enumerate(calls):
        args = []
        for ai, (k, v) in enumerate(c.arguments.items()):
            src = first if (ci == 0 and ai == 0 and first is not None) else _value(v, style)
            args.append(src if (positional and ci == 0 and ai == 0) else f"{k}={src}")
        parts.append(f"{c.name}({', '.join(args)})")
    return "[" + ", ".join(parts) + "]"


def _first_arg(calls):
    return next(iter(calls[0].arguments.items()), (None, None)) if calls else (None, None)


def perturbations(entry) -> list[tuple[str, str]]:
    """(class, reply) pairs: ground truth, wrong values, fences, whitespace, tuples, unpacking, bare names,
    arithmetic, nested calls, boolean/None spellings, positional arguments, quote styles."""
    calls = truth_calls(entry) if entry.kind == "ast" else [ToolCall(entry.functions[0]["name"], {"x": 1})]
    t = render(calls)
    out = [("truth", t), ("no_brackets", t[1:-1]), ("double_quotes", render(calls, "dq")),
           ("json_spellings", render(calls, "json")), ("tuples", render(calls, "tuple")),
           ("prose", "I cannot help with that."), ("empty_list", "[]")]
    for fence in ("```python\n{}\n```", "```\n{}\n```", "```json\n{}\n```", "```py\n{}```", "`{}`", "```{}```"):
        out.append(("fence", fence.format(t)))
    for ws in (" {}", "\t{}", "\n{}", "{}\n", "{}\r\n", "  {}  ", "\n\n{}\n\n"):
        out.append(("whitespace", ws.format(t)))
    out.append(("whitespace", t.replace(", ", ",\n")))
    key, v = _first_arg(calls)
    if key is not None:
        rest = {k: x for k, x in calls[0].arguments.items() if k != key}
        unpack = f"{calls[0].name}(**{{{key!r}: {v!r}}}{''.join(f', {k}={x!r}' for k, x in rest.items())})"
        out.append(("unpacking", "[" + ", ".join([unpack] + [render([c])[1:-1] for c in calls[1:]]) + "]"))
        out.append(("positional", render(calls, positional=True)))
        out.append(("nested_call", render(calls, first=f"g(inner={v!r})")))
        out.append(("nested_call", render(calls, first="g()")))
        out.append(("subscript", render(calls, first="x[0]")))
        if isinstance(v, bool):
            out.append(("wrong_value", render(calls, first=repr(not v))))
            out.append(("bool_spelling", render(calls, first=str(v).lower())))
        elif isinstance(v, (int, float)):
            out.append(("wrong_value", render(calls, first=repr(v + 1))))
            out.append(("arithmetic", render(calls, first=f"{v - 1!r} + 1")))
            out.append(("arithmetic", render(calls, first=f"{v * 2!r} / 2")))
            out.append(("unary_plus", render(calls, first=f"+{v!r}")))
            out.append(("unary_minus", render(calls, first=f"-{v!r}")))
        elif isinstance(v, str):
            out.append(("wrong_value", render(calls, first=repr(v + "x"))))
            if v.isidentifier():
                out.append(("bare_name", render(calls, first=v)))
            if len(v) > 1:
                out.append(("concatenation", render(calls, first=f"{v[:1]!r} + {v[1:]!r}")))
        elif isinstance(v, list):
            out.append(("wrong_value", render(calls, first=repr(v + v[:1] if v else [0]))))
            out.append(("list_concat", render(calls, first=f"{v[:1]!r} + {v[1:]!r}")))
        elif isinstance(v, dict):
            out.append(("wrong_value", render(calls, first=repr({**v, "zz_extra": 1}))))
        out.append(("none_spelling", render(calls, first="None")))
        out.append(("none_spelling", render(calls, first="null")))
    if len(calls) > 1:
        out.append(("wrong_count", render(calls[:1])))
    # the documented deviations (README, "Differences from the official scorers")
    out.append(("think_block", f"<think>The user wants a call.</think>\n{t}"))
    if isinstance(v, int) and not isinstance(v, bool):
        out.append(("arithmetic_with_names", render(calls, first=f"len('ab') - 2 + {v!r}")))
    return out


# Replies where looptool's official decoding differs from bfcl on purpose, each a README row.
DEVIATIONS = {"think_block": "think blocks are removed before decoding",
              "arithmetic_with_names": "arithmetic with names or calls is not evaluated"}


def entries(cat: str) -> list:
    ok = [e for e in bfcl_data.load_category(cat) if e.id not in KNOWN_UNRENDERABLE and e.id not in JAVA_TYPED]
    return random.Random(f"parity-{cat}").sample(ok, min(PER_CATEGORY, len(ok)))


@pytest.mark.parametrize("cat", PYTHON_AST + RELEVANCE)
def test_official_decoding_gives_bfcl_verdicts(cat):
    mismatches, documented, lenient_moves, seen = [], Counter(), Counter(), Counter()
    for e in entries(cat):
        for cls, text in perturbations(e):
            seen[cls] += 1
            ours = bfcl_score.score_single(e, text, "prompt")
            theirs = official_verdict(e, text)
            if ours["valid"] != theirs:
                if cls in DEVIATIONS:
                    documented[cls] += 1
                else:
                    mismatches.append((e.id, cls, text[:120], ours["valid"], theirs, ours["error_type"]))
            if ours["by_decoding"]["lenient"] != ours["valid"]:
                lenient_moves[cls] += 1
    assert not mismatches, "\n".join(map(str, mismatches[:20]))
    # the think deviation is real on every entry: bfcl reads "<think>" as a syntax error (no call), looptool
    # scores the answer after the block (the ground truth's calls; for irrelevance, a call)
    assert documented["think_block"] == len(entries(cat))
    assert seen["truth"] == len(entries(cat)) and len(seen) >= 12
    # the lenient column differs where the lenient decoding is meant to: it recovers ```python fences,
    # which bfcl's decoder reads as invalid
    assert lenient_moves["fence"] > 0
