"""The ETA and tokens/s the console shows beside a stage's progress bar (core/eta.py), on reports shaped
like the eval's: records land in bursts of a chunk, each after the whole chunk was generated."""
from __future__ import annotations

import pytest

from core.eta import ALPHA, MIN_RECORDS, StageEta


def burst(eta: StageEta, stage: str, start: int, n: int, total: int, at: float, tokens: int | None = None):
    for k in range(1, n + 1):  # a chunk's records within a few milliseconds
        eta.progress(stage, start + k, total, at + k * 1e-4, tokens=tokens)


def test_hidden_until_enough_records_then_not_hours_after_the_first_burst():
    eta = StageEta()
    eta.progress("eval", 0, 200, now=0.0)  # the stage's first report: its model is loaded
    assert eta.eta(30.0) is None
    eta.progress("eval", 1, 200, now=60.0)  # the first record of the first chunk
    # the estimate this replaces read (200 - 1) * 60 s = 3:19:00 here
    assert eta.eta(60.0) is None
    burst(eta, "eval", 1, 31, 200, 60.0)
    left = eta.eta(60.5)
    assert left == pytest.approx(168 * 60.0 / 32, rel=0.01)  # ~5 min: 32 records a minute


def test_counts_down_between_bursts_and_moves_smoothly_after_one():
    eta = StageEta()
    eta.progress("eval", 0, 200, now=0.0)
    burst(eta, "eval", 0, 32, 200, 60.0)
    first = eta.eta(60.0)
    later = eta.eta(70.0)  # no record in between: it counts down
    assert later < first
    raw = (200 - 32) * 60.0 / 32
    counted = first - 10.0
    assert later == pytest.approx(counted + ALPHA * (raw - counted), abs=0.2)
    burst(eta, "eval", 32, 32, 200, 80.0)  # a faster chunk: the shown ETA moves ALPHA of the way
    shown_before = later - 10.0
    raw_now = (200 - 64) * 80.0 / 64
    assert eta.eta(80.0) == pytest.approx(shown_before + ALPHA * (raw_now - shown_before), abs=0.2)


def test_a_new_pass_and_another_stage_start_over():
    eta = StageEta()
    eta.progress("probe", 0, 10, now=0.0)
    burst(eta, "probe", 0, 8, 10, 10.0)
    assert eta.eta(10.0) is not None
    eta.progress("probe", 0, 10, now=20.0)  # fewer done than before: the next iteration's probe
    assert eta.eta(25.0) is None
    eta.progress("eval", 0, 50, now=30.0)
    burst(eta, "eval", 0, MIN_RECORDS - 1, 50, 40.0)
    assert eta.eta(41.0) is None
    eta.progress("eval", MIN_RECORDS, 50, now=42.0)
    assert eta.eta(43.0) == pytest.approx((50 - MIN_RECORDS) * 12.0 / MIN_RECORDS, rel=0.01)


def test_tokens_per_second_from_the_stage_cumulative_count():
    eta = StageEta()
    eta.progress("eval", 0, 100, now=0.0, tokens=0)
    assert eta.tok_s() is None
    eta.progress("eval", 32, 100, now=40.0, tokens=2000)
    assert eta.tok_s() == pytest.approx(50.0)
    eta.progress("train", 1, 30, now=50.0)  # a stage that reports no tokens shows none
    assert eta.tok_s() is None
