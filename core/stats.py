"""Interval maths for accuracies and their differences: pure functions, the standard library only.

* :func:`wilson` -- the Wilson score interval of one proportion (Wilson 1927), which, unlike the normal
  approximation, stays inside [0, 1] and is not degenerate at 0/n or n/n.
* :func:`mean_of_proportions` -- a mean of per-category accuracies (the eval's metric) with a Wilson
  interval at the effective sample size (Korn & Graubard 1998): n_eff = m(1 - m) / Var(m), where
  Var(m) = sum(p_i (1 - p_i) / n_i) / K^2 for K independent categories, capped at the pooled count N
  (and N when Var(m) is 0). With equal category sizes this is exactly the pooled Wilson interval.
* :func:`newcombe_difference` -- the difference of two INDEPENDENT proportions with Newcombe's hybrid
  score interval (Newcombe 1998a, method 10), built from the two Wilson intervals:
  ``d - sqrt((p1 - l1)^2 + (u2 - p2)^2)`` to ``d + sqrt((u1 - p1)^2 + (p2 - l2)^2)``.
* :func:`paired_difference` -- the difference of two proportions measured on the SAME units (two evals
  of the same entries), Newcombe's method 10 for paired data (Newcombe 1998b): the same square-and-add
  of the two marginals' Wilson intervals, less twice the covariance term phi * (one side) * (other side),
  where phi is the correlation of the 2x2 table (see the function). Two evals of one model family agree
  on most entries, so phi is large and this interval is much narrower than the independent one.
* :func:`mean_difference` -- the difference of two means of per-category accuracies (categories
  independent), from each category's difference and interval by the MOVER square-and-add of Zou &
  Donner (2008): ``D - sqrt(sum(((d_k - l_k) / K)^2))`` to ``D + sqrt(sum(((u_k - d_k) / K)^2))``.

References: E. B. Wilson, JASA 22 (1927) 209-212; R. G. Newcombe, Statistics in Medicine 17 (1998)
873-890 (1998a, independent) and 2635-2650 (1998b, paired); E. L. Korn, B. I. Graubard, Survey
Methodology 24 (1998) 193-201; G. Y. Zou, A. Donner, Statistics in Medicine 27 (2008) 1693-1702.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

Z95 = 1.959963984540054  # the 97.5th percentile of the standard normal: two-sided 95 %


@dataclass(frozen=True)
class Estimate:
    """A proportion (or a difference of two) with its interval, all as fractions."""

    value: float
    low: float
    high: float

    def as_percent(self, digits: int = 1, signed: bool = False) -> str:
        """``"36.0 % [24.1, 49.9]"``; ``signed``, for differences: ``"+4.0 points [-5.2, +13.1]"``."""
        fmt = f"{{:{'+' if signed else ''}.{digits}f}}".format
        unit = "points" if signed else "%"
        return f"{fmt(100 * self.value)} {unit} [{fmt(100 * self.low)}, {fmt(100 * self.high)}]"

    def as_dict(self) -> dict:
        return {"value": self.value, "low": self.low, "high": self.high}


def wilson_from(p: float, n: float, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval around an estimated proportion ``p`` from ``n`` (possibly effective,
    non-integer) observations."""
    if n <= 0:
        raise ValueError("an interval needs at least one observation")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"proportion {p} outside [0, 1]")
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def wilson(correct: int, total: int, z: float = Z95) -> Estimate:
    """``correct`` of ``total`` with its Wilson score interval (95 % by default)."""
    if not 0 <= correct <= total:
        raise ValueError(f"{correct} correct of {total}")
    if total == 0:
        raise ValueError("an interval needs at least one observation")
    low, high = wilson_from(correct / total, total, z)
    return Estimate(correct / total, low, high)


def mean_of_proportions(counts: list[tuple[int, int]], z: float = Z95) -> Estimate:
    """The mean of per-category accuracies ``[(correct, total), ...]`` with a Wilson interval at the
    effective sample size (see the module docstring); categories are independent samples."""
    if not counts:
        raise ValueError("no categories")
    for correct, total in counts:
        if total <= 0 or not 0 <= correct <= total:
            raise ValueError(f"{correct} correct of {total}")
    k = len(counts)
    props = [c / n for c, n in counts]
    mean = sum(props) / k
    var = sum(p * (1 - p) / n for p, (_, n) in zip(props, counts)) / (k * k)
    pooled = sum(n for _, n in counts)
    n_eff = pooled if var == 0 else min(pooled, mean * (1 - mean) / var)
    low, high = wilson_from(mean, n_eff, z)
    return Estimate(mean, low, high)


