"""The console's only door to the core: everything it sees arrives here, every command leaves here.

`Link` holds what the console knows (status, telemetry, our commands) and parses every inbound
bus message with `core.busproto`; a bad one becomes a `BadMessage` note, never an exception in the
UI. `MqttLink` puts it on the broker through `core.bus.BusClient`; `console.memlink.MemoryLink` is
the same interface without a broker, for Pilot tests and the flood benchmark.

Commands: `send(verb, args)` publishes `looptool/v1/<core>/cmd/<verb>` (QoS 1, never retained)
with a uuid id and reply_to `looptool/v1/<core>/ack/<console-id>`, and tracks it:
pending -> accepted | rejected -> done | failed, or `unconfirmed` when no ack came within
`ack_timeout` seconds (an ack that comes later still moves it on). A read-only link refuses to
send and publishes nothing at all.
"""
from __future__ import annotations

import abc
import asyncio
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable

from core import busproto as bp
from console.messages import (BadMessage, BusConnectionChanged, CommandUpdated, CoreOnlineChanged,
                              EventRaised, MetricsReceived, StatusChanged)
from console.telemetry import Telemetry

FINAL = ("rejected", "done", "failed")
ACTIVE_STATES = ("starting", "running", "paused", "evaluating", "stopping")
KEEP_COMMANDS = 50


class LinkError(Exception):
    """A command that cannot be sent (read-only console, not connected, bad arguments)."""


@dataclass
class PendingCommand:
    id: str
    verb: str
    args: dict
    sent_at: float  # time.monotonic()
    state: str = "pending"  # pending | accepted | rejected | done | failed | unconfirmed
    detail: str = ""
    result: Any = None
    updated_at: float = 0.0
    on_update: list[Callable[["PendingCommand"], None]] = field(default_factory=list, repr=False)

    @property
    def finished(self) -> bool:
        return self.state in FINAL

    def describe(self) -> str:
        args = " ".join(f"{k}={v}" for k, v in self.args.items() if v is not None)
        return f"{self.verb}{' ' + args if args else ''}: {self.state}{' - ' + self.detail if self.detail else ''}"


