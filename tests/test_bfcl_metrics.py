"""The BFCL-v3 Overall formula on a hand-computed example."""
from __future__ import annotations

import pytest

from evals.bfcl_data import CATEGORIES, full_sizes, parse_categories, select
from evals.bfcl_metrics import v3_scores
from core.errors import UserError

SIZES = {"simple_python": 400, "simple_java": 100, "simple_javascript": 50, "multiple": 200, "parallel": 200,
         "parallel_multiple": 200, "irrelevance": 240, "live_simple": 258, "live_multiple": 1053,
         "live_parallel": 16, "live_parallel_multiple": 24, "live_irrelevance": 884, "live_relevance": 16,
         "multi_turn_base": 200, "multi_turn_miss_func": 200, "multi_turn_miss_param": 200,
         "multi_turn_long_context": 200}


def test_shipped_sizes_total_4441():
    assert full_sizes() == SIZES
    assert sum(SIZES.values()) == 4441


def test_v3_formula_by_hand():
    acc = {"simple_python": 0.9, "simple_java": 0.6, "simple_javascript": 0.3,  # simple mean 0.6
           "multiple": 0.8, "parallel": 0.7, "parallel_multiple": 0.5, "irrelevance": 0.4,
           "live_simple": 0.5, "live_multiple": 0.5, "live_parallel": 0.5, "live_parallel_multiple": 0.5,
           "live_irrelevance": 1.0, "live_relevance": 0.0,
           "multi_turn_base": 0.4, "multi_turn_miss_func": 0.2, "multi_turn_miss_param": 0.1,
           "multi_turn_long_context": 0.3}
    s = v3_scores(acc, SIZES)
    # non-live AST = mean(0.6, 0.8, 0.7, 0.5) = 0.65; non-live overall adds irrelevance: 3.0/5 = 0.6
    assert s["non_live_ast"] == pytest.approx(0.65)
    assert s["non_live"] == pytest.approx(0.6)
    # live: (0.5*(258+1053+16+24) + 1.0*884 + 0*16) / 2251 = (675.5 + 884) / 2251
    assert s["live"] == pytest.approx(1559.5 / 2251)
    assert s["live_ast"] == pytest.approx(0.5)
    assert s["multi_turn"] == pytest.approx(0.25)
    assert s["overall"] == pytest.approx((0.6 + 1559.5 / 2251 + 0.25) / 3)
    assert s["irrelevance"] == pytest.approx(0.7)
    assert s["relevance"] == 0.0


def test_unevaluated_categories_count_zero():
    s = v3_scores({"simple_python": 1.0}, SIZES)
    assert s["non_live_ast"] == pytest.approx(1 / 3 / 4)
    assert s["overall"] == pytest.approx((1 / 3 / 5) / 3)


def test_category_parsing_and_selection():
    assert parse_categories("non_live") == list(CATEGORIES[:7])
    assert parse_categories("simple,java") == ["simple_python", "simple_java"]
    with pytest.raises(UserError, match="unknown category 'nope'"):
        parse_categories("simple_python,nope")
    a = [e.id for e in select(["live_multiple"], 5)]
    b = [e.id for e in select(["live_multiple"], 10)]
    assert a == [e.id for e in select(["live_multiple"], 5)]  # stable
    assert set(a) <= set(b)  # nested
    assert [e.id for e in select(["multiple"], ids=["multiple_3"])] == ["multiple_3"]
    with pytest.raises(UserError, match="multiple_9999"):
        select(["multiple"], ids=["multiple_9999"])
