"""BFCL-v3 categories, entry loading from bfcl-eval's shipped data, and sample selection.

bfcl-eval 2026.3.23 ships v4 files; the 17 v3 categories are the ones below (v4 names).
Generation sees the docs with bfcl's language-specific hints (Java/JS types rewritten to string);
the checkers get the raw docs, as bfcl's own eval_runner does.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from functools import lru_cache

from core.errors import UserError
from core.bfcl_lib import bfcl

NON_LIVE = ("simple_python", "simple_java", "simple_javascript", "multiple", "parallel",
            "parallel_multiple", "irrelevance")
LIVE = ("live_simple", "live_multiple", "live_parallel", "live_parallel_multiple",
        "live_irrelevance", "live_relevance")
MULTI_TURN = ("multi_turn_base", "multi_turn_miss_func", "multi_turn_miss_param",
              "multi_turn_long_context")
CATEGORIES = NON_LIVE + LIVE + MULTI_TURN
GROUPS = {"all": CATEGORIES, "non_live": NON_LIVE, "live": LIVE, "multi_turn": MULTI_TURN,
          "single_turn": NON_LIVE + LIVE}
RELEVANCE = ("irrelevance", "live_irrelevance", "live_relevance")
V3_ALIASES = {"simple": "simple_python", "java": "simple_java", "javascript": "simple_javascript"}


def kind(category: str) -> str:
    """ast | relevance | multi_turn"""
    if category in MULTI_TURN:
        return "multi_turn"
    return "relevance" if category in RELEVANCE else "ast"


def language(category: str) -> str:
    return {"simple_java": "java", "simple_javascript": "javascript"}.get(category, "python")


@dataclass
class Entry:
    id: str
    category: str
    question: list  # list of turns, each a list of chat messages
    functions: list  # docs shown to the model (with bfcl's language hints)
    raw_functions: list  # docs the checker sees
    ground_truth: list | None = None
    extra: dict = field(default_factory=dict)  # multi-turn: initial_config, involved_classes, missed_function

    @property
    def kind(self) -> str:
        return kind(self.category)


def parse_categories(spec: str | None) -> list[str]:
    """'all', a group name, or a comma list of categories/groups (v3 names accepted)."""
    if not spec:
        return list(CATEGORIES)
    out: list[str] = []
    for raw in (s.strip() for s in spec.split(",")):
        if not raw:
            continue
        name = V3_ALIASES.get(raw, raw)
        if name in GROUPS:
            out.extend(c for c in GROUPS[name] if c not in out)
        elif name in CATEGORIES:
            if name not in out:
                out.append(name)
        else:
            raise UserError(
                f"--categories: unknown category {raw!r}; choose from groups "
                f"{', '.join(GROUPS)} or categories {', '.join(CATEGORIES)}"
            )
    return out


@lru_cache(maxsize=None)
def load_category(category: str) -> tuple[Entry, ...]:
    bfcl()
    from bfcl_eval.utils import load_dataset_entry, load_ground_truth_entry

    shown = load_dataset_entry(category, include_prereq=False, include_language_specific_hint=True)
    raw = load_dataset_entry(category, include_prereq=False, include_language_specific_hint=False)
    truth = {} if kind(category) == "relevance" else {
        g["id"]: g["ground_truth"] for g in load_ground_truth_entry(category)}
    entries = []
    for s, r in zip(shown, raw, strict=True):
        extra = {k: s[k] for k in ("initial_config", "involved_classes", "missed_function") if k in s}
        entries.append(Entry(s["id"], category, s["question"], s.get("function", []),
                             r.get("function", []), truth.get(s["id"]), extra))
    return tuple(entries)


def select(categories: list[str], per_category: int | None = None, ids: list[str] | None = None,
           seed: int = 0) -> list[Entry]:
    """Entries to evaluate. --per-category N takes a seeded sample that is stable: the same N, seed and
    category always give the same ids, and a larger N contains the smaller one's ids."""
    chosen: list[Entry] = []
    wanted = set(ids or [])
    for cat in categories:
        entries = load_category(cat)
        if wanted:
            entries = tuple(e for e in entries if e.id in wanted)
        elif per_category is not None and per_category < len(entries):
            order = list(range(len(entries)))
            random.Random(f"{seed}:{cat}").shuffle(order)
            keep = sorted(order[:per_category])
            entries = tuple(entries[i] for i in keep)
        chosen.extend(entries)
    if wanted:
        missing = wanted - {e.id for e in chosen}
        if missing:
            raise UserError(f"--ids: unknown id(s) in the selected categories: {', '.join(sorted(missing))}")
    return chosen


def category_of_id(entry_id: str) -> str:
    """The category an id belongs to (ids are <category>_<n> or <category>_<a>-<b>-<c>)."""
    head = entry_id.rsplit("_", 1)[0]
    head = V3_ALIASES.get(head, head)
    if head not in CATEGORIES:
        raise UserError(f"id {entry_id!r} is not a BFCL-v3 id")
    return head


def full_sizes() -> dict[str, int]:
    return {c: len(load_category(c)) for c in CATEGORIES}
