"""The daemon with the real engine and as a `looptool core` process on real brokers: a paused Engine
serving evals and history, a SIGKILLed core going offline through its last will, SIGTERM, bad bus options."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from brokers import embedded_broker, mosquitto, run_async  # noqa: F401
from daemon_client import Console, start_daemon, wait_for

from core import busproto as bp
from core.discovery import live_discovery
from core.store import ResultStore

ROOT = Path(__file__).resolve().parent.parent


# -- the real engine, paused before its first stage -------------------------------------------------

def fake_eval_job(cfg_text, run_dir, iteration, args, queue, stop):
    """Stands in for core.eval_job.run_eval_job in a spawned process (no model on the test machine)."""
    for i in range(1, 4):
        queue.put(("progress", {"stage": "eval", "iteration": iteration, "done": i, "total": 3, "on_demand": True}))
    queue.put(("done", {"eval_id": f"bfcl-job{iteration}", "benchmark": "bfcl-v3", "iteration": iteration,
                        "scores": {"overall": 0.5}, "started_at": "2026-02-02T00:00:00",
                        "subset": args.get("subset")}))


def test_real_engine_paused_serves_evals_and_history(embedded_broker, tmp_path, monkeypatch):
    import core.benchmarks
    from core.config import parse
    from core.engine import Engine

    # a core where ACEBench is not installed (not in the benchmark registry) fails such requests clearly
    bfcl_only = {"bfcl": core.benchmarks.get("bfcl")}
    monkeypatch.setattr(core.benchmarks, "registry", lambda: bfcl_only)

    store = ResultStore(tmp_path / "db.json")
    text = (ROOT / "tests" / "data" / "tiny-run.toml").read_text()
    engine = Engine(parse(text, "tiny-run.toml"), f"tiny-bus-{uuid.uuid4().hex[:6]}", store=store)
    engine.eval_job_target = fake_eval_job
    engine.pause()

    async def main():
        d, task = await start_daemon(embedded_broker.core_url, "real1", engine, store)
        con = await Console(embedded_broker.core_url, "real1").start()
        await wait_for(lambda: con.state() == "paused")
        a = await con.final(await con.send("eval", {"benchmark": "acebench"}))
        assert a.status == "failed" and "unknown benchmark 'acebench'; choose from bfcl" in a.detail
        a = await con.final(await con.send("eval", {"iteration": 2}))
        assert a.status == "failed" and "iteration 2 has no trained policy yet" in a.detail
        a = await con.final(await con.send("eval", {"subset": "simple_python"}), timeout=60)
        assert a.status == "done" and a.result["eval_id"] == "bfcl-job0" and a.result["iteration"] == 0
        assert any(json.loads(p).get("state") == "evaluating" for p in con.of("status"))
        a = await con.final(await con.send("history", {"table": "evals", "run_id": engine.run_id}))
        assert [r["eval_id"] for r in a.result["rows"]] == ["bfcl-job0"]
        a = await con.final(await con.send("history", {"table": "runs"}))
        assert [r["run_id"] for r in a.result["rows"]] == [engine.run_id]
        await wait_for(lambda: con.state() == "paused", what="paused again")
        a = await con.final(await con.send("stop"), timeout=15)
        assert a.result == {"state": "stopped"}
        assert await asyncio.wait_for(task, 15) == "stopped"
        await con.close()
    run_async(main(), timeout=90)
    assert store.get_eval("bfcl-job0")["run_id"] == engine.run_id
    store.close()


def _core_proc(url: str, creds_file: str, core_id: str, *extra) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "console.cli", "core", "--config",
                             str(ROOT / "tests" / "data" / "tiny-run.toml"), "--broker", url,
                             "--broker-credentials", creds_file, "--core-id", core_id, "--paused", *extra],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_killed_core_goes_offline_through_its_last_will(mosquitto):
    proc = _core_proc(mosquitto.url, str(mosquitto.files["credentials"]["core"]), "kill1")
    try:
        async def main():
            con = await Console(mosquitto.url, "kill1", creds=mosquitto.creds["viewer"]).start()
            await wait_for(lambda: con.latest("online") == b"true" and con.latest("status"), timeout=60,
                           what="core online with its status")
            doc = live_discovery("kill1")
            assert doc and doc["pid"] == proc.pid and doc["url"] == mosquitto.url  # no password in it
            assert bp.parse_status(con.latest("status")).state == "paused"
            t0 = time.monotonic()
            os.kill(proc.pid, signal.SIGKILL)
            await wait_for(lambda: con.latest("online") == b"false", timeout=10, what="last will")
            assert time.monotonic() - t0 < 5  # the socket closes: no keepalive wait
            assert live_discovery("kill1") is None
            await con.close()
        run_async(main(), timeout=90)
    finally:
        proc.kill()
        proc.wait()


def test_sigterm_exits_cleanly_offline_and_removes_discovery(mosquitto):
    proc = _core_proc(mosquitto.url, str(mosquitto.files["credentials"]["core"]), "term1")
    try:
        async def main():
            con = await Console(mosquitto.url, "term1", creds=mosquitto.creds["viewer"]).start()
            await wait_for(lambda: con.latest("online") == b"true", timeout=60, what="core online")
            proc.send_signal(signal.SIGTERM)
            await wait_for(lambda: con.latest("online") == b"false", timeout=20, what="offline")
            await wait_for(lambda: con.state() == "stopped", what="stopped")
            await con.close()
        run_async(main(), timeout=90)
        out, _ = proc.communicate(timeout=20)
        assert proc.returncode == 0, out
        assert "continue it with: looptool core --resume" in out
        from core.discovery import discovery_dir
        assert not (discovery_dir() / "term1.json").exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_looptool_stop_ends_a_core_on_this_host(mosquitto, tmp_path):
    proc = _core_proc(mosquitto.url, str(mosquitto.files["credentials"]["core"]), "stop1")
    try:
        deadline = time.monotonic() + 60
        while (doc := live_discovery("stop1")) is None:
            assert proc.poll() is None and time.monotonic() < deadline, "core did not come up"
            time.sleep(0.2)
        out = subprocess.run([sys.executable, "-m", "console.cli", "stop", "--core-id", "stop1"], cwd=ROOT,
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert out.stdout.splitlines() == [f"core stop1: asked to stop (pid {proc.pid}, run "
                                           f"{doc.get('run_id') or '?'})", "core stop1: stopped"]
        assert proc.wait(timeout=30) == 0
        assert live_discovery("stop1") is None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    env = {**os.environ, "LOOPTOOL_HOME": str(tmp_path)}  # nothing running there
    out = subprocess.run([sys.executable, "-m", "console.cli", "stop"], cwd=ROOT, capture_output=True,
                         text=True, env=env, timeout=60)
    assert out.returncode == 2 and out.stderr.startswith("error: "), out.stderr


@pytest.mark.parametrize("args, needle", [
    (["--broker", "tcp://127.0.0.1:1883"], "error: --broker: 'tcp://127.0.0.1:1883': scheme 'tcp' is not supported"),
    (["--broker-credentials", "/nonexistent"], "error: --broker-credentials needs --broker"),
    (["--broker", "mqtt://127.0.0.1:1", "--broker-credentials", "/nonexistent"],
     "error: /nonexistent: cannot read broker credentials"),
    (["--core-id", "console"], "error: --core-id: core id 'console'"),
    (["--core-id", "a/b"], "error: --core-id: core id 'a/b'"),
    (["--no-bus", "--stay"], "error: --no-bus runs without a bus"),
])
def test_core_cli_bad_bus_options(args, needle):
    r = subprocess.run([sys.executable, "-m", "console.cli", "core", "--config",
                        str(ROOT / "tests" / "data" / "tiny-run.toml"), *args],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and r.stderr.startswith(needle), r.stderr
