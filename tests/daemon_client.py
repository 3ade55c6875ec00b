"""A console-side bus client and a daemon starter for the daemon tests (test_daemon*.py)."""
from __future__ import annotations

import asyncio
import time
import uuid

from core import busproto as bp
from core.bus import BusClient
from core.daemon import CoreDaemon, will_for


class Console:
    """A console-side client: sends commands, collects acks and everything else it subscribed to."""

    def __init__(self, url, core_id, console_id="con1", creds=(None, None)):
        self.core_id, self.console_id = core_id, console_id
        self.bus = BusClient(url, f"console-{console_id}-{uuid.uuid4().hex[:6]}", username=creds[0],
                             password=creds[1], keepalive=5)
        self.acks: list[bp.Ack] = []
        self.msgs: list[tuple[str, bytes, bool]] = []
        self.bus.subscribe(bp.topic(core_id, "ack", console_id), lambda t, p, r: self.acks.append(bp.parse_ack(p)))
        self.bus.subscribe(bp.core_root(core_id) + "/#", lambda t, p, r: self.msgs.append((t, p, r)))

    async def start(self):
        self.task = asyncio.create_task(self.bus.run())
        await wait_for(lambda: self.bus.connected, what="console connect")
        return self

    async def close(self):
        await self.bus.close()
        await self.task

    async def send(self, verb, args=None, cid=None, raw: bytes | None = None) -> str:
        cid = cid or uuid.uuid4().hex
        cmd = bp.Command(id=cid, reply_to=bp.topic(self.core_id, "ack", self.console_id), sender=self.console_id,
                         args=args or {})
        await self.bus.publish(bp.topic(self.core_id, "cmd", verb), raw if raw is not None else cmd.dump())
        return cid

    def acks_for(self, cid):
        return [a for a in self.acks if a.id == cid]

    async def final(self, cid, timeout=10.0) -> bp.Ack:
        await wait_for(lambda: any(a.status != "accepted" for a in self.acks_for(cid)), timeout, f"final ack {cid}")
        return [a for a in self.acks_for(cid) if a.status != "accepted"][-1]

    def latest(self, kind, *rest):
        t = bp.topic(self.core_id, kind, *rest)
        hits = [p for (tt, p, r) in self.msgs if tt == t]
        return hits[-1] if hits else None

    def status(self) -> bp.Status | None:
        raw = self.latest("status")
        return bp.parse_status(raw) if raw else None

    def state(self) -> str | None:
        st = self.status()
        return st.state if st else None

    def of(self, kind, *rest):
        t = bp.topic(self.core_id, kind, *rest)
        return [p for (tt, p, r) in self.msgs if tt == t]


async def wait_for(pred, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def start_daemon(url, core_id, engine, store, creds=(None, None), **kw):
    bus = BusClient(url, f"core-{core_id}", will=will_for(core_id), username=creds[0], password=creds[1],
                    keepalive=5)
    bus.backoff_min, bus.backoff_max = 0.1, 0.3
    d = CoreDaemon(engine, bus, core_id, store, hardware_s=0.5, **kw)
    task = asyncio.create_task(d.run())
    await wait_for(lambda: bus.connected, timeout=30.0, what="core connect")  # a loaded 2-core CI machine
    return d, task
