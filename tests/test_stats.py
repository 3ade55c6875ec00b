"""core/stats.py: the paired difference (Newcombe's method 10 for paired data) against published worked
examples and against what it must reduce to; the MOVER mean of differences. The Wilson and independent
Newcombe intervals are pinned to their published examples in test_bench_intervals.py (same functions)."""
from __future__ import annotations

import itertools

import pytest

from core.stats import (Estimate, mean_difference, newcombe_difference, paired_difference, paired_phi,
                        wilson)


def _r4(e: Estimate) -> tuple[float, float, float]:
    return round(e.value, 4), round(e.low, 4), round(e.high, 4)


@pytest.mark.parametrize("table, expected", [
    # Newcombe (1998), Statistics in Medicine 17:2635-2650, Table III, first example: (e, f, g, h) =
    # (36, 12, 2, 0), theta = 0.2, method 10: 0.0569 to 0.3404 (as transcribed from the paper's table in
    # a public fixture file; the paper itself was not available here).
    ((36, 12, 2, 0), (0.2, 0.0569, 0.3404)),
    # Fagerland, Lydersen & Laake, Statistical Analysis of Contingency Tables (2017), chapter 8, the
    # paired 2x2 table of Cavo et al. (2012), rows (59, 6), (16, 80): Newcombe square-and-add
    # estimate -0.0621, 95 % CI -0.1186 to -0.0046 (the values the R package contingencytables, by the
    # book's authors, pins in its tests).
    ((59, 6, 16, 80), (-0.0621, -0.1186, -0.0046)),
])
def test_paired_difference_matches_published_examples(table, expected):
    assert _r4(paired_difference(*table)) == expected


def test_the_correlation_is_corrected_and_zero_when_a_margin_is_empty():
    assert paired_phi(36, 12, 2, 0) == pytest.approx(-24 / (48 * 2 * 38 * 12) ** 0.5)  # A < 0: as it is
    assert paired_phi(10, 2, 2, 1) == 0.0  # 0 <= A = 6 <= n/2 = 7.5: the continuity correction gives 0
    assert paired_phi(20, 2, 2, 20) == pytest.approx((396 - 22) / (22 * 22 * 22 * 22) ** 0.5)
    assert paired_phi(54, 0, 0, 0) == paired_phi(0, 30, 0, 0) == 0.0  # a margin is empty


def test_without_correlation_it_is_the_independent_interval_of_the_marginals():
    # phi = 0 (here A = 6 <= n/2): exactly Newcombe's independent method 10 on the two marginals
    both, first, second, neither = 10, 2, 2, 1
    n = both + first + second + neither
    assert paired_difference(both, first, second, neither) == newcombe_difference(
        wilson(both + first, n), wilson(both + second, n))


def test_positive_correlation_narrows_the_interval():
    # two evals agreeing on most entries (phi ~ 0.7): the paired interval is well inside the independent one
    paired = paired_difference(59, 6, 16, 80)
    independent = newcombe_difference(wilson(65, 161), wilson(75, 161))
    assert independent.low < paired.low < paired.value < paired.high < independent.high
    assert paired.high - paired.low < 0.6 * (independent.high - independent.low)


def test_identical_results_and_the_extremes():
    same = paired_difference(30, 0, 0, 20)  # every entry the same under both
    assert same.value == 0 and same.low == pytest.approx(-same.high) and -0.1 < same.low < 0
    every_flip = paired_difference(0, 30, 0, 0)  # all right under the first only: p1 - p2 = 1
    assert (every_flip.value, every_flip.high) == (1.0, 1.0) and 0.8 < every_flip.low < 1.0
    mirrored = paired_difference(0, 0, 30, 0)
    assert _r4(mirrored) == (-1.0, -1.0, -round(every_flip.low, 4))


def test_swapping_the_two_outcomes_mirrors_the_interval():
    for table in ((36, 12, 2, 0), (59, 6, 16, 80), (3, 7, 1, 9)):
        e, f, g, h = table
        fwd, back = paired_difference(e, f, g, h), paired_difference(e, g, f, h)
        assert (back.value, back.low, back.high) == pytest.approx((-fwd.value, -fwd.high, -fwd.low))


def test_every_small_table_gives_an_ordered_interval_inside_minus_one_one():
    for table in itertools.product(range(4), repeat=4):
        if not sum(table):
            continue
        d = paired_difference(*table)
        assert -1.0 <= d.low <= d.value <= d.high <= 1.0, table
        assert d.value == pytest.approx((table[1] - table[2]) / sum(table))


def test_paired_difference_refuses_impossible_tables():
    for table in ((0, 0, 0, 0), (-1, 2, 3, 4), (1.5, 2, 3, 4)):
        with pytest.raises(ValueError):
            paired_difference(*table)


def test_mean_difference_of_one_category_is_that_category():
    d = paired_difference(36, 12, 2, 0)
    assert mean_difference([d]) == d


def test_mean_difference_adds_the_category_widths_in_quadrature():
    # two categories with the same difference and interval: the mean keeps the point and the interval
    # shrinks by sqrt(2) (each side: sqrt(2 * (w / 2)^2) = w / sqrt(2))
    d = paired_difference(36, 12, 2, 0)
    m = mean_difference([d, d])
    assert m.value == pytest.approx(d.value)
    assert d.value - m.low == pytest.approx((d.value - d.low) / 2 ** 0.5)
    assert m.high - d.value == pytest.approx((d.high - d.value) / 2 ** 0.5)
    with pytest.raises(ValueError):
        mean_difference([])
