"""The cpu-demo presets' held-out evaluation data never overlaps their training data.

Held-out: the BFCL subset selected exactly as the eval stage selects it (core/worker.py _eval ->
evals.bfcl_data.select with the preset's bfcl_categories, bfcl_per_category and holdout_seed) and the
ACEBench subset as evals/acebench/loop.py selects it (evals.acebench.data.select with acebench_categories,
acebench_per_category and holdout_seed). Training: a real seed pool built from the preset's [seeds]
(procedural, no model), which every dataset D_j draws its seed and fresh samples from. Queries are
compared as the contamination guard normalises them (core.seeds.contamination.normalize)."""
from __future__ import annotations

from pathlib import Path

import pytest

from core import config
from core.schema import Sample, load_samples
from core.seeds.contamination import name_key, normalize
from core.seeds.pool import build_pool
from evals import bfcl_data
from evals.acebench import data as ace_data

ACEBENCH = Path(__file__).parents[1].parent / "shared" / "acebench" / "data_en"
PRESETS = ("cpu-demo", "cpu-demo-static")


def _user_texts(messages) -> set[str]:
    return {normalize(str(m["content"])) for m in messages
            if isinstance(m, dict) and m.get("role") == "user" and m.get("content")} - {""}


def _pool_queries(pool: list[Sample]) -> set[str]:
    return set().union(*(_user_texts([m.model_dump() for m in s.messages]) for s in pool))


def _pool_tools(pool: list[Sample]) -> set[str]:
    return {name_key(str(t.get("name", ""))) for s in pool for t in s.tools}


@pytest.fixture(scope="module", params=PRESETS)
def preset_and_pool(request, tmp_path_factory):
    cfg = config.load(request.param)
    path = tmp_path_factory.mktemp("pool") / "pool.jsonl"
    build_pool(cfg, path)
    pool = load_samples(path)
    assert len(pool) == cfg.seeds.pool_size
    return cfg, pool


def test_bfcl_heldout_shares_no_ids_queries_or_tool_names_with_the_seed_pool(preset_and_pool):
    cfg, pool = preset_and_pool
    e = cfg.eval
    cats = bfcl_data.parse_categories(e.bfcl_categories)
    heldout = bfcl_data.select(cats, e.bfcl_per_category, None, e.holdout_seed)
    assert e.bfcl_per_category == 50 and len(heldout) == 50 * len(cats)

    assert not {x.id for x in heldout} & {s.id for s in pool}
    queries = set()
    for x in heldout:
        for turn in x.question:
            queries |= _user_texts(turn if isinstance(turn, list) else [turn])
    pool_queries = _pool_queries(pool)
    assert queries and pool_queries and not queries & pool_queries
    tools = {name_key(f["name"]) for x in heldout for f in x.functions if "name" in f}
    assert tools and not tools & _pool_tools(pool)


def test_acebench_subset_shares_no_ids_queries_or_tool_names_with_the_seed_pool(preset_and_pool):
    cfg, pool = preset_and_pool
    e = cfg.eval
    subset = ace_data.select(ACEBENCH, ace_data.parse_categories(e.acebench_categories), e.acebench_per_category,
                             None, e.holdout_seed)
    assert subset and not {x.id for x in subset} & {s.id for s in pool}
    # ACEBench questions are whole dialogues ("user: ...\nsystem: ..."): no pool query may occur in one
    # as a run of whole words.
    dialogues = [f" {normalize(x.question)} " for x in subset]
    assert not [q for q in _pool_queries(pool) if any(f" {q} " in d for d in dialogues)]
    tools = {name_key(f["name"]) for x in subset for f in x.functions if isinstance(f, dict) and "name" in f}
    assert tools and not tools & _pool_tools(pool)
