"""Interval maths for the benchmark reports: pure functions, the standard library only.

* :func:`wilson` -- the Wilson score interval of one proportion (Wilson 1927), which, unlike the normal
  approximation, stays inside [0, 1] and is not degenerate at 0/n or n/n.
* :func:`mean_of_proportions` -- a mean of per-category accuracies (the eval's metric) with a Wilson
  interval at the effective sample size (Korn & Graubard 1998): n_eff = m(1 - m) / Var(m), where
  Var(m) = sum(p_i (1 - p_i) / n_i) / K^2 for K independent categories, capped at the pooled count N
  (and N when Var(m) is 0). With equal category sizes this is exactly the pooled Wilson interval.
* :func:`newcombe_difference` -- the difference of two independent proportions with Newcombe's hybrid
  score interval (Newcombe 1998, method 10), built from the two Wilson intervals:
  ``d - sqrt((p1 - l1)^2 + (u2 - p2)^2)`` to ``d + sqrt((u1 - p1)^2 + (p2 - l2)^2)``.

References: E. B. Wilson, JASA 22 (1927) 209-212; R. G. Newcombe, Statistics in Medicine 17 (1998)
873-890 and 857-872; E. L. Korn, B. I. Graubard, Survey Methodology 24 (1998) 193-201.
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
    this interval conservative (wider than a paired interval would be)."""
    d = a.value - b.value
    low = d - math.sqrt((a.value - a.low) ** 2 + (b.high - b.value) ** 2)
    high = d + math.sqrt((a.high - a.value) ** 2 + (b.value - b.low) ** 2)
    return Estimate(d, max(-1.0, low), min(1.0, high))
