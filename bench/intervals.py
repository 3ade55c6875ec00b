"""Interval maths for the benchmark reports: the product's own, from core/stats.py (one home), under the
names the benchmarks and their tests use: :func:`wilson`, :func:`wilson_from`,
:func:`mean_of_proportions`, :func:`newcombe_difference` (independent proportions) and
:func:`paired_difference` (the same units measured twice). See core/stats.py for the formulas and
references."""
from __future__ import annotations

from core.stats import (Z95, Estimate, mean_of_proportions, newcombe_difference, paired_difference,  # noqa: F401
                        wilson, wilson_from)
