"""The MQTT client: the only module that imports aiomqtt (pinned `aiomqtt>=2.5,<3`, MQTT 3.1.1).

`BusClient` wraps one aiomqtt connection with what both the core daemon and the console need:

* `run()` is the connect loop: exponential backoff with jitter, and every (re)connect re-subscribes
  every pattern given to `subscribe()` (clean sessions lose subscriptions) and calls the
  `on_connection` hooks, so the core republishes its retained `online`/`status` when a broker returns.
* `publish_nowait()` never blocks and never raises: telemetry goes into a bounded drop-oldest queue
  that a publisher task drains while connected. Nothing on a stage's path ever awaits the broker.
* `publish()` waits for the broker (PUBACK at QoS 1) and raises `BusError` when it cannot.

Credentials: `mqtt://user:pass@host:port` works, but a password on the command line shows in `ps`;
prefer the environment (LOOPTOOL_MQTT_USER / LOOPTOOL_MQTT_PASSWORD) or a 0600 file of
`user:password` (`--broker-credentials FILE`, see `load_credentials`).
"""
from __future__ import annotations

import asyncio
import collections
import inspect
import logging
import os
import random
import stat
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable
from urllib.parse import unquote, urlsplit

import aiomqtt

from core.errors import UserError

log = logging.getLogger("looptool.bus")

DEFAULT_PORT = 1883
ENV_USER = "LOOPTOOL_MQTT_USER"
ENV_PASSWORD = "LOOPTOOL_MQTT_PASSWORD"


class BusError(RuntimeError):
    """The broker could not be reached or refused a publish."""


@dataclass(frozen=True)
class BrokerURL:
    host: str
    port: int
    username: str | None = None
    password: str | None = None

    def url(self, with_password: bool = False) -> str:
        auth = ""
        if self.username:
            auth = self.username + (":" + self.password if with_password and self.password else "") + "@"
        return f"mqtt://{auth}{self.host}:{self.port}"


def parse_url(url: str, where: str = "--broker") -> BrokerURL:
    """`mqtt://[user[:pass]@]host[:port]` -> BrokerURL; UserError naming `where` otherwise."""
    if not isinstance(url, str) or "://" not in url:
        raise UserError(f"{where}: {url!r} is not a broker URL; use mqtt://host:port or mqtt://user:pass@host:port")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise UserError(f"{where}: {url!r}: {e}") from None
    if parts.scheme != "mqtt":
        raise UserError(f"{where}: {url!r}: scheme {parts.scheme!r} is not supported; use mqtt:// "
                        "(for a broker on another host, tunnel it: ssh -L 1883:127.0.0.1:1883 host)")
    if not parts.hostname:
        raise UserError(f"{where}: {url!r}: no host")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise UserError(f"{where}: {url!r}: unexpected path or query after host:port")
    return BrokerURL(parts.hostname, port or DEFAULT_PORT,
                     unquote(parts.username) if parts.username else None,
                     unquote(parts.password) if parts.password is not None else None)


def load_credentials(path: str | os.PathLike) -> tuple[str, str]:
    """A credentials file: one line `user:password` (or `password` alone, user then comes from the
    URL or env). It must not be readable by group or others, like an ssh key."""
    p = Path(path)
    try:
        mode = p.stat().st_mode
        text = p.read_text()
    except OSError as e:
        raise UserError(f"{p}: cannot read broker credentials ({e.strerror})") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise UserError(f"{p}: broker credentials must not be readable by others (chmod 600 {p})")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if len(lines) != 1:
        raise UserError(f"{p}:1: expected one line `user:password`, found {len(lines)} lines")
    user, sep, password = lines[0].partition(":")
    if not sep:
        return "", user
    if not user or not password:
        raise UserError(f"{p}:1: expected `user:password` with both parts non-empty")
    return user, password


