"""bench/intervals.py against values computed by hand from the textbook formulas and against the worked
examples of Newcombe (1998), Table II, method 10."""
from __future__ import annotations

import pytest

from bench.intervals import Estimate, mean_of_proportions, newcombe_difference, wilson


def _r4(e: Estimate) -> tuple[float, float, float]:
    return round(e.value, 4), round(e.low, 4), round(e.high, 4)


def test_wilson_at_the_edges_and_the_middle():
    # 0/n: upper = z^2 / (n + z^2) = 3.8415 / 53.8415; n/n mirrors it; 25/50 is symmetric around 0.5:
    # half-width = z / (1 + z^2/n) * sqrt(0.25/n + z^2 / (4 n^2)) = 1.8201 * 0.073377 = 0.1336.
    assert _r4(wilson(0, 50)) == (0.0, 0.0, 0.0713)
    assert _r4(wilson(25, 50)) == (0.5, 0.3664, 0.6336)
    assert _r4(wilson(50, 50)) == (1.0, 0.9287, 1.0)


def test_wilson_refuses_impossible_counts():
    for correct, total in ((1, 0), (0, 0), (-1, 5), (6, 5)):
        with pytest.raises(ValueError):
            wilson(correct, total)


@pytest.mark.parametrize("a, b, expected", [
    ((56, 70), (48, 80), (0.2, 0.0524, 0.3339)),
    ((9, 10), (3, 10), (0.6, 0.1705, 0.8090)),
    ((5, 56), (0, 29), (0.0893, -0.0381, 0.1926)),
])
def test_newcombe_difference_matches_the_published_examples(a, b, expected):
    assert _r4(newcombe_difference(wilson(*a), wilson(*b))) == expected


def test_newcombe_difference_of_equal_results_is_centred_on_zero():
    d = newcombe_difference(wilson(20, 50), wilson(20, 50))
    assert d.value == 0 and d.low == pytest.approx(-d.high) and d.low < -0.15


def test_mean_of_equal_sized_categories_is_the_pooled_wilson_interval():
    assert _r4(mean_of_proportions([(10, 50), (20, 50)])) == _r4(wilson(30, 100))
    assert _r4(mean_of_proportions([(0, 50), (0, 50)])) == _r4(wilson(0, 100))


def test_mean_of_unequal_categories_uses_the_effective_sample_size():
    # m = (0.5 + 0.4) / 2 = 0.45; Var = (0.25/20 + 0.24/50) / 4 = 0.004325; n_eff = 0.2475 / 0.004325
    # = 57.23 (< 70 pooled); Wilson(0.45, 57.23) = 0.3283 .. 0.5780.
    assert _r4(mean_of_proportions([(10, 20), (20, 50)])) == (0.45, 0.3283, 0.578)


def test_mean_of_proportions_refuses_empty_input():
    with pytest.raises(ValueError):
        mean_of_proportions([])
    with pytest.raises(ValueError):
        mean_of_proportions([(1, 0)])


def test_as_percent():
    assert wilson(25, 50).as_percent() == "50.0 % [36.6, 63.4]"
    assert newcombe_difference(wilson(5, 56), wilson(0, 29)).as_percent(signed=True) == "+8.9 points [-3.8, +19.3]"
