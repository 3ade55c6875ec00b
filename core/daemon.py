"""The core daemon: puts an engine on the bus (topics and payloads in core.busproto).

    online                retained `true`; the last will (set on the BusClient) publishes `false`,
                          and a clean exit publishes `false` itself
    status                retained busproto.Status: engine state, progress with ETA; at most 2 Hz,
                          and every `heartbeat_s` even when nothing changed (the console's stale check)
    run/<run_id>/config   retained, the run's TOML
    metrics/<stream>      throughput (tok/s, samples/s per stage), train (loss, reward, lr, ...),
                          accuracy (each eval, QoS 1), hardware (core.hardware); coalesced to <= 2 Hz
    events                QoS 1, as the engine raises them, plus eval_done / dataset_composition
    cmd/<verb>            in: validated with busproto.parse_command; every outcome acked on reply_to
                          (which must be this core's ack/<console-id>); duplicates (same id) ignored;
                          each command lands in the store's `audit` table

Telemetry never blocks a stage: everything goes through BusClient.publish_nowait. When the broker
goes away the engine keeps working; on reconnect the retained online/config/status are republished.
"""
from __future__ import annotations

import asyncio
import collections
import json
import logging
import os
import time

from core import busproto as bp
from core.discovery import default_core_id, live_discovery, remove_discovery, write_discovery

log = logging.getLogger("looptool.daemon")

FLUSH_S = 0.5  # <= 2 Hz per stream and for status
TRAIN_KEYS = ("step", "max_steps", "loss", "reward_mean", "reward_std", "lr", "grad_norm", "epoch")
EVAL_BRIEF = ("eval_id", "benchmark", "run_id", "iteration", "on_demand", "started_at", "wall_s", "model",
              "adapter", "mode", "scores", "per_category", "complete")
DONE_STATES = ("stopped", "finished", "failed")


def will_for(core_id: str) -> tuple[str, bytes]:
    """The BusClient last will for this core: retained `false` on `online`."""
    return bp.topic(core_id, "online"), b"false"


