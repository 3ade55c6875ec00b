"""Scoring one ACEBench result with both scorers (compat, for the leaderboard; strict, beside it).

Think blocks (``<think>...</think>``, and everything before a lone ``</think>``) are removed before
either scorer sees a reply; the record says when that happened.
"""
from __future__ import annotations

from core import toolcalls
from evals.acebench import scorer_compat as compat
from evals.acebench import scorer_strict as strict
from evals.acebench.data import Entry
from evals.acebench.decode import decode
from evals.leaderboard_ast import DECODINGS, other_decoding
from evals.results import json_safe


def _verdict(res: dict) -> dict:
    return {"valid": res["valid"], "error_type": res["error_type"], "error": res["error"]}


def _decoded(text: str, mode: str, scoring: str, multi_turn: bool, decoding: str = "official"):
    try:
        return decode(text, mode=mode, scoring=scoring, multi_turn=multi_turn, decoding=decoding), None
    except toolcalls.DecodeError as e:
        return None, {"valid": False, "error_type": "wrong_output_format", "error": f"{e.kind}: {e}"}


def score_text(entry: Entry, raw: str, mode: str, arg_set: bool = False, decoding: str = "official") -> dict:
    """A normal or special reply -> {valid, error_type, error, decoded, strict, by_decoding, think_stripped}:
    the compat verdict under `decoding` (official: the leaderboard's own list extraction and value
    resolution; lenient: quote-aware extraction), by_decoding the compat verdict under each."""
    other_decoding(decoding)  # checks the name
    text = toolcalls.strip_think(raw)
    out = {"think_stripped": text != raw.strip()}
    if entry.kind == "special":  # substring checks on the text: nothing is decoded
        c = compat.check_special(entry.category, text, entry.ground_truth)
        s = strict.check_special(entry.category, text, entry.ground_truth)
        return {**_verdict(c), "decoded": None, "strict": _verdict(s),
                "by_decoding": dict.fromkeys(DECODINGS, c["valid"]), **out}
    multi = entry.kind == "normal_multi_turn"
    verdicts, decoded = {}, {}
    for d in DECODINGS:
        calls, err = _decoded(text, mode, "compat", multi, d)
        verdicts[d] = err or compat.check_normal(entry.functions, calls, entry.ground_truth)
        decoded[d] = calls
    c = verdicts[decoding]
    scalls, serr = _decoded(text, mode, "strict", multi)
    s = serr or strict.check_normal(entry.functions, scalls, entry.ground_truth, arg_set=arg_set)
    return {**_verdict(c), "decoded": json_safe(decoded[decoding]), "strict": _verdict(s),
            "by_decoding": {d: v["valid"] for d, v in verdicts.items()}, **out}


def score_agent(entry: Entry, state: list, process: list[str]) -> dict:
    """An agent rollout's saved state and process trace -> end-to-end and process verdicts."""
    c = compat.check_agent(state, entry.ground_truth)
    s = strict.check_agent(state, entry.ground_truth)
    stones = entry.extra.get("mile_stone") or []
    return {**_verdict(c), "process_score": compat.process_score(process, stones, c["valid"]),
            "strict": {**_verdict(s), "process_score": compat.process_score(process, stones, s["valid"])}}
