"""ACEBench summary numbers (reference/acebench.md §5 and §7).

Per file: normal single-turn files ``round(correct / N, 3)``; the two multi-turn files score dialogues
(a dialogue is correct when every turn is; process = mean share of correct turns); special files
``correct / N`` unrounded; agent files ``round(end-to-end correct / N, 3)`` with process accuracy beside.
Then, each sub-mean rounded to 3 decimals::

    Normal  = (6*atom + 2*single_turn + 2*multi_turn + similar_api + preference) / 12   (mean of 12 files)
    Special = mean(incomplete, error_param, irrelevant)
    Agent   = mean(agent_multi_turn, agent_multi_step)          (end-to-end accuracies)
    Overall = round(0.578*Normal + 0.2676*Special + 0.1545*Agent, 3)

A category that was not evaluated counts 0, as on the leaderboard.
"""
from __future__ import annotations

from evals.acebench.data import ATOM, CATEGORIES, MULTI_TURN, SINGLE_TURN, SPECIAL, Entry, kind

WEIGHTS = {"normal": 0.578, "special": 0.2676, "agent": 0.1545}


def _mean(xs) -> float:
    xs = list(xs)
    return sum(xs) / len(xs) if xs else 0.0


def overall(normal: float, special: float, agent: float) -> float:
    return round(WEIGHTS["normal"] * normal + WEIGHTS["special"] * special + WEIGHTS["agent"] * agent, 3)


def normal_from_columns(atom: float, single_turn: float, multi_turn: float, similar_api: float,
                        preference: float) -> float:
    return round((6 * atom + 2 * single_turn + 2 * multi_turn + similar_api + preference) / 12, 3)


def summary_scores(acc: dict[str, float]) -> dict[str, float]:
    """File accuracies (fractions; missing files count 0) -> the leaderboard's columns (fractions)."""

    def accuracy(category: str) -> float:
        return acc.get(category, 0.0)

    atom = round(_mean(accuracy(c) for c in ATOM), 3)
    single = round(_mean(accuracy(c) for c in SINGLE_TURN), 3)
    multi = round(_mean(accuracy(c) for c in MULTI_TURN), 3)
    normal = normal_from_columns(atom, single, multi, accuracy("normal_similar_api"), accuracy("normal_preference"))
    special = round(_mean(accuracy(c) for c in SPECIAL), 3)
    agent = round(_mean([accuracy("agent_multi_turn"), accuracy("agent_multi_step")]), 3)
    return {"overall": overall(normal, special, agent), "normal": normal, "special": special, "agent": agent,
            "atom": atom, "single_turn": single, "multi_turn": multi, "similar_api": accuracy("normal_similar_api"),
            "preference": accuracy("normal_preference"), "incomplete": accuracy("special_incomplete"),
            "error_param": accuracy("special_error_param"), "irrelevant": accuracy("special_irrelevant"),
            "agent_multi_turn": accuracy("agent_multi_turn"), "agent_multi_step": accuracy("agent_multi_step")}


# The leaderboard's English table, in its order: (label, key in summary_scores).
LEADERBOARD_COLUMNS = (("Atom", "atom"), ("Single", "single_turn"), ("Multi", "multi_turn"),
                       ("SimAPI", "similar_api"), ("Pref", "preference"), ("Normal", "normal"),
                       ("Special", "special"), ("Agent", "agent"), ("Overall", "overall"))


def per_category(entries: list[Entry], records: dict[str, dict], which: str = "compat") -> dict[str, dict]:
    """{category: {correct, total, accuracy[, process_accuracy]}} for the selected entries; a missing record
    counts as wrong. ``which``: compat (the record's own verdict), strict (record["strict"]), or a
    decoding, official | lenient (record["by_decoding"]; the record's own verdict where it has none)."""
    def verdict(e):
        r = records.get(e.id) or {}
        if which in ("official", "lenient"):
            return bool((r.get("by_decoding") or {}).get(which, r.get("valid"))), r.get("process_score")
        v = r if which == "compat" else (r.get("strict") or {})
        return bool(v.get("valid")), v.get("process_score")

    out: dict[str, dict] = {}
    groups: dict[str, dict[str, list[bool]]] = {}
    for e in entries:
        ok, proc = verdict(e)
        if kind(e.category) == "normal_multi_turn":
            groups.setdefault(e.category, {}).setdefault(e.dialogue or e.id, []).append(ok)
            continue
        c = out.setdefault(e.category, {"correct": 0, "total": 0, "_process": []})
        c["correct"] += ok
        c["total"] += 1
        if proc is not None:
            c["_process"].append(proc)
    for cat, dialogues in groups.items():
        ends = [all(turns) for turns in dialogues.values()]
        out[cat] = {"correct": sum(ends), "total": len(ends),
                    "turns_correct": sum(sum(t) for t in dialogues.values()),
                    "turns_total": sum(len(t) for t in dialogues.values()),
                    "_process": [sum(t) / len(t) for t in dialogues.values()]}
    out = {c: out[c] for c in CATEGORIES if c in out}
    for cat, c in out.items():
        n = c["total"]
        acc = c["correct"] / n if n else 0.0
        c["accuracy"] = acc if cat in SPECIAL else round(acc, 3)
        procs = c.pop("_process")
        if procs:
            c["process_accuracy"] = round(_mean(procs), 3)
    return out
