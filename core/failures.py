"""Why a reply missed its label: one failure class per mismatched probe record, and the sample's kind.

`classify(response, sample, mode)` is None exactly when the reply earns the training reward
(core.prompt_format.reward == 1.0); otherwise the first class below that applies, checked in this order
(the order of FAILURE_CLASSES):

    class             label   the reply ...
    ----------------  ------  -------------------------------------------------------------------------
    no_call           calls   makes no call (prose only)
    unexpected_call   text    calls a tool, or tries to (a clarify / refuse label wants words, not calls;
                              a malformed attempt is still an attempt to call, so it lands here)
    malformed         calls   tries calls but does not decode (core.prompt_format.decode_reply is None)
    wrong_function    calls   decodes, but its multiset of function names differs from the label's
                              (a wrong name, or too few / too many calls)
    missing_argument  calls   has the label's functions, but a paired call lacks an argument key the label has
    extra_argument    calls   has the label's functions and every label key, plus a key the label lacks
    wrong_value       calls   names and argument keys all match; some value differs (ToolMatch rules:
                              1 == 1.0, True != 1, list order per `list_as_set`)

Calls of the same name are paired with the label's calls so that the fewest argument keys differ
(then the fewest values), so a parallel reply with its calls in another order is judged on its
arguments, not on its order.

`sample_kind(sample)` names the dialogue kind: procedural samples carry it in meta["kind"]
(core/seeds/synth.py, kept by procedural expansion); imported and LLM-expanded samples carry none and
fall back to "text" (a text label) or "call" (a call label).
"""
from __future__ import annotations

from collections import Counter, defaultdict
from itertools import permutations

from core import toolcalls
from core.prompt_format import decode_reply, reward
from core.schema import Sample

FAILURE_CLASSES = ("no_call", "unexpected_call", "malformed", "wrong_function",
                   "missing_argument", "extra_argument", "wrong_value")

KINDS = ("simple", "multiple", "parallel", "parallel_multiple", "sequential", "clarify_then_call",
         "follow_up", "clarify", "refuse", "mt_clarify", "mt_refuse")
FALLBACK_KINDS = ("text", "call")
UNKNOWN_KIND = "unknown"  # a record whose sample is not at hand (see core.stages.probe.summarize)

# Pairing tries every order of same-name calls up to this many (6! = 720 pairings); beyond it the
# calls are paired in the order given, which only matters for the missing/extra/value split.
_MAX_PERMUTED = 6


def sample_kind(sample: Sample) -> str:
    """The dialogue kind: meta["kind"] when the sample has one, else "text" / "call" by its label."""
    kind = sample.meta.get("kind")
    if isinstance(kind, str) and kind:
        return kind
    return "text" if sample.label.is_text else "call"


def classify(response: str, sample: Sample, mode: str, list_as_set: bool = False) -> str | None:
    """None when `response` earns the reward for `sample`, else one of FAILURE_CLASSES."""
    if reward(response, sample, mode, list_as_set=list_as_set) == 1.0:
        return None
    calls = decode_reply(response, mode)
    if sample.label.is_text:
        return "unexpected_call"  # reward 0 on a text label: the reply called, or tried to
    if calls == []:
        return "no_call"
    if calls is None:
        return "malformed"
    label = sample.label.tool_calls()
    if Counter(c.name for c in calls) != Counter(c.name for c in label):
        return "wrong_function"
    missing = extra = 0
    for name in {c.name for c in label}:
        got = [c for c in calls if c.name == name]
        want = [c for c in label if c.name == name]
        m, e, _ = _best_pairing(got, want, list_as_set)
        missing, extra = missing + m, extra + e
    if missing:
        return "missing_argument"
    if extra:
        return "extra_argument"
    return "wrong_value"


def _best_pairing(got: list[toolcalls.ToolCall], want: list[toolcalls.ToolCall],
                  list_as_set: bool) -> tuple[int, int, int]:
    """(missing keys, extra keys, differing values) of the pairing of `got` with `want` (same length,
    same name) that differs least: fewest differing keys first, then fewest differing values."""
    orders = permutations(got) if len(got) <= _MAX_PERMUTED else [got]
    best = None
    for order in orders:
        missing = extra = values = 0
        for g, w in zip(order, want):
            gk, wk = set(g.arguments), set(w.arguments)
            missing += len(wk - gk)
            extra += len(gk - wk)
            values += sum(1 for k in gk & wk if not _same_value(g.arguments[k], w.arguments[k], list_as_set))
        score = (missing + extra, values, missing, extra)
        if best is None or score < best:
            best = score
    _, values, missing, extra = best
    return missing, extra, values


def _same_value(a, b, list_as_set: bool) -> bool:
    """Equal under ToolMatch's rules (one home: toolcalls.tool_match on a one-argument call)."""
    return toolcalls.tool_match([toolcalls.ToolCall("v", {"v": a})], [toolcalls.ToolCall("v", {"v": b})],
                                list_as_set=list_as_set)
