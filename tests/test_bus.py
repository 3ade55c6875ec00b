"""core/bus.py and core/broker.py against real brokers: mosquitto (started by the test with a config
from `write_mosquitto_config`) and the embedded amqtt broker."""
from __future__ import annotations

import asyncio
import os
import re
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from brokers import Mosquitto, ThreadedEmbeddedBroker, embedded_broker, mosquitto, run_async  # noqa: F401

from core import busproto as bp
from core.broker import acl_text, mosquitto_hash, write_mosquitto_config
from core.bus import BusClient, load_credentials, parse_url, resolve, topic_matches
from core.errors import UserError

ROOT = Path(__file__).resolve().parent.parent


# -- URL, credentials, matching ----------------------------------------------------------------------

def test_parse_url_forms_and_errors():
    b = parse_url("mqtt://127.0.0.1:1884")
    assert (b.host, b.port, b.username, b.password) == ("127.0.0.1", 1884, None, None)
    b = parse_url("mqtt://op%40x:p%3Ass@localhost")
    assert (b.host, b.port, b.username, b.password) == ("localhost", 1883, "op@x", "p:ss")
    assert b.url() == "mqtt://op@x@localhost:1883" and "p:ss" not in b.url()
    for bad, msg in [("localhost:1883", "not a broker URL"), ("tcp://h:1", "scheme 'tcp'"),
                     ("mqtt://:1883", "no host"), ("mqtt://h:99999", "out of range"),
                     ("mqtt://h:1883/x", "unexpected path")]:
        with pytest.raises(UserError, match=re.escape(msg)):
            parse_url(bad)


def test_credentials_file_env_and_url_precedence(tmp_path, monkeypatch):
    f = tmp_path / "creds"
    f.write_text("operator:s3cret\n")
    os.chmod(f, 0o644)
    with pytest.raises(UserError, match="must not be readable by others.*chmod 600"):
        load_credentials(f)
    os.chmod(f, 0o600)
    assert load_credentials(f) == ("operator", "s3cret")
    monkeypatch.setenv("LOOPTOOL_MQTT_USER", "envuser")
    monkeypatch.setenv("LOOPTOOL_MQTT_PASSWORD", "envpw")
    assert resolve("mqtt://u:p@h:1").username == "envuser"
    r = resolve("mqtt://u:p@h:1", str(f))
    assert (r.username, r.password) == ("operator", "s3cret")
    monkeypatch.delenv("LOOPTOOL_MQTT_USER")
    monkeypatch.delenv("LOOPTOOL_MQTT_PASSWORD")
    f.write_text("a:b\nc:d\n")
    with pytest.raises(UserError, match=r"creds:1: expected one line"):
        load_credentials(f)
    with pytest.raises(UserError, match="cannot read broker credentials"):
        load_credentials(tmp_path / "missing")


def test_topic_matching():
    assert topic_matches("looptool/v1/+/online", "looptool/v1/c1/online")
    assert not topic_matches("looptool/v1/+/online", "looptool/v1/c1/status")
    assert topic_matches("looptool/v1/c1/cmd/#", "looptool/v1/c1/cmd/pause")
    assert topic_matches("looptool/#", "looptool")
    assert not topic_matches("looptool/v1/c1/cmd/+", "looptool/v1/c1/cmd/a/b")


def test_only_core_bus_imports_aiomqtt():
    offenders = []
    for pkg in ("core", "evals", "console"):
        for f in (ROOT / pkg).rglob("*.py"):
            if f == ROOT / "core" / "bus.py":
                continue
            if re.search(r"^\s*(import aiomqtt|from aiomqtt)", f.read_text(), re.M):
                offenders.append(str(f.relative_to(ROOT)))
    assert offenders == []


# -- client behaviour on the embedded broker ------------------------------------------------------

