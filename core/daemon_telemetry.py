"""The core daemon's outgoing side: engine callbacks become status, metrics and events on the bus.

    status            retained busproto.Status: engine state, progress with ETA; at most 2 Hz, and every
                      `heartbeat_s` even when nothing changed (the console's stale check); a change of
                      engine state goes out at once
    metrics/<stream>  throughput (tok/s, samples/s per stage), train (loss, reward, lr, ...), accuracy
                      (each eval, QoS 1), hardware (core.hardware); coalesced to <= 2 Hz per stream
    events            QoS 1, as the engine raises them, plus eval_done / dataset_composition

Everything goes through BusClient.publish_nowait: telemetry never blocks a stage, and an error in it
is logged, never raised into the engine.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable

from core import busproto as bp
from core.eta import StageEta

log = logging.getLogger("looptool.daemon")

FLUSH_S = 0.5  # <= 2 Hz per stream and for status
TRAIN_KEYS = ("step", "max_steps", "loss", "reward_mean", "reward_std", "lr", "grad_norm", "epoch")
EVAL_BRIEF = ("eval_id", "benchmark", "run_id", "iteration", "on_demand", "started_at", "wall_s", "model",
              "adapter", "mode", "scores", "per_category", "complete")
DONE_STATES = ("stopped", "finished", "failed")


def eval_brief(doc: dict) -> dict:
    """An eval summary without its bulky fields (records path, config): what the bus carries."""
    return {k: doc[k] for k in EVAL_BRIEF if doc.get(k) is not None}


class Telemetry:
    """`stopping()` says whether a stop was asked: the status then reads `stopping` until the run is done."""

    def __init__(self, engine, bus, core_id: str, *, stopping: Callable[[], bool], heartbeat_s: float = 5.0,
                 hardware_s: float = 2.0, hardware=None):
        self.engine, self.bus, self.core_id = engine, bus, core_id
        self.stopping = stopping
        self.heartbeat_s, self.hardware_s = heartbeat_s, hardware_s
        self.hardware = hardware  # a core.hardware.HardwareSampler; made by hardware_loop() if None
        self._pending: dict[str, dict] = {}  # stream -> latest merged fields, flushed at <= 2 Hz
        self._status_dirty = True
        self._status_at = 0.0
        self._published_state: str | None = None  # the engine state of the last status published
        self._seq = 0
        self._stage_rates: dict[str, tuple[float, int]] = {}  # stage -> (time, done) of the last samples/s
        self._eta = StageEta()

    def topic(self, kind: str, *rest: str) -> str:
        return bp.topic(self.core_id, kind, *rest)

    # -- engine callbacks ------------------------------------------------------------------------

    def on_engine(self, kind: str, data: dict) -> None:
        try:
            if kind == "status":
                # a state change (paused -> evaluating -> paused can last under the 2 Hz window) goes
                # out at once; progress-only changes wait for the next flush
                if self.engine.state.get("state") != self._published_state:
                    self.publish_status()
                else:
                    self.mark_status()
            elif kind == "progress":
                self._on_progress(data)
            elif kind == "metrics":
                self._on_metrics(data)
            elif kind == "event":
                self._on_event(data)
        except Exception:  # telemetry must never break the engine
            log.exception("engine %s telemetry", kind)

    def _on_progress(self, data: dict) -> None:
        """The ETA and tokens/s beside the progress bar (core/eta.py); samples/s since the last report as
        throughput."""
        stage, done, total = str(data.get("stage")), int(data.get("done") or 0), int(data.get("total") or 0)
        now = time.monotonic()
        tokens = data.get("tokens")
        self._eta.progress(stage, done, total, now, tokens=tokens if isinstance(tokens, int) else None)
        tl, dl = self._stage_rates.get(stage, (now, done))
        if done < dl:  # a new pass of the stage (another iteration)
            tl, dl = now, done
        if now - tl >= FLUSH_S and done > dl:
            self._coalesce_metric("throughput", {"stage": stage, "iteration": data.get("iteration"),
                                                 "samples_s": round((done - dl) / (now - tl), 3)})
            tl, dl = now, done
        self._stage_rates[stage] = (tl, dl)
        self.mark_status()

    def _on_metrics(self, data: dict) -> None:
        stage, iteration = data.get("stage"), data.get("iteration")
        head = {"stage": stage, "iteration": iteration}
        if stage == "train":
            self._coalesce_metric("train", {**head, **{k: data.get(k) for k in TRAIN_KEYS
                                                       if data.get(k) is not None}})
            if data.get("tokens_per_s") is not None:
                self._coalesce_metric("throughput", {**head, "tok_s": data["tokens_per_s"]})
            return
        rates = {}
        if data.get("tokens_per_s") is not None:
            rates["tok_s"] = data["tokens_per_s"]
        if data.get("samples_per_s") is not None:
            rates["samples_s"] = data["samples_per_s"]
        if rates:
            self._coalesce_metric("throughput", {**head, **rates})
        else:  # e.g. assemble's D_{j+1} composition: low rate, worth keeping
            self.send_event({"event": "dataset_composition" if stage == "assemble" else "stage_metrics", **data})

    def _on_event(self, data: dict) -> None:
        name = data.get("event")
        if name == "stage_started":
            self._stage_rates.pop(str(data.get("stage")), None)
            self._eta.reset()
        self.send_event(data)
        if name == "stage_finished" and data.get("stage") == "eval":
            stats = data.get("stats") or {}
            self.publish_eval_result({**stats, "iteration": data.get("iteration"), "run_id": self.engine.run_id,
                                      "benchmark": stats.get("benchmark", "bfcl-v3"), "on_demand": False})

    # -- publishing ------------------------------------------------------------------------------

    def publish_eval_result(self, summary: dict) -> dict:
        """An eval finished (stage or on demand): accuracy metric + eval_done event; returns the brief."""
        brief = eval_brief(summary)
        scores = brief.get("scores") or {}
        metric = {"stage": "eval", "iteration": brief.get("iteration"), "benchmark": brief.get("benchmark"),
                  "eval_id": brief.get("eval_id"), "on_demand": brief.get("on_demand", False), "scores": scores}
        if isinstance(scores, dict) and scores.get("overall") is not None:
            metric["score"] = scores["overall"]
        self.bus.publish_nowait(self.topic("metrics", "accuracy"),
                                bp.Metrics(stream="accuracy", **metric).dump(), qos=1)
        self.send_event({"event": "eval_done", **{k: v for k, v in brief.items() if k != "per_category"}})
        return brief

    def send_event(self, data: dict) -> None:
        payload = {k: v for k, v in data.items() if k not in ("schema", "ts")}
        payload.setdefault("event", "info")
        self.bus.publish_nowait(self.topic("events"), bp.Event(**payload).dump(), qos=1)

    def _coalesce_metric(self, stream: str, fields: dict) -> None:
        """One pending message per stream, fields merged, the latest stage wins; sent by flush()."""
        old = self._pending.get(stream)
        if old is not None and old.get("stage") == fields.get("stage"):
            old.update(fields)
        else:
            self._pending[stream] = dict(fields)

    def _publish_metric(self, stream: str, fields: dict) -> None:
        clean = {k: v for k, v in fields.items() if v is not None and k not in ("schema", "stream", "ts")}
        self.bus.publish_nowait(self.topic("metrics", stream), bp.Metrics(stream=stream, **clean).dump(), qos=0)

    def mark_status(self) -> None:
        """The status changed: it goes out with the next flush."""
        self._status_dirty = True

    def status(self) -> bp.Status:
        st = self.engine.state
        state = st.get("state", "starting")
        if self.stopping() and state not in DONE_STATES:
            state = "stopping"
        progress = st.get("progress")
        prog = None
        if isinstance(progress, dict):
            now = time.monotonic()
            prog = bp.Progress(**{**progress, "eta_s": self._eta.eta(now), "tok_s": self._eta.tok_s()})
        try:
            iterations = int(self.engine.cfg.run.iterations)
        except AttributeError:
            iterations = 0
        self._seq += 1
        return bp.Status(core_id=self.core_id, run_id=st.get("run_id"), state=state,
                         iteration=st.get("iteration") or 0, iterations=iterations, stage=st.get("stage"),
                         paused=bool(st.get("paused")), progress=prog, seq=self._seq)

    def publish_status(self) -> None:
        self._status_dirty = False
        self._status_at = time.monotonic()
        self._published_state = self.engine.state.get("state")
        self.bus.publish_nowait(self.topic("status"), self.status().dump(), qos=1, retain=True)

    def flush(self, force_status: bool = False) -> None:
        """The coalesced metrics, and the status if it changed or the heartbeat is due."""
        pending, self._pending = self._pending, {}
        for stream, fields in pending.items():
            self._publish_metric(stream, fields)
        if force_status or self._status_dirty or time.monotonic() - self._status_at >= self.heartbeat_s:
            self.publish_status()

    # -- background tasks ------------------------------------------------------------------------

    async def flush_loop(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_S)
            try:
                self.flush()
            except Exception:
                log.exception("telemetry flush")

    async def hardware_loop(self) -> None:
        if self.hardware is None:
            try:
                from core.hardware import HardwareSampler

                self.hardware = HardwareSampler()
            except Exception as e:  # noqa: BLE001  (psutil missing: no hardware stream)
                log.warning("hardware telemetry off: %s", e)
                return
        while True:
            try:
                self._coalesce_metric("hardware", {"stage": None, **self.hardware.sample()})
            except Exception:
                log.exception("hardware sample")
            await asyncio.sleep(self.hardware_s)

    def close(self) -> None:
        if self.hardware is not None:
            self.hardware.close()