def newcombe_difference(a: Estimate, b: Estimate) -> Estimate:
    """``a - b`` for two independent proportions, each given with its Wilson interval (Newcombe's
    method 10). On two evaluations of the *same* entries the positive correlation between them makes
    this interval conservative: use :func:`paired_difference` there."""
    return _square_and_add(a, b, 0.0)


def _square_and_add(a: Estimate, b: Estimate, phi: float) -> Estimate:
    """``a - b`` from the two intervals, with correlation ``phi`` between the two estimates (0: independent)."""
    d = a.value - b.value
    down_a, up_b = a.value - a.low, b.high - b.value
    up_a, down_b = a.high - a.value, b.value - b.low
    # max(0, ...): the radicand is a sum of squares less a cross term with |phi| <= 1, so it is >= 0 but
    # for rounding when both sides are ~0 (a 0/n or n/n marginal)
    low = d - math.sqrt(max(0.0, down_a ** 2 - 2 * phi * down_a * up_b + up_b ** 2))
    high = d + math.sqrt(max(0.0, up_a ** 2 - 2 * phi * up_a * down_b + down_b ** 2))
    return Estimate(d, max(-1.0, low), min(1.0, high))


def paired_phi(both: int, first_only: int, second_only: int, neither: int) -> float:
    """The correlation used by Newcombe's paired method 10 for the 2x2 table of paired outcomes
    (e = both, f = first only, g = second only, h = neither, n = e + f + g + h): with A = eh - fg and
    the four margins' product M, phi = (A - n/2) / sqrt(M) when A > n/2, 0 when 0 <= A <= n/2 (the
    continuity correction of a positive association), A / sqrt(M) when A < 0, and 0 when any margin is
    empty (the correlation is undefined; the interval is then the independent one)."""
    n = both + first_only + second_only + neither
    margins = ((both + first_only) * (second_only + neither) * (both + second_only) * (first_only + neither))
    if margins == 0:
        return 0.0
    a = both * neither - first_only * second_only
    if a > n / 2:
        return (a - n / 2) / math.sqrt(margins)
    if a >= 0:
        return 0.0
    return a / math.sqrt(margins)


def paired_difference(both: int, first_only: int, second_only: int, neither: int, z: float = Z95) -> Estimate:
    """p1 - p2 for two outcomes measured on the same n units, with Newcombe's (1998b) method 10 interval.

    The table: ``both`` units succeed under both, ``first_only`` under the first only, ``second_only``
    under the second only, ``neither`` under neither; p1 = (both + first_only) / n, p2 = (both +
    second_only) / n, so p1 - p2 = (first_only - second_only) / n. The limits are those of
    :func:`newcombe_difference` on the two marginals' Wilson intervals with the cross term
    ``- 2 phi (p1 - l1)(u2 - p2)`` (lower) and ``- 2 phi (u1 - p1)(p2 - l2)`` (upper); phi is
    :func:`paired_phi`."""
    counts = (both, first_only, second_only, neither)
    if any(not isinstance(c, int) or c < 0 for c in counts):
        raise ValueError(f"paired counts must be non-negative integers, got {counts}")
    n = sum(counts)
    if n == 0:
        raise ValueError("an interval needs at least one observation")
    first, second = wilson(both + first_only, n, z), wilson(both + second_only, n, z)
    return _square_and_add(first, second, paired_phi(*counts))


def mean_difference(differences: list[Estimate]) -> Estimate:
    """The difference of two means over K independent categories, from each category's difference and
    interval (MOVER, Zou & Donner 2008; see the module docstring)."""
    if not differences:
        raise ValueError("no categories")
    k = len(differences)
    d = sum(e.value for e in differences) / k
    low = d - math.sqrt(sum(((e.value - e.low) / k) ** 2 for e in differences))
    high = d + math.sqrt(sum(((e.high - e.value) / k) ** 2 for e in differences))
    return Estimate(d, max(-1.0, low), min(1.0, high))
