"""ACEBench English categories, entry loading and sample selection (reference/acebench.md §2-3).

Each category is a pair of JSON Lines files, ``data_<category>.json`` (questions) and
``possible_answer/data_<category>.json`` (answers), with the same ids in the same order.
The two normal multi-turn files hold one entry per *turn*; they are scored per dialogue, so selection
always takes whole dialogues.
"""
from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from core.errors import InputFileError, UserError

ATOM = ("normal_atom_bool", "normal_atom_enum", "normal_atom_number", "normal_atom_list",
        "normal_atom_object_deep", "normal_atom_object_short")
SINGLE_TURN = ("normal_single_turn_single_function", "normal_single_turn_parallel_function")
MULTI_TURN = ("normal_multi_turn_user_adjust", "normal_multi_turn_user_switch")
NORMAL = ATOM + SINGLE_TURN + MULTI_TURN + ("normal_similar_api", "normal_preference")
SPECIAL = ("special_incomplete", "special_error_param", "special_irrelevant")
AGENT = ("agent_multi_turn", "agent_multi_step")
CATEGORIES = NORMAL + SPECIAL + AGENT
GROUPS = {"all": CATEGORIES, "test_all": CATEGORIES, "normal": NORMAL, "atom": ATOM,
          "single_turn": SINGLE_TURN, "multi_turn": MULTI_TURN, "special": SPECIAL, "agent": AGENT}

_MT_ID = re.compile(r"^(normal_multi_turn_user_(?:adjust|switch))_(\d+)(?:_(\d+))?$")


def kind(category: str) -> str:
    """normal | normal_multi_turn | special | agent"""
    if category in MULTI_TURN:
        return "normal_multi_turn"
    if category in SPECIAL:
        return "special"
    if category in AGENT:
        return "agent"
    return "normal"


@dataclass
class Entry:
    id: str
    category: str
    question: str
    functions: list
    ground_truth: object
    time: str | None = None
    profile: str | None = None
    extra: dict = field(default_factory=dict)  # agent: initial_config, involved_classes, mile_stone

    @property
    def kind(self) -> str:
        return kind(self.category)

    @property
    def dialogue(self) -> str | None:
        """Multi-turn files: ``<category>_<dialogue>``, the unit that is scored."""
        return dialogue_of(self.id)


def dialogue_of(entry_id: str) -> str | None:
    """``normal_multi_turn_user_adjust_3_1`` (a turn) -> ``normal_multi_turn_user_adjust_3``; None for an
    id that is not a multi-turn turn."""
    m = _MT_ID.match(entry_id)
    return f"{m.group(1)}_{m.group(2)}" if m and m.group(3) is not None else None


def parse_categories(spec: str | None) -> list[str]:
    """'all', a group (normal, atom, single_turn, multi_turn, special, agent) or a comma list."""
    if not spec:
        return list(CATEGORIES)
    out: list[str] = []
    for raw in (s.strip() for s in spec.split(",")):
        if not raw:
            continue
        names = GROUPS.get(raw)
        if names is None:
            name = raw if raw in CATEGORIES else f"normal_{raw}" if f"normal_{raw}" in CATEGORIES else None
            if name is None:
                raise UserError(f"--categories: unknown category {raw!r}; choose from groups "
                                f"{', '.join(g for g in GROUPS if g != 'test_all')} or categories "
                                f"{', '.join(CATEGORIES)}")
            names = (name,)
        out.extend(c for c in names if c not in out)
    if not out:
        raise UserError("--categories: no category given")
    return out


def _read_jsonl(path: Path) -> list[tuple[int, dict]]:
    if not path.is_file():
        raise UserError(f"{path}: missing ACEBench data file")
    rows = []
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise InputFileError(path, n, f"not valid JSON ({e.msg} at column {e.colno})") from None
            if not isinstance(obj, dict) or not isinstance(obj.get("id"), str):
                raise InputFileError(path, n, "expected a JSON object with a string \"id\"")
            rows.append((n, obj))
    return rows


