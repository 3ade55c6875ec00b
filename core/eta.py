"""A stage's remaining time and generation rate, as the console shows them beside its progress bar.

Stages report progress in bursts: the eval writes its records a chunk (32 on the cpu-demo) at a time
after generating the whole chunk, the probe a batch at a time. An estimate taken at a progress report
from the records done so far reads hours after the first record of a stage that takes minutes (the
first burst's first record alone gives a rate of 1 record per chunk time), and it stayed on screen until
the next burst. So:

* the rate is records done since the stage's first report divided by the time from it to the latest
  record (the first report comes once the stage's model is loaded, so loading is not counted);
* the ETA stays hidden until MIN_RECORDS records are done and MIN_SECONDS have passed since the first
  report;
* the shown ETA counts down with the wall clock between bursts (it is recomputed whenever the status
  goes out), and each estimate pulls it ALPHA of the way towards itself, so a burst moves it smoothly
  instead of making it jump.

Tokens per second is generated tokens since the first report over the time up to the latest report
that carried a token count (the stage's cumulative `tokens` in its progress), for the stages that
generate (eval, probe).
"""
from __future__ import annotations

from dataclasses import dataclass

MIN_RECORDS = 5
MIN_SECONDS = 1.0
ALPHA = 0.3


@dataclass
class _Pass:
    t0: float
    done0: int
    done: int
    total: int
    done_at: float = 0.0  # when the latest record landed
    tokens0: int | None = None
    tokens: int | None = None
    tokens_at: float | None = None
    shown: float | None = None  # the ETA last shown
    shown_at: float | None = None


class StageEta:
    """ETA and tokens/s of the stage now running; `progress()` at every report, `eta()`/`tok_s()` when
    the status is published. A report with fewer records done than before starts a new pass (the
    stage's next iteration)."""

    def __init__(self, min_records: int = MIN_RECORDS, min_seconds: float = MIN_SECONDS,
                 alpha: float = ALPHA):
        self.min_records, self.min_seconds, self.alpha = min_records, min_seconds, alpha
        self._stage: str | None = None
        self._pass: _Pass | None = None

    def reset(self) -> None:
        self._stage, self._pass = None, None

    def progress(self, stage: str, done: int, total: int, now: float, tokens: int | None = None) -> None:
        p = self._pass
        if p is None or stage != self._stage or done < p.done:
            self._stage = stage
            self._pass = p = _Pass(t0=now, done0=done, done=done, total=total, done_at=now)
        if done > p.done:
            p.done_at = now
        p.done, p.total = done, total
        if tokens is not None:
            if p.tokens0 is None or tokens < (p.tokens or 0):
                p.tokens0 = tokens
            p.tokens, p.tokens_at = tokens, now

    def eta(self, now: float) -> float | None:
        """Seconds left, smoothed; None while too little is known (or nothing is left to estimate)."""
        p = self._pass
        if p is None or p.total <= 0 or p.done > p.total:
            return None
        finished, elapsed = p.done - p.done0, p.done_at - p.t0
        if finished < self.min_records or elapsed < self.min_seconds:
            return None
        raw = (p.total - p.done) * elapsed / finished
        if p.shown is None or p.shown_at is None:
            shown = raw
        else:
            counted_down = max(0.0, p.shown - (now - p.shown_at))
            shown = counted_down + self.alpha * (raw - counted_down)
        p.shown, p.shown_at = shown, now
        return round(shown, 1)

    def tok_s(self) -> float | None:
        p = self._pass
        if p is None or p.tokens is None or p.tokens0 is None or p.tokens_at is None:
            return None
        seconds = p.tokens_at - p.t0
        if seconds <= 0 or p.tokens <= p.tokens0:
            return None
        return round((p.tokens - p.tokens0) / seconds, 1)
