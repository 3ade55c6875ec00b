"""Who may use the brokers: the embedded amqtt broker admits only the core's users (its passwords in
0600 files under $LOOPTOOL_HOME that `looptool console` reads), a read-only client cannot command the
core, and `looptool broker config` keeps passwords and the directory's mode on a re-run and never puts
a password on a command line. Real brokers, real aiomqtt clients, real `looptool` processes."""
from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from brokers import Mosquitto, embedded_broker, run_async  # noqa: F401
from daemon_client import Console, start_daemon, wait_for
from test_daemon import FakeEngine

import core.broker
from core import busproto as bp
from core.broker import EmbeddedBroker, embedded_credentials_path, write_mosquitto_config
from core.bus import BusClient, load_credentials
from core.store import ResultStore

ROOT = Path(__file__).resolve().parent.parent


async def _connect(url: str, user: str | None, password: str | None, cid: str) -> BusClient:
    """A client that has either connected or been refused."""
    c = BusClient(url, cid, username=user, password=password, keepalive=5)
    c.backoff_min = c.backoff_max = 5.0  # one attempt within the test
    c.task = asyncio.create_task(c.run())
    await wait_for(lambda: c.connected or c.last_error, what=f"{cid} connect or refusal")
    return c


async def _close(*clients: BusClient) -> None:
    for c in clients:
        await c.close()
        await asyncio.gather(c.task, return_exceptions=True)


# -- the embedded broker ------------------------------------------------------------------------------

def test_embedded_broker_refuses_clients_without_the_cores_credentials(embedded_broker):
    _, core_pw = embedded_broker.broker.login("core")
    _, viewer_pw = embedded_broker.broker.login("viewer")

    async def main():
        clients = [await _connect(embedded_broker.url, user, pw, cid) for user, pw, cid in [
            (None, None, "t-anonymous"), ("core", "wrong", "t-wrong"), ("nobody", core_pw, "t-nobody"),
            ("viewer", core_pw, "t-swapped"), ("core", core_pw, "t-core"), ("viewer", viewer_pw, "t-viewer")]]
        refused = {c.client_id: c.last_error for c in clients if not c.connected}
        assert sorted(refused) == ["t-anonymous", "t-nobody", "t-swapped", "t-wrong"], refused
        assert all("not authori" in why.lower() for why in refused.values()), refused
        await _close(*clients)
    run_async(main())


def test_read_only_client_cannot_command_the_core(embedded_broker, tmp_path):
    """ACL denials are silent in MQTT 3.1.1: the viewer's publishes 'succeed' and the core never sees
    them (no ack, no audit row, the run goes on); the viewer still reads the core's state."""
    store = ResultStore(tmp_path / "db.json")

    async def main():
        eng = FakeEngine()
        d, task = await start_daemon(embedded_broker.core_url, "ro1", eng, store)
        op = await Console(embedded_broker.core_url, "ro1", "op1").start()  # sees every cmd/ topic too
        viewer = await Console(embedded_broker.url_as("viewer"), "ro1", "view1").start()
        await wait_for(lambda: viewer.latest("status") is not None, what="the viewer reads status")
        denied = [await viewer.send(verb) for verb in ("pause", "stop", "history")]
        assert (await op.final(await op.send("history", {"table": "audit"}))).status == "done"
        assert viewer.acks == [] and not eng.state["paused"] and not task.done()
        passed_on = [p for c in (op, viewer) for t, p, _ in c.msgs if "/cmd/" in t and json.loads(p)["id"] in denied]
        assert passed_on == []  # the broker dropped them: no subscriber got one
        assert (await op.final(await op.send("stop"))).status == "done"
        assert await asyncio.wait_for(task, 10) == "stopped"
        for c in (viewer, op):
            await c.close()
    run_async(main(), timeout=40)
    senders = sorted((doc["verb"], doc["sender"]) for doc in store.get_docs("audit"))
    store.close()
    assert senders == [("history", "op1"), ("stop", "op1")]


def test_embedded_broker_credentials_files_are_private_and_go_with_it():
    async def main():
        broker = EmbeddedBroker(core_id="files1")
        await broker.start()
        paths = {role: embedded_credentials_path("files1", role) for role in ("core", "viewer")}
        try:
            for role, path in paths.items():
                assert stat.S_IMODE(path.stat().st_mode) == 0o600
                assert load_credentials(path) == broker.login(role)
            assert not [p for p in paths["core"].parent.iterdir() if p.name.endswith(".tmp")]
            c = await _connect(broker.url, *load_credentials(paths["viewer"]), "t-from-file")
            assert c.connected, c.last_error
            await _close(c)
        finally:
            await broker.stop()
        assert not any(p.exists() for p in paths.values())
    run_async(main())