async def _wait(pred, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def test_embedded_broker_listens_on_loopback_only(embedded_broker):
    import psutil

    port = int(embedded_broker.url.rsplit(":", 1)[1])
    listening = [c.laddr for c in psutil.net_connections("tcp") if c.status == "LISTEN" and c.laddr.port == port]
    assert listening and all(a.ip == "127.0.0.1" for a in listening), listening


def test_publish_nowait_queues_while_disconnected_and_drops_oldest(embedded_broker):
    async def main():
        got = []
        sub = BusClient(embedded_broker.core_url, "t-sub", keepalive=5)
        sub.subscribe("looptool/v1/q/metrics/#", lambda t, p, r: got.append(p))
        sub_task = asyncio.create_task(sub.run())
        await _wait(lambda: sub.connected, what="subscriber")
        pub = BusClient(embedded_broker.core_url, "t-pub", queue_size=3, keepalive=5)
        t0 = time.monotonic()
        for i in range(5):  # not running yet: nothing can be sent, nothing blocks, nothing raises
            pub.publish_nowait("looptool/v1/q/metrics/train", str(i).encode())
        assert time.monotonic() - t0 < 0.05 and pub.dropped == 2
        pub_task = asyncio.create_task(pub.run())
        await _wait(lambda: len(got) == 3, what="the 3 queued messages")
        assert got == [b"2", b"3", b"4"]
        await pub.close()
        await sub.close()
        await asyncio.gather(pub_task, sub_task)
    run_async(main())


def test_retained_state_reaches_a_late_subscriber_and_handlers_may_be_async(embedded_broker):
    async def main():
        a = BusClient(embedded_broker.core_url, "t-a", keepalive=5)
        a_task = asyncio.create_task(a.run())
        await asyncio.wait_for(a.publish("looptool/v1/r/status", b'{"x":1}', retain=True), 10)
        got = []

        async def handler(topic, payload, retained):
            got.append((topic, payload, retained))
        b = BusClient(embedded_broker.core_url, "t-b", keepalive=5)
        b.subscribe("looptool/v1/r/#", handler)
        b_task = asyncio.create_task(b.run())
        await _wait(lambda: got, what="retained status")
        assert got[0] == ("looptool/v1/r/status", b'{"x":1}', True)
        await a.publish("looptool/v1/r/status", b"", retain=True)  # clear it
        for c in (a, b):
            await c.close()
        await asyncio.gather(a_task, b_task)
    run_async(main())


def test_a_failing_handler_does_not_stop_the_client(embedded_broker):
    async def main():
        got = []

        def bad(t, p, r):
            raise RuntimeError("handler bug")
        c = BusClient(embedded_broker.core_url, "t-h", keepalive=5)
        c.subscribe("looptool/v1/h/#", bad)
        c.subscribe("looptool/v1/h/#", lambda t, p, r: got.append(p))
        task = asyncio.create_task(c.run())
        await _wait(lambda: c.connected)
        for i in range(3):
            await c.publish("looptool/v1/h/x", str(i).encode())
        await _wait(lambda: len(got) == 3, what="3 messages despite the failing handler")
        await c.close()
        await task
    run_async(main())


# -- mosquitto: auth, ACL, reconnect -------------------------------------------------------------

def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    from core.broker import free_port

    return free_port()


async def _client(m: Mosquitto, role: str | None, cid: str, **kw) -> tuple[BusClient, asyncio.Task]:
    user, pw = m.creds[role] if role else (None, None)
    c = BusClient(m.url, cid, username=user, password=pw, keepalive=5, **kw)
    c.backoff_min, c.backoff_max = 0.1, 0.3
    return c, asyncio.create_task(c.run())


def test_mosquitto_refuses_anonymous_and_wrong_passwords(mosquitto):
    async def main():
        anon, t1 = await _client(mosquitto, None, "t-anon")
        bad = BusClient(mosquitto.url, "t-bad", username="operator", password="wrong", keepalive=5)
        t2 = asyncio.create_task(bad.run())
        good, t3 = await _client(mosquitto, "viewer", "t-good")
        await _wait(lambda: good.connected, what="viewer connect")
        await _wait(lambda: anon.last_error and bad.last_error, what="refusals")
        assert not anon.connected and not bad.connected
        assert "not authori" in anon.last_error.lower() and "not authori" in bad.last_error.lower()
        for c in (anon, bad, good):
            await c.close()
        await asyncio.gather(t1, t2, t3)
    run_async(main())


def test_acl_viewer_cannot_command_but_operator_can(mosquitto):
    """MQTT 3.1.1 denies silently: the viewer's QoS 1 publish 'succeeds', nobody receives it."""
    async def main():
        got = []
        core, t1 = await _client(mosquitto, "core", "t-core")
        core.subscribe("looptool/v1/c1/cmd/#", lambda t, p, r: got.append(p))
        viewer, t2 = await _client(mosquitto, "viewer", "t-viewer")
        op, t3 = await _client(mosquitto, "operator", "t-op")
        await _wait(lambda: core.connected and viewer.connected and op.connected)
        await viewer.publish("looptool/v1/c1/cmd/stop", b"from-viewer")
        await op.publish("looptool/v1/c1/cmd/pause", b"from-operator")
        await _wait(lambda: got, what="operator command")
        await asyncio.sleep(0.3)
        assert got == [b"from-operator"]
        # the operator may not write state topics either
        seen = []
        core.subscribe("looptool/v1/c1/status", lambda t, p, r: seen.append(p))
        await asyncio.sleep(0.2)
        await op.publish("looptool/v1/c1/status", b"forged")
        await core.publish("looptool/v1/c1/status", b"real")
        await _wait(lambda: seen, what="core status")
        await asyncio.sleep(0.3)
        assert seen == [b"real"]
        for c in (core, viewer, op):
            await c.close()
        await asyncio.gather(t1, t2, t3)
    run_async(main())


def test_client_reconnects_and_resubscribes_after_broker_restart(mosquitto):
    async def main():
        events, got = [], []
        sub, t1 = await _client(mosquitto, "viewer", "t-re-sub")
        sub.on_connection(events.append)
        sub.subscribe("looptool/v1/re/#", lambda t, p, r: got.append(p))
        await _wait(lambda: sub.connected)
        mosquitto.stop()
        await _wait(lambda: not sub.connected, what="disconnect seen")
        assert events == [True, False]
        await asyncio.sleep(0.5)  # a few failed reconnect attempts
        mosquitto.start()
        await _wait(lambda: sub.connected, timeout=15, what="reconnect")
        pub, t2 = await _client(mosquitto, "core", "t-re-pub")
        await _wait(lambda: pub.connected)
        await pub.publish("looptool/v1/re/events", b"after-restart")
        await _wait(lambda: got == [b"after-restart"], what="message after resubscribe")
        assert events[-1] is True and events.count(True) >= 2
        for c in (sub, pub):
            await c.close()
        await asyncio.gather(t1, t2)
    run_async(main(), timeout=40)


def test_publish_nowait_survives_a_broker_outage(mosquitto):
    async def main():
        got = []
        pub, t1 = await _client(mosquitto, "core", "t-out-pub")
        await _wait(lambda: pub.connected)
        mosquitto.stop()
        await _wait(lambda: not pub.connected)
        t0 = time.monotonic()
        for i in range(100):
            pub.publish_nowait("looptool/v1/out/events", str(i).encode(), qos=1)
        assert time.monotonic() - t0 < 0.1
        # The publisher keeps retrying (every <= 0.3 s). Messages published before the subscriber's
        # subscription exists reach nobody (MQTT keeps no queue for a topic), so the publisher retries
        # a closed port until the subscriber is in: `connected` is set after the broker's SUBACK.
        port, pub.port = pub.port, _closed_port()
        mosquitto.start()
        sub, t2 = await _client(mosquitto, "viewer", "t-out-sub")
        sub.subscribe("looptool/v1/out/#", lambda t, p, r: got.append(int(p)))
        await _wait(lambda: sub.connected, what="subscriber")
        assert not pub.connected
        pub.port = port
        await _wait(lambda: pub.connected, timeout=15, what="publisher reconnect")
        await _wait(lambda: len(got) == 100, what="queued messages delivered")
        assert got == list(range(100))
        for c in (pub, sub):
            await c.close()
        await asyncio.gather(t1, t2)
    run_async(main(), timeout=40)


# -- mosquitto config writer ------------------------------------------------------------------------

def test_config_writer_files_modes_and_acl(tmp_path):
    out = write_mosquitto_config(tmp_path / "b", port=18999, persistence=True, passwords={"core": "given-pw"})
    conf = out["config"].read_text()
    assert "listener 18999 127.0.0.1" in conf and "allow_anonymous false" in conf
    assert f"password_file {out['passwd']}" in conf and f"acl_file {out['acl']}" in conf
    assert "persistence true" in conf and "log_dest stderr" in conf
    for p in (out["passwd"], out["acl"], *out["credentials"].values()):
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
    assert out["credentials"]["core"].read_text() == "core:given-pw\n"
    pw = out["passwd"].read_text()
    assert "given-pw" not in pw and all(re.search(rf"^{r}:\$7\$101\$", pw, re.M) for r in ("core", "operator", "viewer"))
    acl = out["acl"].read_text()
    assert acl == acl_text()
    assert "user viewer\ntopic read looptool/#\n" in acl and acl.count("topic write") == 2
    if os.geteuid() == 0:
        import pwd
        try:
            uid = pwd.getpwnam("mosquitto").pw_uid
        except KeyError:
            uid = None
        if uid is not None:  # the run-as-root gotcha: the broker user must read these
            assert out["passwd"].stat().st_uid == uid and out["acl"].stat().st_uid == uid


def test_hashlib_password_hash_format():
    h = mosquitto_hash("pw", salt=b"0123456789ab")
    assert h.startswith("$7$101$MDEyMzQ1Njc4OWFi$") and len(h.split("$")[-1]) == 88


def test_real_mosquitto_accepts_hashlib_passwords(tmp_path):
    """Our PBKDF2-SHA512 `$7$` hashes (no mosquitto_passwd) are accepted by mosquitto itself."""
    m = Mosquitto(tmp_path / "hl", hashlib_passwords=True)
    assert m.files["hashed_with"] == "hashlib"
    m.start()
    try:
        async def main():
            c, t = await _client(m, "operator", "t-hl")
            await _wait(lambda: c.connected or c.last_error, what="connect")
            assert c.connected, c.last_error
            await c.close()
            await t
        run_async(main())
    finally:
        m.stop()


def test_broker_config_cli_prints_paths_not_passwords(tmp_path):
    pwf = tmp_path / "core.pw"
    pwf.write_text("core-secret-pw\n")
    r = subprocess.run([sys.executable, "-m", "console.cli", "broker", "config", str(tmp_path / "d"),
                        "--port", "18777", "--core-password-file", str(pwf)],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "core-secret-pw" not in r.stdout + r.stderr
    assert "credentials/core" in r.stdout and "mosquitto -c" in r.stdout
    for role in ("operator", "viewer"):
        secret = (tmp_path / "d" / "credentials" / role).read_text().split(":", 1)[1].strip()
        assert secret and secret not in r.stdout
    r = subprocess.run([sys.executable, "-m", "console.cli", "broker", "config", str(tmp_path / "e"),
                        "--port", "0"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.startswith("error: --port 0")
