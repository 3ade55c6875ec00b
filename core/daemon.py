"""The core daemon: puts an engine on the bus (topics and payloads in core.busproto).

    online                retained `true`; the last will (set on the BusClient) publishes `false`,
                          and a clean exit publishes `false` itself
    run/<run_id>/config   retained, the run's TOML
    status, metrics/<stream>, events
                          the engine's telemetry: core.daemon_telemetry
    cmd/<verb>            commands in, acks out on the sender's reply_to: core.daemon_commands

Telemetry never blocks a stage: everything goes through BusClient.publish_nowait. When the broker
goes away the engine keeps working; on reconnect the retained online/config/status are republished.
"""
from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING

from core import busproto as bp
from core.daemon_commands import CommandHandler
from core.daemon_telemetry import Telemetry
from core.discovery import remove_discovery, write_discovery

if TYPE_CHECKING:
    from core.engine import RunEngine

log = logging.getLogger("looptool.daemon")


def will_for(core_id: str) -> tuple[str, bytes]:
    """The BusClient last will for this core: retained `false` on `online`."""
    return bp.topic(core_id, "online"), b"false"


class CoreDaemon:
    def __init__(self, engine: RunEngine, bus, core_id: str, store, *, stay: bool = False, heartbeat_s: float = 5.0,
                 hardware_s: float = 2.0, hardware=None):
        self.engine, self.bus, self.store = engine, bus, store
        self.core_id = bp.check_id(core_id)
        self.stay = stay
        # the run's lifecycle, shared with the command handler
        self.final: str | None = None  # the engine's final state, once its run returned
        self.engine_done = False
        self.stopping = False  # a stop was asked (command or signal)
        self.exit: asyncio.Event | None = None  # set to leave --stay serving
        self._tasks: set[asyncio.Task] = set()
        self.telemetry = Telemetry(engine, bus, self.core_id, stopping=lambda: self.stopping,
                                   heartbeat_s=heartbeat_s, hardware_s=hardware_s, hardware=hardware)
        self.commands = CommandHandler(self)
        engine.subscribe(self.telemetry.on_engine)
        bus.subscribe(self.topic("cmd", "#"), self.commands.on_command)
        bus.on_connection(self._on_connection)

    def topic(self, kind: str, *rest: str) -> str:
        return bp.topic(self.core_id, kind, *rest)

    def spawn(self, coro) -> None:
        """A background task (acks of evals, history reads, audit writes) awaited at shutdown."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- lifecycle -------------------------------------------------------------------------------

    async def run(self) -> str:
        """Run the engine on the bus; returns its final state (finished | stopped | failed)."""
        self.exit = asyncio.Event()
        bus_task = asyncio.create_task(self.bus.run(), name="bus")
        helpers = [asyncio.create_task(self.telemetry.flush_loop(), name="flusher"),
                   asyncio.create_task(self.telemetry.hardware_loop(), name="hardware")]
        try:
            self.final = await self.engine.run()
            self.engine_done = True
            self.telemetry.mark_status()
            self.commands.run_ended(self.final)
            if self.engine.evals_pending and not self.stopping:
                await self.engine.serve_evals()
            if self.stay and not self.stopping:
                await self.exit.wait()
            return self.final
        finally:
            self.engine.cancel_evals("the core is shutting down")
            if self._tasks:  # acks of cancelled evals, audit writes
                await asyncio.wait(list(self._tasks), timeout=2.0)
            self.telemetry.flush(force_status=True)
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
            self.telemetry.close()

    def request_exit(self) -> None:
        """SIGINT/SIGTERM: stop the run at its next safe point, or leave --stay serving."""
        self.stopping = True
        self.telemetry.mark_status()
        if self.engine_done:
            self.exit.set()
        else:
            self.engine.stop()

    async def _say_offline(self) -> None:
        if not self.bus.connected:
            return
        from core.bus import BusError

        await self.bus.drain(1.0)
        try:
            await asyncio.wait_for(self.bus.publish(self.topic("online"), b"false", qos=1, retain=True), 3.0)
        except (BusError, asyncio.TimeoutError) as e:
            log.info("could not publish offline: %s", e)

    def _on_connection(self, up: bool) -> None:
        if not up:
            return
        self.bus.publish_nowait(self.topic("online"), b"true", qos=1, retain=True)
        self.bus.publish_nowait(self.topic("run", self.engine.run_id, "config"),
                                json.dumps({"schema": bp.SCHEMA, "run_id": self.engine.run_id,
                                            "toml": self.engine.cfg_text}).encode(), qos=1, retain=True)
        self.telemetry.publish_status()


# -- `looptool core` on the bus ----------------------------------------------------------------------

def run_daemon(engine, store, *, broker=None, core_id: str, stay: bool = False, keepalive: int = 15,
               say=print) -> str:
    """`broker`: a core.bus.BrokerURL, or None to start the embedded broker. Writes the discovery
    file, runs the daemon until the run ends (or, with `stay`, until a stop command or SIGTERM).
    SIGINT/SIGTERM stop at the next safe point; SIGUSR1 toggles pause. Returns the final state."""
    import signal

    from core.broker import LOOPBACK, EmbeddedBroker, embedded_credentials_path
    from core.bus import BrokerURL, BusClient

    async def main() -> str:
        embedded = None
        b = broker
        if b is None:  # its passwords go to $LOOPTOOL_HOME/cores/ before the discovery file names it
            embedded = EmbeddedBroker(core_id=core_id)
            await embedded.start()
            b = BrokerURL(LOOPBACK, embedded.port, *embedded.login("core"))
        bus = BusClient(b.url(), f"core-{core_id}", will=will_for(core_id), username=b.username,
                        password=b.password, keepalive=keepalive)
        daemon = CoreDaemon(engine, bus, core_id, store, stay=stay)
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, daemon.request_exit)
        loop.add_signal_handler(signal.SIGTERM, daemon.request_exit)
        loop.add_signal_handler(signal.SIGUSR1, lambda: engine.pause() or engine.resume())
        # the console brings its own credentials: the discovery file names host and port only
        disc = write_discovery(core_id, f"mqtt://{b.host}:{b.port}", engine.run_id, embedded is not None)
        where = f" (embedded broker, loopback only; {embedded_credentials_path(core_id, 'core')})" if embedded else ""
        say(f"core {core_id}: bus {b.url()}{where}; discovery file {disc}")
        try:
            return await daemon.run()
        finally:
            remove_discovery(core_id)
            if embedded is not None:
                await embedded.stop()

    return asyncio.run(main())
