"""How a benchmark plugs into the loop: one small interface and a registry.

core/ never imports evals/. A benchmark is an object with the `Benchmark` shape below, named in the
``looptool.benchmarks`` entry-point group of pyproject.toml (``bfcl = "evals.bfcl_plugin:BENCHMARK"``);
`registry()` loads them by name. The loop uses a benchmark twice:

* ``evaluate(request)``: score one iteration's weights (the eval stage after every iteration, and the
  console's on-demand eval), returning the summary that is stored as the benchmark's own record;
* ``eval_texts(cfg)``: its function names and user queries, which the contamination guard keeps out of
  the seed data;
* ``check_config(cfg)`` (optional): its settings in the run config (categories, data folder), checked
  by `looptool config check` and before a run writes anything (`check_config` below, core.preflight);
* ``scored_unit(record_id)`` (optional): the unit its summary scores a record in, when that is more than
  the record itself (ACEBench's multi-turn files: a turn is scored with its dialogue); `looptool eval
  compare` (core/eval_compare.py) matches two evals unit by unit through `scored_unit_of` below.

Adding a third benchmark: implement these three methods in evals/<name>/ and add one entry-point line.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Protocol

from core.errors import UserError
from core.weights import Weights

ENTRY_POINTS = "looptool.benchmarks"


class BenchmarkUnavailable(UserError):
    """The benchmark's data cannot be had here (offline, no local copy); the message says how to get it.
    The loop's eval stage goes on without the benchmark and records why; on demand it is the answer."""


@dataclass
class EvalRequest:
    cfg: object  # the run's RunConfig (its model, eval and probe sections)
    weights: Weights
    subset: str | None = None  # categories; None = the run config's
    per_category: int | None = None  # None = the run config's
    # (done, total, tokens) after every record; tokens: generated so far in this eval (None if unknown)
    on_progress: Callable[..., None] | None = None
    checkpoint: Callable[[], None] | None = None  # the stage's pause/stop safe point, between records


@dataclass
class EvalTexts:
    """What seed data must not contain: function names and user queries of the evaluation sets."""
    names: set[str] = field(default_factory=set)
    queries: set[str] = field(default_factory=set)


class Benchmark(Protocol):
    name: str  # "bfcl", "acebench": the record's `benchmark` and the console's column prefix
    order: int  # the eval stage runs benchmarks by ascending order

    def in_loop(self, cfg) -> bool:
        """Whether the run's per-iteration eval includes this benchmark."""

    def evaluate(self, request: EvalRequest) -> dict:
        """The summary of one evaluation (eval_id, benchmark, scores, per_category, ...). Raises
        BenchmarkUnavailable before any model is loaded when the data cannot be had."""

    def eval_texts(self, cfg) -> EvalTexts:
        """Every function name and user query of the benchmark's data; BenchmarkUnavailable without it."""

    def check_config(self, cfg) -> None:
        """Optional. UserError naming the key (`eval.bfcl_categories: unknown category 'x'; ...`) when the
        run config's settings for this benchmark are wrong; loads no data and no model."""

    def scored_unit(self, record_id: str) -> str:
        """Optional. The id of the unit the summary scores this record in (correct when all its records
        are); without it every record is its own unit."""


@lru_cache(maxsize=1)
def registry() -> dict[str, Benchmark]:
    """The installed benchmarks by name, in evaluation order."""
    from importlib.metadata import entry_points

    found = [ep.load() for ep in entry_points(group=ENTRY_POINTS)]
    if not found:
        raise UserError(f"no benchmark is registered (entry-point group {ENTRY_POINTS!r}): install looptool "
                        "with `pip install -e .` (make does) so that its pyproject.toml entry points exist; a "
                        "stale looptool.egg-info in the checkout hides them (delete it)")
    return {b.name: b for b in sorted(found, key=lambda b: (b.order, b.name))}


def check_config(cfg) -> None:
    """Every registered benchmark's check of the run config (those without `check_config` have none)."""
    for benchmark in registry().values():
        check = getattr(benchmark, "check_config", None)
        if check is not None:
            check(cfg)


def get(name: str) -> Benchmark:
    known = registry()
    if name not in known:
        raise UserError(f"unknown benchmark {name!r}; choose from {', '.join(known)}")
    return known[name]


def _own_unit(record_id: str) -> str:
    return record_id


def scored_unit_of(label: str) -> Callable[[str], str]:
    """The `scored_unit` of the benchmark whose summaries say ``benchmark: label`` (its name, or the
    name and a version: "bfcl-v3"); each record is its own unit for a benchmark without one."""
    for name, benchmark in registry().items():
        if label == name or label.startswith(name + "-"):
            return getattr(benchmark, "scored_unit", None) or _own_unit
    return _own_unit