@lru_cache(maxsize=64)
def _load(root: str, category: str) -> tuple[Entry, ...]:
    qpath = Path(root) / f"data_{category}.json"
    apath = Path(root) / "possible_answer" / f"data_{category}.json"
    questions, answers = _read_jsonl(qpath), _read_jsonl(apath)
    if len(questions) != len(answers):
        raise UserError(f"{apath}: {len(answers)} answers for {len(questions)} questions in {qpath.name}")
    entries = []
    for (qn, q), (an, a) in zip(questions, answers):
        if q["id"] != a["id"]:
            raise InputFileError(apath, an, f"id {a['id']!r} does not match {qpath.name}:{qn} id {q['id']!r}")
        for key in ("question", "function"):
            if key not in q:
                raise InputFileError(qpath, qn, f"id {q['id']!r}: missing {key!r}")
        if "ground_truth" not in a:
            raise InputFileError(apath, an, f"id {a['id']!r}: missing 'ground_truth'")
        extra = {k: q[k] for k in ("initial_config", "involved_classes") if k in q}
        if "mile_stone" in a:
            extra["mile_stone"] = a["mile_stone"]
        entries.append(Entry(q["id"], category, q["question"], q["function"], a["ground_truth"],
                             q.get("time"), q.get("profile"), extra))
    return tuple(entries)


def load_category(root: Path, category: str) -> tuple[Entry, ...]:
    if category not in CATEGORIES:
        raise UserError(f"unknown ACEBench category {category!r}")
    return _load(str(Path(root).resolve()), category)


def _units(entries: tuple[Entry, ...]) -> list[list[Entry]]:
    """Scored units in file order: one entry each, or a whole dialogue for the multi-turn files."""
    units: list[list[Entry]] = []
    for e in entries:
        d = e.dialogue
        if d is not None and units and units[-1][0].dialogue == d:
            units[-1].append(e)
        else:
            units.append([e])
    return units


def select(root: Path, categories: list[str], per_category: int | None = None, ids: list[str] | None = None,
           seed: int = 0) -> list[Entry]:
    """Entries to evaluate. ``per_category`` N takes a seeded, stable sample of N scored units (entries, or
    dialogues in the multi-turn files): a larger N contains a smaller one's. An id of one turn, or a
    dialogue id ``normal_multi_turn_user_adjust_3``, selects the whole dialogue."""
    wanted = set(ids or [])
    chosen: list[Entry] = []
    found: set[str] = set()
    for cat in categories:
        units = _units(load_category(root, cat))
        if wanted:
            keep = []
            for u in units:
                names = {e.id for e in u} | ({u[0].dialogue} if u[0].dialogue else set())
                hit = names & wanted
                if hit:
                    found |= hit
                    keep.append(u)
            units = keep
        elif per_category is not None and per_category < len(units):
            order = list(range(len(units)))
            random.Random(f"{seed}:{cat}").shuffle(order)
            units = [units[i] for i in sorted(order[:per_category])]
        for u in units:
            chosen.extend(u)
    missing = wanted - found
    if missing:
        raise UserError(f"--ids: unknown id(s) in the selected categories: {', '.join(sorted(missing))}")
    return chosen


def category_of_id(entry_id: str) -> str:
    """``normal_atom_bool_7`` -> ``normal_atom_bool``; multi-turn turn ids ``..._<dialogue>_<turn>``."""
    m = _MT_ID.match(entry_id)
    if m:
        return m.group(1)
    head, _, tail = entry_id.rpartition("_")
    if head in CATEGORIES and tail.isdigit() and head not in MULTI_TURN:
        return head
    raise UserError(f"id {entry_id!r} is not an ACEBench (English) id")


def full_sizes(root: Path) -> dict[str, int]:
    """Scored units per category in the full data (multi-turn files count dialogues)."""
    return {c: len(_units(load_category(root, c))) for c in CATEGORIES}