class CoreDaemon:
    def __init__(self, engine, bus, core_id: str, store, *, stay: bool = False, heartbeat_s: float = 5.0,
                 hardware_s: float = 2.0, hardware=None):
        self.engine, self.bus, self.store = engine, bus, store
        self.core_id = bp.check_id(core_id)
        self.stay = stay
        self.heartbeat_s, self.hardware_s = heartbeat_s, hardware_s
        self._hardware = hardware
        self.final: str | None = None
        self._seen: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._pending: dict[str, dict] = {}  # stream -> latest merged fields, flushed at <= 2 Hz
        self._status_dirty = True
        self._status_at = 0.0
        self._published_state: str | None = None  # the engine state of the last status published
        self._seq = 0
        self._rates: dict[str, tuple[float, int, float, int]] = {}  # stage -> (t0, done0, t_last, done_last)
        self._eta: float | None = None
        self._stopping = False
        self._stop_acks: list[tuple[str, bp.Command]] = []
        self._exit: asyncio.Event | None = None
        self._tasks: set[asyncio.Task] = set()
        self._engine_done = False
        engine.subscribe(self._on_engine)
        bus.subscribe(bp.topic(self.core_id, "cmd", "#"), self._on_command)
        bus.on_connection(self._on_connection)

    # -- topics ----------------------------------------------------------------------------------

    def t(self, kind: str, *rest: str) -> str:
        return bp.topic(self.core_id, kind, *rest)

    # -- lifecycle -------------------------------------------------------------------------------

    async def run(self) -> str:
        """Run the engine on the bus; returns its final state (finished | stopped | failed)."""
        self._exit = asyncio.Event()
        bus_task = asyncio.create_task(self.bus.run(), name="bus")
        helpers = [asyncio.create_task(self._flusher(), name="flusher"),
                   asyncio.create_task(self._hardware_loop(), name="hardware")]
        try:
            self.final = await self.engine.run()
            self._engine_done = True
            self._mark_status()
            for reply_to, cmd in self._stop_acks:
                self._ack(reply_to, cmd, "stop", "done", f"run {self.final}", {"state": self.final})
            self._stop_acks.clear()
            if self.engine.evals_pending and not self._stopping:
                await self.engine.serve_evals()
            if self.stay and not self._stopping:
                await self._exit.wait()
            return self.final
        finally:
            self.engine.cancel_evals("the core is shutting down")
            if self._tasks:  # acks of cancelled evals, audit writes
                await asyncio.wait(list(self._tasks), timeout=2.0)
            self._flush(force_status=True)
            if self.store is not None:
                try:
                    await self.store.aflush()
                except Exception as e:  # noqa: BLE001
                    log.warning("store flush: %s", e)
            await self._say_offline()
            for h in helpers:
                h.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            await self.bus.close()
            await asyncio.gather(bus_task, return_exceptions=True)
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            if self._hardware is not None:
                self._hardware.close()

    def request_exit(self) -> None:
        """SIGINT/SIGTERM: stop the run at its next safe point, or leave --stay serving."""
        self._stopping = True
        self._mark_status()
        if self._engine_done:
            self._exit.set()
        else:
            self.engine.stop()

    async def _say_offline(self) -> None:
        if not self.bus.connected:
            return
        from core.bus import BusError

        await self._drain(1.0)
        try:
            await asyncio.wait_for(self.bus.publish(self.t("online"), b"false", qos=1, retain=True), 3.0)
        except (BusError, asyncio.TimeoutError) as e:
            log.info("could not publish offline: %s", e)

    async def _drain(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while getattr(self.bus, "_queue", None) and self.bus.connected and time.monotonic() < deadline:
            await asyncio.sleep(0.02)

    def _on_connection(self, up: bool) -> None:
        if not up:
            return
        self.bus.publish_nowait(self.t("online"), b"true", qos=1, retain=True)
        self.bus.publish_nowait(self.t("run", self.engine.run_id, "config"),
                                json.dumps({"schema": bp.SCHEMA, "run_id": self.engine.run_id,
                                            "toml": self.engine.cfg_text}).encode(), qos=1, retain=True)
        self._publish_status()

    # -- engine -> bus ---------------------------------------------------------------------------

    def _on_engine(self, kind: str, data: dict) -> None:
        try:
            if kind == "status":
                # a state change (paused -> evaluating -> paused can last under the 2 Hz window) goes
                # out at once; progress-only changes wait for the next flush
                if self.engine.state.get("state") != self._published_state:
                    self._publish_status()
                else:
                    self._mark_status()
            elif kind == "progress":
                self._on_progress(data)
            elif kind == "metrics":
                self._on_metrics(data)
            elif kind == "event":
                self._on_event(data)
        except Exception:  # telemetry must never break the engine
            log.exception("engine %s telemetry", kind)

    def _on_progress(self, data: dict) -> None:
        stage, done, total = str(data.get("stage")), int(data.get("done") or 0), int(data.get("total") or 0)
        now = time.monotonic()
        t0, d0, tl, dl = self._rates.get(stage, (now, done, now, done))
        if done < d0:  # a new pass of the stage (another iteration): restart the rate
            t0, d0, tl, dl = now, done, now, done
        if done > d0 and now > t0:
            rate = (done - d0) / (now - t0)
            self._eta = round((total - done) / rate, 1) if rate > 0 and total >= done else None
            if now - tl >= FLUSH_S and done > dl:
                self._metric("throughput", {"stage": stage, "iteration": data.get("iteration"),
                                            "samples_s": round((done - dl) / (now - tl), 3)})
                tl, dl = now, done
        else:
            self._eta = None
        self._rates[stage] = (t0, d0, tl, dl)
        self._mark_status()

    def _on_metrics(self, data: dict) -> None:
        stage, iteration = data.get("stage"), data.get("iteration")
        head = {"stage": stage, "iteration": iteration}
        if stage == "train":
            self._metric("train", {**head, **{k: data.get(k) for k in TRAIN_KEYS if data.get(k) is not None}})
            if data.get("tokens_per_s") is not None:
                self._metric("throughput", {**head, "tok_s": data["tokens_per_s"]})
            return
        rates = {}
        if data.get("tokens_per_s") is not None:
            rates["tok_s"] = data["tokens_per_s"]
        if data.get("samples_per_s") is not None:
            rates["samples_s"] = data["samples_per_s"]
        if rates:
            self._metric("throughput", {**head, **rates})
        else:  # e.g. assemble's D_{j+1} composition: low rate, worth keeping
            self._send_event({"event": "dataset_composition" if stage == "assemble" else "stage_metrics", **data})

    def _on_event(self, data: dict) -> None:
        name = data.get("event")
        if name == "stage_started":
            self._rates.pop(str(data.get("stage")), None)
            self._eta = None
        self._send_event(data)
        if name == "stage_finished" and data.get("stage") == "eval":
            stats = data.get("stats") or {}
            self._eval_result({**stats, "iteration": data.get("iteration"), "run_id": self.engine.run_id,
                               "benchmark": stats.get("benchmark", "bfcl-v3"), "on_demand": False})

    def _eval_result(self, summary: dict) -> dict:
        """An eval finished (stage or on demand): accuracy metric + eval_done event; returns the brief."""
        brief = {k: summary[k] for k in EVAL_BRIEF if summary.get(k) is not None}
        scores = brief.get("scores") or {}
        metric = {"stage": "eval", "iteration": brief.get("iteration"), "benchmark": brief.get("benchmark"),
                  "eval_id": brief.get("eval_id"), "on_demand": brief.get("on_demand", False), "scores": scores}
        if isinstance(scores, dict) and scores.get("overall") is not None:
            metric["score"] = scores["overall"]
        self.bus.publish_nowait(self.t("metrics", "accuracy"),
                                bp.Metrics(stream="accuracy", **metric).dump(), qos=1)
        self._send_event({"event": "eval_done", **{k: v for k, v in brief.items() if k != "per_category"}})
        return brief

    def _send_event(self, data: dict) -> None:
        payload = {k: v for k, v in data.items() if k not in ("schema", "ts")}
        payload.setdefault("event", "info")
        self.bus.publish_nowait(self.t("events"), bp.Event(**payload).dump(), qos=1)

    def _metric(self, stream: str, fields: dict) -> None:
        """Coalesce: one pending message per stream, fields merged, the latest stage wins."""
        old = self._pending.get(stream)
        if old is not None and old.get("stage") == fields.get("stage"):
            old.update(fields)
        else:
            self._pending[stream] = dict(fields)

    def _emit_metric(self, stream: str, fields: dict) -> None:
        clean = {k: v for k, v in fields.items() if v is not None and k not in ("schema", "stream", "ts")}
        self.bus.publish_nowait(self.t("metrics", stream), bp.Metrics(stream=stream, **clean).dump(), qos=0)

    def _mark_status(self) -> None:
        self._status_dirty = True

    def status(self) -> bp.Status:
        st = self.engine.state
        state = st.get("state", "starting")
        if self._stopping and state not in DONE_STATES:
            state = "stopping"
        progress = st.get("progress")
        prog = None
        if isinstance(progress, dict):
            prog = bp.Progress(**{**progress, "eta_s": self._eta})
        try:
            iterations = int(self.engine.cfg.run.iterations)
        except AttributeError:
            iterations = 0
        self._seq += 1
        return bp.Status(core_id=self.core_id, run_id=st.get("run_id"), state=state,
                         iteration=st.get("iteration") or 0, iterations=iterations, stage=st.get("stage"),
                         paused=bool(st.get("paused")), progress=prog, seq=self._seq)

    def _publish_status(self) -> None:
        self._status_dirty = False
        self._status_at = time.monotonic()
        self._published_state = self.engine.state.get("state")
        self.bus.publish_nowait(self.t("status"), self.status().dump(), qos=1, retain=True)

    def _flush(self, force_status: bool = False) -> None:
        pending, self._pending = self._pending, {}
        for stream, fields in pending.items():
            self._emit_metric(stream, fields)
        if force_status or self._status_dirty or time.monotonic() - self._status_at >= self.heartbeat_s:
            self._publish_status()

    async def _flusher(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_S)
            try:
                self._flush()
            except Exception:
                log.exception("telemetry flush")

    async def _hardware_loop(self) -> None:
        if self._hardware is None:
            try:
                from core.hardware import HardwareSampler

                self._hardware = HardwareSampler()
            except Exception as e:  # noqa: BLE001  (psutil missing: no hardware stream)
                log.warning("hardware telemetry off: %s", e)
                return
        while True:
            try:
                self._metric("hardware", {"stage": None, **self._hardware.sample()})
            except Exception:
                log.exception("hardware sample")
            await asyncio.sleep(self.hardware_s)

    # -- commands ---------------------------------------------------------------------------------

    def _on_command(self, topic: str, payload: bytes, retained: bool) -> None:
        prefix = self.t("cmd") + "/"
        verb = topic[len(prefix):] if topic.startswith(prefix) else topic
        reply_to = self._reply_topic(payload)
        cid = bp.command_id_of(payload)
        if cid is not None:
            if cid in self._seen:
                log.info("duplicate command %s ignored", cid)
                return
            self._seen[cid] = None
            while len(self._seen) > 2000:
                self._seen.popitem(last=False)
        stub = bp.Command(id=cid or "", reply_to=reply_to or self.t("ack", "unknown"))
        if retained:
            return self._reject(reply_to, stub, verb, "retained commands are ignored (publish commands "
                                "with retain=false; a retained command would fire again on every reconnect)")
        try:
            cmd, args = bp.parse_command(verb, payload, where=topic)
        except bp.BadPayload as e:
            return self._reject(reply_to, stub, verb, str(e))
        if reply_to is None:
            return self._reject(None, cmd, verb, f"{topic}: reply_to: must be {self.t('ack', '<console-id>')}")
        try:
            getattr(self, "_cmd_" + verb)(reply_to, cmd, args)
        except Exception as e:  # noqa: BLE001  a bug here must not take the core down
            log.exception("command %s", verb)
            self._ack(reply_to, cmd, verb, "failed", f"internal error: {e}")

    def _reply_topic(self, payload: bytes) -> str | None:
        rt = bp.reply_to_of(payload)
        prefix = self.t("ack") + "/"
        if rt is None or not rt.startswith(prefix):
            return None
        try:
            bp.check_id(rt[len(prefix):], "console id")
        except bp.BadPayload:
            return None
        return rt

    def _reject(self, reply_to: str | None, cmd: bp.Command, verb: str, why: str) -> None:
        log.info("rejected %s: %s", verb, why)
        self._ack(reply_to, cmd, verb, "rejected", why)

    def _ack(self, reply_to: str | None, cmd: bp.Command, verb: str, status: str, detail: str = "",
             result=None) -> None:
        if reply_to is not None:
            ack = bp.Ack(id=cmd.id, verb=verb, status=status, detail=detail, result=result)
            self.bus.publish_nowait(reply_to, ack.dump(), qos=1)
        if status != "accepted":
            self._audit(cmd, verb, status, detail)

    def _audit(self, cmd: bp.Command, verb: str, status: str, detail: str) -> None:
        if self.store is None:
            return
        doc = {"key": f"{self.core_id}/{cmd.id or time.time_ns()}", "ts": time.time(), "core_id": self.core_id,
               "run_id": self.engine.run_id, "id": cmd.id, "verb": verb, "sender": cmd.sender,
               "reply_to": cmd.reply_to, "args": cmd.args, "status": status, "detail": detail[:2000]}
        self._spawn(self._store_audit(doc))

    async def _store_audit(self, doc: dict) -> None:
        try:
            await self.store.aadd_doc("audit", doc, key="key")
            await self.store.aflush()
        except Exception as e:  # noqa: BLE001
            log.warning("audit log: %s", e)

    def _spawn(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _state(self) -> str:
        return self.engine.state.get("state", "starting")

    def _cmd_pause(self, reply_to, cmd, args) -> None:
        if self._stopping or self._engine_done:
            return self._reject(reply_to, cmd, "pause", f"cannot pause: the run is {self._state_word()}")
        if not self.engine.pause():
            return self._reject(reply_to, cmd, "pause", "already paused")
        self._ack(reply_to, cmd, "pause", "accepted")
        self._ack(reply_to, cmd, "pause", "done", "paused")

    def _cmd_resume(self, reply_to, cmd, args) -> None:
        if self._stopping or self._engine_done:
            return self._reject(reply_to, cmd, "resume", f"cannot resume: the run is {self._state_word()}")
        if not self.engine.resume():
            return self._reject(reply_to, cmd, "resume", "not paused")
        self._ack(reply_to, cmd, "resume", "accepted")
        self._ack(reply_to, cmd, "resume", "done", "resumed")

    def _cmd_stop(self, reply_to, cmd, args) -> None:
        if self._stopping:
            return self._reject(reply_to, cmd, "stop", "a stop is already in progress")
        self._stopping = True
        self._mark_status()
        self._ack(reply_to, cmd, "stop", "accepted", "stopping at the next safe point")
        self.engine.cancel_evals("the run was asked to stop")
        if self._engine_done:
            self._ack(reply_to, cmd, "stop", "done", f"run {self.final}; core exiting", {"state": self.final})
            self._exit.set()
        else:
            self.engine.stop()
            self._stop_acks.append((reply_to, cmd))

    def _state_word(self) -> str:
        return "stopping" if self._stopping and not self._engine_done else self._state()

    def _cmd_eval(self, reply_to, cmd, args: bp.EvalArgs) -> None:
        if self._stopping:
            return self._reject(reply_to, cmd, "eval", "the run is stopping")
        fut = self.engine.request_eval(**args.model_dump())
        where = ("now" if self._engine_done or self.engine.state.get("paused")
                 else "queued for the next stage boundary")
        self._ack(reply_to, cmd, "eval", "accepted", f"{args.benchmark} eval {where}")
        if self._engine_done and not fut.done():
            self._spawn(self.engine.serve_evals())
        self._spawn(self._finish_eval(reply_to, cmd, fut))

    async def _finish_eval(self, reply_to, cmd, fut) -> None:
        try:
            summary = await fut
        except asyncio.CancelledError:
            self._ack(reply_to, cmd, "eval", "failed", "cancelled")
            raise
        except Exception as e:  # noqa: BLE001  the message is for the operator
            msg = str(e) or type(e).__name__
            self._ack(reply_to, cmd, "eval", "failed", msg[-4000:])
            self._send_event({"event": "eval_failed", "id": cmd.id, "detail": msg[-500:]})
            return
        brief = self._eval_result({**summary, "on_demand": True})
        score = (brief.get("scores") or {}).get("overall")
        detail = f"{brief.get('benchmark')} iteration {brief.get('iteration')}" + (
            f": overall {score:.4f}" if isinstance(score, (int, float)) else "")
        self._ack(reply_to, cmd, "eval", "done", detail, brief)

    def _cmd_history(self, reply_to, cmd, args: bp.HistoryArgs) -> None:
        if self.store is None:
            return self._reject(reply_to, cmd, "history", "this core has no results store")
        self._ack(reply_to, cmd, "history", "accepted")
        self._spawn(self._finish_history(reply_to, cmd, args))

    async def _finish_history(self, reply_to, cmd, args: bp.HistoryArgs) -> None:
        try:
            rows = await self.history(args.table, args.run_id, args.limit)
        except Exception as e:  # noqa: BLE001
            self._ack(reply_to, cmd, "history", "failed", f"reading {args.table}: {e}")
            return
        self._ack(reply_to, cmd, "history", "done", f"{len(rows)} {args.table}",
                  {"table": args.table, "run_id": args.run_id, "rows": rows})

    async def history(self, table: str, run_id: str | None, limit: int) -> list[dict]:
        match = {"run_id": run_id} if run_id else {}
        docs = await self.store.aget_docs(table, **match)
        if table == "evals":
            docs = [{k: d[k] for k in EVAL_BRIEF if d.get(k) is not None} for d in docs]
            docs.sort(key=lambda d: str(d.get("started_at") or ""), reverse=True)
        elif table == "runs":
            docs.sort(key=lambda d: str(d.get("updated_at") or ""), reverse=True)
        elif table == "audit":
            docs.sort(key=lambda d: d.get("ts") or 0, reverse=True)
        else:
            docs.sort(key=lambda d: (str(d.get("run_id")), d.get("iteration") or 0), reverse=True)
        return docs[:limit]


# -- `looptool core` on the bus ----------------------------------------------------------------------

def daemon_options(broker: str | None, credentials: str | None, core_id: str | None):
    """Check the bus options before anything is created: (BrokerURL or None = embedded, core id)."""
    from core.bus import resolve
    from core.errors import UserError

    cid = core_id or default_core_id()
    try:
        bp.check_id(cid)
    except bp.BadPayload as e:
        raise UserError(f"--core-id: {e}") from None
    if credentials and not broker:
        raise UserError("--broker-credentials needs --broker (the embedded broker takes no credentials)")
    other = live_discovery(cid)
    if other is not None and other.get("pid") != os.getpid():
        raise UserError(f"--core-id {cid}: a core with this id is running (pid {other['pid']}, "
                        f"run {other.get('run_id')}); pick another --core-id")
    return (resolve(broker, credentials) if broker else None), cid


def run_daemon(engine, store, *, broker=None, core_id: str, stay: bool = False, keepalive: int = 15,
               say=print) -> str:
    """`broker`: a core.bus.BrokerURL, or None to start the embedded broker. Writes the discovery
    file, runs the daemon until the run ends (or, with `stay`, until a stop command or SIGTERM).
    SIGINT/SIGTERM stop at the next safe point; SIGUSR1 toggles pause. Returns the final state."""
    import signal

    from core.broker import EmbeddedBroker
    from core.bus import BusClient, resolve

    cid = core_id

    async def main() -> str:
        embedded = None
        b = broker
        if b is None:
            embedded = EmbeddedBroker()
            await embedded.start()
            b = resolve(embedded.url, None, "embedded broker")
        bus = BusClient(b.url(), f"core-{cid}", will=will_for(cid), username=b.username, password=b.password,
                        keepalive=keepalive)
        daemon = CoreDaemon(engine, bus, cid, store, stay=stay)
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, daemon.request_exit)
        loop.add_signal_handler(signal.SIGTERM, daemon.request_exit)
        loop.add_signal_handler(signal.SIGUSR1, lambda: engine.pause() or engine.resume())
        # the console brings its own credentials: the discovery file names host and port only
        disc = write_discovery(cid, f"mqtt://{b.host}:{b.port}", engine.run_id, embedded is not None)
        say(f"core {cid}: bus {b.url()}" + (" (embedded broker, loopback only)" if embedded else "")
            + f"; discovery file {disc}")
        try:
            return await daemon.run()
        finally:
            remove_discovery(cid)
            if embedded is not None:
                await embedded.stop()

    return asyncio.run(main())