def resolve(url: str, credentials_file: str | None = None, where: str = "--broker") -> BrokerURL:
    """The URL with credentials filled in: the file beats the environment, which beats the URL."""
    b = parse_url(url, where)
    user, password = b.username, b.password
    if os.environ.get(ENV_USER):
        user = os.environ[ENV_USER]
    if os.environ.get(ENV_PASSWORD):
        password = os.environ[ENV_PASSWORD]
    if credentials_file:
        fuser, fpass = load_credentials(credentials_file)
        user, password = fuser or user, fpass
    if password and not user:
        raise UserError(f"{where}: a password was given but no user (set {ENV_USER} or write user:password)")
    return BrokerURL(b.host, b.port, user, password)


def topic_matches(pattern: str, topic: str) -> bool:
    """MQTT filter matching: `+` one level, `#` the rest (including the parent level)."""
    p, t = pattern.split("/"), topic.split("/")
    for i, part in enumerate(p):
        if part == "#":
            return True
        if i >= len(t) or (part != "+" and part != t[i]):
            return False
    return len(p) == len(t)


Handler = Callable[[str, bytes, bool], Any]


class BusClient:
    def __init__(self, url: str, client_id: str, *, will: tuple[str, bytes] | None = None,
                 username: str | None = None, password: str | None = None, keepalive: int = 15,
                 queue_size: int = 1000):
        b = parse_url(url)
        self.host, self.port = b.host, b.port
        self.username = username if username is not None else b.username
        self.password = password if password is not None else b.password
        self.client_id = client_id
        self.will = will
        self.keepalive = keepalive
        self.queue_size = queue_size
        self.connected = False
        self.dropped = 0  # telemetry dropped because the queue was full
        self.last_error: str | None = None
        self._subs: list[tuple[str, Handler]] = []
        self._conn_hooks: list[Callable[[bool], Any]] = []
        self._queue: collections.deque = collections.deque(maxlen=queue_size)
        self._client: aiomqtt.Client | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._wake: asyncio.Event | None = None
        self._up: asyncio.Event | None = None
        self._run_task: asyncio.Task | None = None
        self._tasks: set[asyncio.Task] = set()
        self._closing = False
        self.backoff_min, self.backoff_max = 0.2, 10.0

    # -- registration (before or during run) -----------------------------------------------------

    def subscribe(self, pattern: str, handler: Handler) -> None:
        """handler(topic, payload, retained), sync (called in order) or async (run as a task).
        Kept across reconnects."""
        self._subs.append((pattern, handler))
        if self.connected and self._client is not None:
            self._spawn(self._subscribe_now(self._client, pattern))

    def on_connection(self, fn: Callable[[bool], Any]) -> None:
        """fn(connected) after each (re)connect and each loss; may be async."""
        self._conn_hooks.append(fn)

    # -- publishing ------------------------------------------------------------------------------

    def publish_nowait(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        try:
            if len(self._queue) == self._queue.maxlen:
                self.dropped += 1
            self._queue.append((topic, payload, qos, retain))
            self._poke()
        except Exception:  # never let telemetry hurt the caller
            log.exception("publish_nowait(%s)", topic)

    async def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        """Waits until connected and the broker took it; BusError on a disconnect meanwhile."""
        if self._closing:
            raise BusError("bus client is closed")
        if self._up is None:
            self._up = asyncio.Event()
        await self._up.wait()
        client = self._client
        if client is None:
            raise BusError("not connected")
        try:
            await client.publish(topic, payload=payload, qos=qos, retain=retain)
        except aiomqtt.MqttError as e:
            raise BusError(f"publish {topic}: {e}") from None

    async def drain(self, timeout_s: float) -> bool:
        """Wait, at most `timeout_s`, until what publish_nowait() queued has gone out; returns at once
        while disconnected. True when nothing is left queued."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while self._queue and self.connected and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)
        return not self._queue

    # -- lifecycle -------------------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, re-subscribe, dispatch; reconnect with backoff until close()."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._wake = self._wake or asyncio.Event()
        self._up = self._up or asyncio.Event()
        self._run_task = asyncio.current_task()
        if self._queue:
            self._wake.set()
        delay = self.backoff_min
        try:
            while not self._closing:
                will = None
                if self.will:
                    will = aiomqtt.Will(self.will[0], self.will[1], qos=1, retain=True)
                client = aiomqtt.Client(
                    self.host, self.port, username=self.username or None, password=self.password,
                    identifier=self.client_id, will=will, keepalive=self.keepalive,
                    protocol=aiomqtt.ProtocolVersion.V311, clean_session=True, timeout=10,
                    max_queued_incoming_messages=self.queue_size)
                publisher = None
                try:
                    async with client:
                        self._client = client
                        for pattern, _ in list(self._subs):
                            await client.subscribe(pattern, qos=1)
                        self._set_connected(True)
                        delay = self.backoff_min
                        publisher = asyncio.create_task(self._publisher(client))
                        async for msg in client.messages:
                            self._dispatch(msg.topic.value, _as_bytes(msg.payload), bool(msg.retain))
                except aiomqtt.MqttError as e:
                    self.last_error = str(e)
                    log.info("bus %s:%s: %s", self.host, self.port, e)
                finally:
                    self._client = None
                    if publisher is not None:
                        publisher.cancel()
                        await asyncio.gather(publisher, return_exceptions=True)
                    if self.connected:
                        self._set_connected(False)
                if self._closing:
                    break
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, self.backoff_max)
        except asyncio.CancelledError:
            if not self._closing:
                raise
        finally:
            self._client = None
            if self.connected:
                self._set_connected(False)

    async def close(self, drain_s: float = 1.0) -> None:
        """Stop run(). Queued messages get up to `drain_s` to go out; publishes nothing by itself
        (a clean DISCONNECT, so the broker does not send the last will)."""
        if self._closing:
            return
        if self.connected and self._queue and self._wake is not None:
            self._wake.set()
            deadline = asyncio.get_running_loop().time() + drain_s
            while self._queue and self.connected and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.02)
        self._closing = True
        task = self._run_task
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- internals -------------------------------------------------------------------------------

    def _poke(self) -> None:
        if self._wake is None or self._loop is None:
            return  # run() sets the event when it starts if anything is queued
        if threading.get_ident() == self._loop_thread:
            self._wake.set()
        else:
            self._loop.call_soon_threadsafe(self._wake.set)

    async def _publisher(self, client: aiomqtt.Client) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            failures = 0
            while self._queue:
                item = self._queue[0]
                topic, payload, qos, retain = item
                try:
                    await client.publish(topic, payload=payload, qos=qos, retain=retain)
                except aiomqtt.MqttError as e:
                    # a lost connection cancels this task from run(); anything else: retry, then drop
                    failures += 1
                    if failures < 3:
                        await asyncio.sleep(0.2 * failures)
                        continue
                    log.error("dropping message on %r after %d tries: %s", topic, failures, e)
                except (ValueError, TypeError) as e:
                    log.error("dropping unpublishable message on %r: %s", topic, e)
                failures = 0
                if self._queue and self._queue[0] is item:
                    self._queue.popleft()

    async def _subscribe_now(self, client: aiomqtt.Client, pattern: str) -> None:
        try:
            await client.subscribe(pattern, qos=1)
        except aiomqtt.MqttError as e:
            log.info("subscribe %s: %s (retried on reconnect)", pattern, e)

    def _set_connected(self, up: bool) -> None:
        self.connected = up
        if self._up is not None:
            (self._up.set if up else self._up.clear)()
        for fn in list(self._conn_hooks):
            self._call(fn, up)

    def _dispatch(self, topic: str, payload: bytes, retained: bool) -> None:
        for pattern, handler in list(self._subs):
            if topic_matches(pattern, topic):
                self._call(handler, topic, payload, retained)

    def _call(self, fn, *args) -> None:
        try:
            res = fn(*args)
        except Exception:
            log.exception("bus handler %r failed", fn)
            return
        if inspect.isawaitable(res):
            self._spawn(res)

    def _spawn(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("bus handler task failed", exc_info=task.exception())


def _as_bytes(payload) -> bytes:
    if payload is None:
        return b""
    if isinstance(payload, (bytes, bytearray)):
        return bytes(payload)
    return str(payload).encode()