class Link(abc.ABC):
    """Shared state and parsing; subclasses implement `run`, `close` and `_transmit`."""

    def __init__(self, core_id: str, console_id: str | None = None, *, read_only: bool = False,
                 ack_timeout: float = 5.0):
        self.core_id = bp.check_id(core_id)
        self.console_id = bp.check_id(console_id or f"console-{uuid.uuid4().hex[:8]}", "console id")
        self.read_only = read_only
        self.ack_timeout = ack_timeout
        self.root = bp.core_root(core_id)
        self.ack_topic = bp.topic(core_id, "ack", self.console_id)
        self.connected = False
        self.core_online: bool | None = None
        self.status: bp.Status | None = None
        self.status_advanced_at = time.monotonic()  # last time status.seq moved (for `stale`)
        self.telemetry = Telemetry()
        self.commands: OrderedDict[str, PendingCommand] = OrderedDict()
        self.bad_total = 0
        self.last_bad = ""
        self._sink: Callable[[Any], Any] | None = None
        self._waiting: set[str] = set()  # coalesced kinds posted and not yet released

    # -- the UI side --------------------------------------------------------------------------------

    def attach(self, sink: Callable[[Any], Any]) -> None:
        """sink(message): usually App.post_message. Called on the loop the link runs on."""
        self._sink = sink
        self._waiting.clear()

    def release(self, kind: str) -> None:
        """The UI has read the latest `kind` (status | metrics | events | bad): post the next one."""
        self._waiting.discard(kind)

    def send(self, verb: str, args: dict | None = None, on_update=None) -> PendingCommand:
        if self.read_only:
            raise LinkError("read-only console: commands are disabled")
        if verb not in bp.VERBS:
            raise LinkError(f"unknown command {verb!r}; verbs are {', '.join(bp.VERBS)}")
        if not self.connected:
            raise LinkError("not connected to the broker: command not sent")
        args = {k: v for k, v in (args or {}).items() if v is not None}
        cmd = bp.Command(reply_to=self.ack_topic, sender=self.console_id, args=args)
        try:  # validate here, with the core's own parser, so a bad argument never leaves the console
            bp.parse_command(verb, cmd.dump(), f"cmd/{verb}")
        except bp.BadPayload as e:
            raise LinkError(str(e)) from None
        now = time.monotonic()
        pc = PendingCommand(cmd.id, verb, args, now, updated_at=now, on_update=[on_update] if on_update else [])
        self.commands[cmd.id] = pc
        while len(self.commands) > KEEP_COMMANDS:
            self.commands.popitem(last=False)
        self._transmit(bp.topic(self.core_id, "cmd", verb), cmd.dump())
        self._changed(pc)
        return pc

    def expire(self, now: float | None = None) -> list[PendingCommand]:
        """Mark commands that got no ack within ack_timeout `unconfirmed`; returns those changed."""
        now = time.monotonic() if now is None else now
        out = []
        for pc in self.commands.values():
            if pc.state == "pending" and now - pc.sent_at >= self.ack_timeout:
                pc.state, pc.updated_at = "unconfirmed", now
                pc.detail = f"no ack after {self.ack_timeout:g}s"
                out.append(pc)
                self._changed(pc)
        return out

    def open_commands(self) -> list[PendingCommand]:
        return [c for c in self.commands.values() if not c.finished]

    def is_stale(self, after: float, now: float | None = None) -> bool:
        """Connected, the core online and its run active, but status.seq has not moved for `after` s."""
        now = time.monotonic() if now is None else now
        if not self.connected or self.core_online is False or self.status is None:
            return False
        return self.status.state in ACTIVE_STATES and now - self.status_advanced_at > after

    # -- subclasses ---------------------------------------------------------------------------------

    @abc.abstractmethod
    async def run(self) -> None:
        """Implemented by MqttLink (the bus) and MemoryLink (tests, benchmarks)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Implemented by MqttLink (the bus) and MemoryLink (tests, benchmarks)."""

    @abc.abstractmethod
    def _transmit(self, topic: str, payload: bytes) -> None:
        """Implemented by MqttLink (the bus) and MemoryLink (tests, benchmarks)."""

    # -- inbound ------------------------------------------------------------------------------------

    def on_message(self, topic: str, payload: bytes, retained: bool = False) -> None:
        """Every message under looptool/v1/<core>/# comes through here (bus handler signature)."""
        try:
            core, kind, rest = bp.split(topic)
            if core != self.core_id:
                return
            if kind == "status":
                self._on_status(bp.parse_status(payload, topic))
            elif kind == "metrics":
                m = bp.parse_metrics(payload, topic)
                self.telemetry.absorb_metrics(m)
                self._post("metrics", MetricsReceived, m)
            elif kind == "events":
                e = bp.parse_event(payload, topic)
                self.telemetry.absorb_event(e)
                self._post("events", EventRaised, e)
            elif kind == "ack":
                if rest == [self.console_id]:
                    self._on_ack(bp.parse_ack(payload, topic))
            elif kind == "online":
                self._on_online(payload, topic)
            elif kind == "cmd" and rest:
                self._on_foreign_command(rest[0], payload)
            elif kind == "run" and len(rest) == 2 and rest[1] == "config" and payload:
                data = bp.load_json(payload, topic)
                if isinstance(data, dict) and isinstance(data.get("toml"), str):
                    self.telemetry.configs[rest[0]] = data["toml"]
        except bp.BadPayload as e:
            self._bad(str(e))
        except (ValueError, TypeError, UnicodeDecodeError) as e:
            self._bad(f"{topic}: {e}")

    def set_connected(self, up: bool) -> None:
        if up == self.connected:
            return
        self.connected = up
        self.telemetry.note("bus", "connected to the broker" if up else "disconnected from the broker",
                            "information" if up else "warning")
        if up:
            self.status_advanced_at = time.monotonic()
        self._emit(BusConnectionChanged(up))

    def _on_status(self, st: bp.Status) -> None:
        prev = self.status
        if prev is None or st.seq != prev.seq or st.run_id != prev.run_id:
            self.status_advanced_at = time.monotonic()
        self.status = st
        self._post("status", StatusChanged, st)

    def _on_ack(self, ack: bp.Ack) -> None:
        pc = self.commands.get(ack.id)
        if pc is None:
            return  # an ack for a command of an earlier session of this console id
        if pc.finished:
            return  # a duplicate QoS 1 delivery
        pc.state, pc.detail, pc.updated_at = ack.status, ack.detail, time.monotonic()
        if ack.result is not None:
            pc.result = ack.result
        if pc.verb == "history" and ack.status == "done" and isinstance(pc.args.get("table"), str):
            self.telemetry.absorb_history(pc.args["table"], ack.result)
        self.telemetry.note("ack", pc.describe(), "warning" if ack.status in ("rejected", "failed") else "information")
        self._changed(pc, ack)

    def _on_online(self, payload: bytes, topic: str) -> None:
        if not payload:
            online = None  # retained flag cleared
        else:
            try:
                online = bp.load_json(payload, topic, 16)  # `true` or `false`
            except bp.BadPayload:
                online = payload
            if not isinstance(online, bool):
                raise bp.BadPayload(f"{topic}: expected true or false, got {bp.shown(online)}")
        if online != self.core_online:
            self.core_online = online
            if online is not None:
                self.telemetry.note("core", "core online" if online else "core offline",
                                    "information" if online else "warning")
            self._emit(CoreOnlineChanged(online))

    def _on_foreign_command(self, verb: str, payload: bytes) -> None:
        """Commands on the bus (ours and other consoles'): an audit line in the event log."""
        try:
            data = bp.load_json(payload, verb, bp.MAX_COMMAND_BYTES)
        except bp.BadPayload:
            return
        if isinstance(data, dict) and not (isinstance(data.get("id"), str) and data["id"] in self.commands):
            self.telemetry.note("cmd", f"{bp.shown(verb)} from {bp.shown(data.get('sender') or 'another client')}")
            self._post("events", EventRaised, bp.Event(event="command_seen"))

    def _bad(self, text: str) -> None:
        self.bad_total += 1
        self.last_bad = text
        if "bad" not in self._waiting:
            self.telemetry.note("bad-message", text, "warning")
        self._post("bad", BadMessage, text)

    # -- posting ------------------------------------------------------------------------------------

    def _post(self, kind: str, cls, payload) -> None:
        if self._sink is None or kind in self._waiting:
            return
        self._waiting.add(kind)
        self._sink(cls(payload))

    def _emit(self, message) -> None:
        if self._sink is not None:
            self._sink(message)

    def _changed(self, pc: PendingCommand, ack: bp.Ack | None = None) -> None:
        for fn in list(pc.on_update):
            fn(pc)
        self._emit(CommandUpdated(pc, ack))


