"""Contamination guard: keep seed data away from the evaluation sets.

The index holds every function name and user query each registered benchmark reports
(core.benchmarks: BFCL-v3's 17 categories with its missed-function and multi-turn class docs; ACEBench's
English data when it can be had here, see evals/acebench/plugin.py). `guard_for(cfg)` builds it the way
every run does and says which benchmarks it covers.

A sample is contaminated when
  * one of its tools has an eval function's name (compared case- and separator-insensitively, so
    ``get_fooBar`` and ``get_foo_bar`` collide)                                      -> "tool_name";
  * its last user query equals an eval query after normalisation (lowercase, words only) -> "query_exact";
  * at least ``overlap`` of its word 8-grams occur in eval queries                    -> "query_ngram".
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

from core.benchmarks import EvalTexts
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


def guard_for(cfg) -> tuple[Guard, dict[str, str]]:
    """The guard a run builds: the texts of every registered benchmark (core.benchmarks), and for each
    benchmark "guarded" or why it is not (its data cannot be had here)."""
    from core.benchmarks import BenchmarkUnavailable, registry

    texts, coverage = [], {}
    for name, bench in registry().items():
        try:
            texts.append(bench.eval_texts(cfg))
        except BenchmarkUnavailable as e:
            coverage[name] = f"not guarded: {e}"
            continue
        coverage[name] = "guarded"
    return Guard(texts), coverage


class Guard:
    """`Guard(texts).check(sample)` -> reason or None; texts: core.benchmarks.EvalTexts of each benchmark."""

    def __init__(self, texts: Iterable[EvalTexts], overlap: float = OVERLAP):
        names: set[str] = set()
        queries: set[str] = set()
        for t in texts:
            names |= {name_key(n) for n in t.names}
            queries |= {normalize(q) for q in t.queries}
        self.names = frozenset(names - {""})
        self.queries = frozenset(queries - {""})
        self.grams = frozenset(g for q in self.queries for g in ngrams(q))
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