def _env(home: Path) -> dict:
    return {**os.environ, "LOOPTOOL_HOME": str(home), "PYTHONPATH": str(ROOT)}


def test_looptool_core_embedded_broker_end_to_end(tmp_path):
    """`looptool core` on its embedded broker: anonymous clients (the `nobody` of the report) are
    refused, the viewer credentials read but cannot stop it, the core credentials can."""
    home = tmp_path / "home"
    cid = f"e2e-{uuid.uuid4().hex[:6]}"
    proc = subprocess.Popen([sys.executable, "-m", "console.cli", "core", "--config",
                             str(ROOT / "tests" / "data" / "tiny-run.toml"), "--core-id", cid, "--paused"],
                            cwd=ROOT, env=_env(home), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        disc = home / "cores" / f"{cid}.json"

        async def main():
            await wait_for(lambda: disc.exists() or proc.poll() is not None, timeout=90, what="discovery file")
            assert proc.poll() is None, proc.stdout.read()
            doc = json.loads(disc.read_text())
            assert doc["embedded_broker"] and "@" not in doc["url"]
            files = {role: home / "cores" / f"{cid}.{role}.credentials" for role in ("core", "viewer")}
            for path in files.values():
                assert stat.S_IMODE(path.stat().st_mode) == 0o600
            anon = await _connect(doc["url"], None, None, "t-nobody")
            assert not anon.connected and "not authori" in anon.last_error.lower()
            viewer = await Console(doc["url"], cid, "view2", creds=load_credentials(files["viewer"])).start()
            await wait_for(lambda: viewer.state() == "paused", timeout=30, what="the paused core's status")
            await viewer.send("stop")
            op = await Console(doc["url"], cid, "op2", creds=load_credentials(files["core"])).start()
            a = await op.final(await op.send("history", {"table": "audit"}))
            assert a.status == "done" and a.result["rows"] == [] and proc.poll() is None
            assert (await op.final(await op.send("stop"), timeout=20)).status == "done"
            await _close(anon)
            for c in (viewer, op):
                await c.close()
            return files
        files = run_async(main(), timeout=150)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, out
        assert not any(p.exists() for p in files.values())  # a clean exit takes them away
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_console_without_readable_credentials_says_which_file(tmp_path):
    """A local core with an embedded broker whose credentials file is missing or open to others: one
    `error:` line naming the file the console's mode needs, exit 2."""
    cores = tmp_path / "cores"
    cores.mkdir()
    (cores / "gpu7.json").write_text(json.dumps({"core_id": "gpu7", "url": "mqtt://127.0.0.1:1", "pid": os.getpid(),
                                                 "embedded_broker": True}))

    def console(*args):
        return subprocess.run([sys.executable, "-m", "console.cli", "console", *args], cwd=ROOT, env=_env(tmp_path),
                              capture_output=True, text=True, timeout=120)

    for args, role in (((), "core"), (("--read-only",), "viewer")):
        r = console(*args)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert r.stderr.startswith(f"error: {cores / f'gpu7.{role}.credentials'}: cannot read broker credentials")
    f = cores / "gpu7.viewer.credentials"
    f.write_text("viewer:pw\n")
    os.chmod(f, 0o644)
    r = console("--read-only")
    assert r.returncode == 2 and r.stderr.startswith(f"error: {f}: broker credentials must not be readable by others")


# -- `looptool broker config` -------------------------------------------------------------------------

def _secrets(files: dict) -> dict[str, str]:
    return {role: load_credentials(path)[1] for role, path in files["credentials"].items()}


def test_broker_config_rerun_keeps_passwords_and_a_real_mosquitto_takes_them(tmp_path):
    first = Mosquitto(tmp_path / "m")
    again = Mosquitto(tmp_path / "m", port=first.port)  # the same DIR written a second time
    assert first.files["password_source"] == {"core": "new", "operator": "new", "viewer": "new"}
    assert again.files["password_source"] == {"core": "kept", "operator": "kept", "viewer": "kept"}
    assert again.creds == first.creds and again.files["hashed_with"] == "mosquitto_passwd"
    again.start()
    try:
        async def main():
            c = await _connect(again.url, *first.creds["operator"], "t-kept")
            assert c.connected, c.last_error
            await _close(c)
        run_async(main())
    finally:
        again.stop()
    rotated = write_mosquitto_config(tmp_path / "m", port=first.port, rotate=True, root_user=True)
    assert set(rotated["password_source"].values()) == {"new"}
    assert not set(_secrets(rotated).values()) & {pw for _, pw in first.creds.values()}


def test_broker_config_never_loosens_the_directorys_mode(tmp_path):
    d = tmp_path / "private"
    d.mkdir(mode=0o700)
    os.chmod(d, 0o700)
    for _ in range(2):
        out = write_mosquitto_config(d, port=18555)  # as root: the files are handed to user mosquitto
        assert stat.S_IMODE(d.stat().st_mode) == 0o700
    assert stat.S_IMODE((d / "credentials").stat().st_mode) == 0o700
    if os.geteuid() == 0 and out["owner_note"] and "chowned" in out["owner_note"]:
        assert f"{d} (mode 700) does not let it reach them" in out["owner_note"]


def test_broker_config_puts_no_password_on_any_argv(tmp_path, monkeypatch):
    """Every command line the writer runs (mosquitto_passwd, for real) is recorded: none holds a password."""
    argvs = []
    real_run = subprocess.run

    def recording_run(args, *a, **kw):
        argvs.append(list(args))
        return real_run(args, *a, **kw)

    monkeypatch.setattr(core.broker.subprocess, "run", recording_run)
    out = write_mosquitto_config(tmp_path / "b", port=18556, passwords={"core": "given-core-pw"}, root_user=True)
    assert out["hashed_with"] == "mosquitto_passwd" and argvs and argvs[0][1] == "-U"
    secret = _secrets(out)
    assert secret["core"] == "given-core-pw"
    assert not [arg for argv in argvs for arg in argv for pw in secret.values() if pw in arg], argvs
    passwd = out["passwd"].read_text()
    assert not [pw for pw in secret.values() if pw in passwd]
    assert sorted(line.split(":")[0] for line in passwd.splitlines()) == ["core", "operator", "viewer"]


def test_broker_config_cli_says_what_it_did_with_the_passwords(tmp_path):
    def broker_config(*args):
        return subprocess.run([sys.executable, "-m", "console.cli", "broker", "config", str(tmp_path / "d"),
                               "--port", "18557", "--root-user", *args], cwd=ROOT, capture_output=True, text=True,
                              timeout=60)

    r = broker_config()
    assert r.returncode == 0, r.stderr
    assert "core, operator, viewer: new" in r.stdout
    before = (tmp_path / "d" / "credentials" / "viewer").read_text()
    r = broker_config()
    assert r.returncode == 0 and "core, operator, viewer: kept" in r.stdout, r.stdout + r.stderr
    assert (tmp_path / "d" / "credentials" / "viewer").read_text() == before
    r = broker_config("--rotate")
    assert r.returncode == 0 and "core, operator, viewer: new" in r.stdout
    assert (tmp_path / "d" / "credentials" / "viewer").read_text() != before
    os.chmod(tmp_path / "d" / "credentials" / "core", 0o644)  # a kept file that is not private: say so
    r = broker_config()
    assert r.returncode == 2 and r.stderr.startswith("error: ") and "credentials/core" in r.stderr
    r = subprocess.run([sys.executable, "-m", "console.cli", "broker", "config", str(tmp_path / "e"), "--port", "0"],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.startswith("error: --port 0")
    assert not (tmp_path / "e").exists()  # nothing half-written


@pytest.mark.parametrize("bad", ["operator:pw\n", "core\n"])
def test_broker_config_rejects_a_kept_credentials_file_of_another_shape(tmp_path, bad):
    from core.errors import UserError

    write_mosquitto_config(tmp_path / "d", port=18558, root_user=True, use_mosquitto_passwd=False)
    f = tmp_path / "d" / "credentials" / "core"
    f.write_text(bad)
    with pytest.raises(UserError, match=rf"{f}:1: expected `core:password`"):
        write_mosquitto_config(tmp_path / "d", port=18558, root_user=True, use_mosquitto_passwd=False)
    assert f.read_text() == bad  # nothing rewritten
