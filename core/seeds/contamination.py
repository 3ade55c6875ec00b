"""Contamination guard: keep seed data away from the evaluation sets.

The index holds every BFCL-v3 function name (all 17 categories, missed-function docs and the
multi-turn class docs shipped with bfcl-eval) and every user query, plus, when the directory exists,
ACEBench English data (``data_*.json``: JSON lines with ``question`` -- "user: ...\\nsystem: ..." turns,
or a plain task for the agent categories -- and a ``function`` list).

A sample is contaminated when
  * one of its tools has an eval function's name (compared case- and separator-insensitively, so
    ``get_fooBar`` and ``get_foo_bar`` collide)                                      -> "tool_name";
  * its last user query equals an eval query after normalisation (lowercase, words only) -> "query_exact";
  * at least ``overlap`` of its word 8-grams occur in eval queries                    -> "query_ngram".
"""
from __future__ import annotations

import json
import os
import re
from collections import Counter
from functools import lru_cache
from pathlib import Path

from core import paths
from core.schema import Sample

NGRAM = 8
OVERLAP = 0.5


def normalize(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def name_key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def ngrams(norm_text: str, n: int = NGRAM) -> set[tuple[str, ...]]:
    w = norm_text.split()
    return {tuple(w[i:i + n]) for i in range(len(w) - n + 1)}


def default_acebench_dir() -> Path | None:
    d = paths.home() / "acebench" / "data_en"
    return d if d.is_dir() else None


def _bfcl_index(names: set[str], queries: set[str]) -> None:
    from evals.bfcl_data import CATEGORIES, load_category
    from evals.bfcl_import import bfcl

    for cat in CATEGORIES:
        for e in load_category(cat):
            for doc in list(e.raw_functions) + list(e.functions):
                if isinstance(doc, dict) and "name" in doc:
                    names.add(doc["name"])
            for docs in (e.extra.get("missed_function") or {}).values():
                names.update(d["name"] for d in docs if isinstance(d, dict) and "name" in d)
            for turn in e.question:
                for msg in turn if isinstance(turn, list) else [turn]:
                    if isinstance(msg, dict) and msg.get("role") == "user" and msg.get("content"):
                        queries.add(str(msg["content"]))
    bfcl()
    import bfcl_eval

    doc_dir = Path(bfcl_eval.__file__).parent / "data" / "multi_turn_func_doc"
    for f in sorted(doc_dir.glob("*.json")) if doc_dir.is_dir() else []:
        for line in f.read_text(encoding="utf-8").splitlines():
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            if isinstance(doc, dict) and "name" in doc:
                names.add(doc["name"])


def _acebench_index(root: Path, names: set[str], queries: set[str]) -> None:
    for f in sorted(root.glob("*.json")):
        for line in f.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if not isinstance(row, dict):
                continue
            for doc in row.get("function") or []:
                if isinstance(doc, dict) and "name" in doc:
                    names.add(str(doc["name"]))
            q = row.get("question")
            if isinstance(q, str):
                turns = re.findall(r"(?:^|\n)user:\s*(.*?)(?=\n(?:user|system):|\Z)", q, re.S)
                queries.update(t.strip() for t in turns if t.strip())
                if not turns:
                    queries.add(q.strip())


@lru_cache(maxsize=4)
def _index(bfcl: bool, acebench: str | None) -> tuple[frozenset, frozenset, frozenset]:
    names: set[str] = set()
    queries: set[str] = set()
    if bfcl:
        _bfcl_index(names, queries)
    if acebench:
        _acebench_index(Path(acebench), names, queries)
    normed = {normalize(q) for q in queries}
    grams = set()
    for q in normed:
        grams |= ngrams(q)
    return (frozenset(name_key(n) for n in names if name_key(n)), frozenset(normed - {""}), frozenset(grams))


class Guard:
    """`Guard().check(sample)` -> reason or None. acebench_dir: a directory, None = the default under
    $LOOPTOOL_HOME (used when it exists), False = BFCL only."""

    def __init__(self, acebench_dir: str | Path | None | bool = None, bfcl: bool = True,
                 overlap: float = OVERLAP):
        if acebench_dir is None:
            acebench_dir = default_acebench_dir() or False
        ace = str(Path(acebench_dir).resolve()) if acebench_dir else None
        if ace and not os.path.isdir(ace):
            ace = None
        self.acebench_dir = ace
        self.names, self.queries, self.grams = _index(bfcl, ace)
        self.overlap = overlap

    def check(self, sample: Sample) -> str | None:
        for doc in sample.tools:
            if isinstance(doc, dict) and name_key(str(doc.get("name", ""))) in self.names:
                return "tool_name"
        last = next((m.content for m in reversed(sample.messages) if m.role == "user"), "")
        q = normalize(last)
        if q and q in self.queries:
            return "query_exact"
        grams = ngrams(q)
        if grams and sum(g in self.grams for g in grams) / len(grams) >= self.overlap:
            return "query_ngram"
        return None

    def drop_contaminated(self, samples: list[Sample]) -> tuple[list[Sample], dict[str, int]]:
        kept, dropped = [], Counter()
        for s in samples:
            reason = self.check(s)
            if reason:
                dropped[reason] += 1
            else:
                kept.append(s)
        return kept, dict(dropped)


def drop_contaminated(samples: list[Sample], guard: Guard | None = None) -> tuple[list[Sample], dict[str, int]]:
    return (guard or Guard()).drop_contaminated(samples)
