"""Real brokers for the bus tests (no MQTT mocks).

* `Mosquitto`: a mosquitto process on a free loopback port with a config, password file and ACL
  written by looptool's own `write_mosquitto_config` (users core / operator / viewer). Stop and start
  it again on the same port to test reconnects. When mosquitto is not installed the tests that need
  it are skipped with a clear reason -- except under CI=true, where that is a failure.
* `ThreadedEmbeddedBroker`: looptool's embedded amqtt broker, run in its own thread and event loop so
  each test's `asyncio.run(...)` can talk to it. It admits only its users: `core_url` logs in as
  `core` (read-write), `url_as("viewer")` as the read-only viewer; `url` is host and port alone.
* `run_async(coro, timeout)`: asyncio.run with a hard timeout.
"""
from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from core.broker import EmbeddedBroker, free_port, wait_port, write_mosquitto_config


def require_mosquitto() -> str:
    exe = shutil.which("mosquitto")
    if exe is None:
        reason = "mosquitto is not installed (apt-get install mosquitto); .ci/run installs it"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but {reason}")
        pytest.skip(reason)
    return exe


class Mosquitto:
    def __init__(self, directory: Path, port: int | None = None, hashlib_passwords: bool = False):
        self.exe = require_mosquitto()
        self.port = port or free_port()
        self.dir = Path(directory)
        # as root in a throw-away test dir (0700 parents under /tmp/pytest-of-root) `user root` is the
        # documented CI choice; as a normal user mosquitto keeps that user
        self.files = write_mosquitto_config(self.dir, port=self.port, root_user=os.geteuid() == 0,
                                            use_mosquitto_passwd=not hashlib_passwords)
        self.creds = {}
        for role, path in self.files["credentials"].items():
            user, _, pw = Path(path).read_text().strip().partition(":")
            self.creds[role] = (user, pw)
        self.proc: subprocess.Popen | None = None
        self.log = self.dir / "mosquitto.log"

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> Mosquitto:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([self.exe, "-c", str(self.files["config"])], stdout=log,
                                         stderr=subprocess.STDOUT)
        if not wait_port("127.0.0.1", self.port, 10):
            self.stop()
            raise RuntimeError(f"mosquitto did not listen on {self.port}: {self.log.read_text()[-2000:]}")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


@pytest.fixture
def mosquitto(tmp_path):
    m = Mosquitto(tmp_path / "mosquitto").start()
    yield m
    m.stop()


class ThreadedEmbeddedBroker:
    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="amqtt", daemon=True)
        self.broker = EmbeddedBroker()
        self.url: str | None = None

    def start(self) -> ThreadedEmbeddedBroker:
        self.thread.start()
        self.url = asyncio.run_coroutine_threadsafe(self.broker.start(), self.loop).result(20)
        return self

    def url_as(self, role: str) -> str:
        user, password = self.broker.login(role)
        return f"mqtt://{user}:{password}@127.0.0.1:{self.broker.port}"

    @property
    def core_url(self) -> str:
        return self.url_as("core")

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.broker.stop(), self.loop).result(20)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module")
def embedded_broker():
    b = ThreadedEmbeddedBroker().start()
    yield b
    b.stop()


def run_async(coro, timeout: float = 30.0):
    async def guarded():
        return await asyncio.wait_for(coro, timeout)
    return asyncio.run(guarded())