class MqttLink(Link):
    """The link over the broker (core.bus.BusClient): subscribes looptool/v1/<core>/#, publishes
    commands, and (unless read-only) a retained presence flag with a last will."""

    def __init__(self, url: str, core_id: str, console_id: str | None = None, *, read_only: bool = False,
                 ack_timeout: float = 5.0, username: str | None = None, password: str | None = None,
                 keepalive: int = 15):
        super().__init__(core_id, console_id, read_only=read_only, ack_timeout=ack_timeout)
        self.url = url
        self.presence_topic = bp.console_online(self.console_id)
        self._auth = (username, password)
        self._keepalive = keepalive
        self.client = None

    async def run(self) -> None:
        from core.bus import BusClient

        will = None if self.read_only else (self.presence_topic, b"false")
        # a deep incoming queue: aiomqtt drops whatever does not fit, acks included, and a console
        # on a busy host can fall a second behind a flood
        self.client = BusClient(self.url, self.console_id, will=will, username=self._auth[0],
                                password=self._auth[1], keepalive=self._keepalive, queue_size=10000)
        self.client.subscribe(f"{self.root}/#", self.on_message)
        self.client.on_connection(self._on_connection)
        await self.client.run()

    def _on_connection(self, up: bool) -> None:
        if up and not self.read_only:
            self.client.publish_nowait(self.presence_topic, b"true", qos=1, retain=True)
        self.set_connected(up)

    def _transmit(self, topic: str, payload: bytes) -> None:
        assert not self.read_only
        self.client.publish_nowait(topic, payload, qos=1, retain=False)

    async def close(self) -> None:
        if self.client is None:
            return
        if self.client.connected and not self.read_only:
            # a clean detach clears our presence flag (the last will only fires on a crash)
            self.client.publish_nowait(self.presence_topic, b"", qos=1, retain=True)
        try:
            await asyncio.wait_for(self.client.close(drain_s=1.0), 3.0)
        except asyncio.TimeoutError:
            pass
