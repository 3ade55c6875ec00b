"""The BFCL-v3 Overall and the leaderboard's columns (reference/bfcl-v3.md §9).

bfcl-eval 2026.3.23 prints the v4 Overall; this is the v3 formula of bfcl-eval 2025.7.9's
generate_leaderboard_csv. A category that was not evaluated counts as 0, and the weighted (live) terms
always weight by each category's full entry count, so a subset evaluation estimates the full one.
"""
from __future__ import annotations

from evals.bfcl_data import CATEGORIES


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


def _weighted(acc: dict[str, float], sizes: dict[str, int], cats: tuple[str, ...]) -> float:
    total = sum(sizes[c] for c in cats)
    return sum(acc.get(c, 0.0) * sizes[c] for c in cats) / total


def v3_scores(acc: dict[str, float], sizes: dict[str, int]) -> dict[str, float]:
    """acc: category -> accuracy in [0, 1]; sizes: category -> full entry count. Returns fractions."""
    a = {c: acc.get(c, 0.0) for c in CATEGORIES}
    simple = _mean([a["simple_python"], a["simple_java"], a["simple_javascript"]])
    non_live_ast = _mean([simple, a["multiple"], a["parallel"], a["parallel_multiple"]])
    non_live = _mean([simple, a["multiple"], a["parallel"], a["parallel_multiple"], a["irrelevance"]])
    live_ast = _weighted(a, sizes, ("live_simple", "live_multiple", "live_parallel",
                                    "live_parallel_multiple"))
    live = _weighted(a, sizes, ("live_simple", "live_multiple", "live_parallel",
                                "live_parallel_multiple", "live_irrelevance", "live_relevance"))
    multi_turn = _mean([a["multi_turn_base"], a["multi_turn_miss_func"], a["multi_turn_miss_param"],
                        a["multi_turn_long_context"]])
    return {
        "overall": _mean([non_live, live, multi_turn]),
        "non_live_ast": non_live_ast,
        "non_live": non_live,
        "live_ast": live_ast,
        "live": live,
        "multi_turn": multi_turn,
        "relevance": a["live_relevance"],
        "irrelevance": _mean([a["irrelevance"], a["live_irrelevance"]]),
    }


# The leaderboard's table columns, in its order: (label, key in v3_scores).
LEADERBOARD_COLUMNS = (
    ("Overall", "overall"), ("Non-Live AST", "non_live_ast"), ("Live", "live"),
    ("Multi-Turn", "multi_turn"), ("Relevance", "relevance"), ("Irrelevance", "irrelevance"),
)
