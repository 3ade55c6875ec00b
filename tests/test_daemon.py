"""The core daemon on real brokers: commands and acks, telemetry, retained state, last will.

Most tests drive `CoreDaemon` with `FakeEngine`, which has the engine's interface (subscribe, pause,
resume, stop, run, request_eval, serve_evals, cancel_evals, state, run_id, cfg_text, cfg); the engine
itself is tested elsewhere. `test_real_engine_*` use the real Engine paused before its first stage,
and the kill test runs the real `looptool core` CLI in a subprocess.
"""
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
from types import SimpleNamespace

import pytest
from brokers import embedded_broker, mosquitto, run_async  # noqa: F401

from core import busproto as bp
from core.bus import BusClient
from core.daemon import CoreDaemon, will_for
from core.discovery import live_discovery
from core.store import ResultStore

ROOT = Path(__file__).resolve().parent.parent


class FakeEngine:
    """A core.engine.RunEngine without a loop: the run goes on until stop(); evals answer after `eval_s`."""

    def __init__(self, run_id="fake-run", eval_s=0.1, fail_eval=None):
        self.run_id, self.cfg_text = run_id, "[run]\nname = \"fake\"\niterations = 3\n"
        self.cfg = SimpleNamespace(run=SimpleNamespace(iterations=3))
        self.state = {"run_id": run_id, "state": "starting", "iteration": 0, "stage": None,
                      "paused": False, "progress": None, "seq": 0, "ts": time.time()}
        self.subs, self.evals, self.eval_s, self.fail_eval = [], [], eval_s, fail_eval
        self._stop = asyncio.Event()
        self.served = []

    def subscribe(self, fn):
        self.subs.append(fn)

    def emit(self, kind, data):
        if kind == "progress":
            self.state["progress"] = data
        for fn in self.subs:
            fn(kind, data)

    def _set(self, **kw):
        self.state.update(kw, seq=self.state["seq"] + 1, ts=time.time())
        self.emit("status", dict(self.state))

    def pause(self):
        if self.state["paused"] or self.state["state"] in ("stopped", "finished"):
            return False
        self._set(paused=True, state="paused")
        self.emit("event", {"event": "paused"})
        return True

    def resume(self):
        if not self.state["paused"]:
            return False
        self._set(paused=False, state="running")
        self.emit("event", {"event": "resumed"})
        return True

    def stop(self):
        self._stop.set()

    async def run(self):
        self._set(state="paused" if self.state["paused"] else "running", iteration=1, stage="train")
        await self._stop.wait()
        self._set(state="stopped", stage=None)
        return "stopped"

    def request_eval(self, benchmark="bfcl", subset=None, per_category=None, iteration=None):
        fut = asyncio.get_running_loop().create_future()
        self.evals.append(((benchmark, subset, per_category, iteration), fut))
        asyncio.get_running_loop().call_later(self.eval_s, self._answer, benchmark, iteration, fut)
        return fut

    def _answer(self, benchmark, iteration, fut):
        if fut.done():
            return
        self.served.append(benchmark)
        if self.fail_eval:
            fut.set_exception(RuntimeError(self.fail_eval))
        else:
            fut.set_result({"eval_id": "bfcl-abc123", "benchmark": "bfcl-v3", "iteration": iteration or 1,
                            "scores": {"overall": 0.25, "live": 0.5}, "per_category": {"simple": {"accuracy": 0.5}},
                            "records": "/big/path", "config": {"x": 1}, "run_id": self.run_id})

    evals_pending = 0

    async def serve_evals(self):
        return None

    def cancel_evals(self, reason):
        for _, fut in self.evals:
            if not fut.done():
                fut.set_exception(RuntimeError(f"not run: {reason}"))


def test_the_stand_in_and_the_engine_share_the_daemons_protocol():
    from core.engine import Engine, RunEngine

    assert isinstance(FakeEngine(), RunEngine)
    members = {m for m in dir(RunEngine) if not m.startswith("_")}
    assert members <= set(dir(Engine)) | {"run_id", "cfg", "cfg_text", "state"}  # instance attributes


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
    await wait_for(lambda: bus.connected, what="core connect")
    return d, task


def test_command_exchange_on_mosquitto(mosquitto, tmp_path):
    store = ResultStore(tmp_path / "db.json")
    store.add_doc("runs", {"run_id": "fake-run", "state": "running", "updated_at": "2026-01-01"}, key="run_id")
    store.add_eval({"eval_id": "bfcl-old", "run_id": "fake-run", "benchmark": "bfcl-v3", "iteration": 1,
                    "scores": {"overall": 0.1}, "started_at": "2026-01-01T00:00:00", "records": "/x"})

    async def main():
        eng = FakeEngine()
        d, task = await start_daemon(mosquitto.url, "gpu0", eng, store, creds=mosquitto.creds["core"])
        con = await Console(mosquitto.url, "gpu0", creds=mosquitto.creds["operator"]).start()
        await wait_for(lambda: con.latest("online") == b"true", what="retained online")

        c = await con.send("pause")
        assert (await con.final(c)).status == "done"
        assert [a.status for a in con.acks_for(c)] == ["accepted", "done"] and eng.state["paused"]
        await wait_for(lambda: con.status() and con.status().paused, what="status paused")
        c = await con.send("pause")
        a = await con.final(c)
        assert (a.status, a.detail) == ("rejected", "already paused")

        dup = await con.send("resume")
        assert (await con.final(dup)).status == "done" and not eng.state["paused"]
        await con.send("resume", cid=dup)  # a duplicate QoS 1 delivery: ignored, not "not paused"
        c = await con.send("resume")
        assert (await con.final(c)).detail == "not paused"
        assert len(con.acks_for(dup)) == 2

        c = await con.send("eval", {"benchmark": "bfcl", "subset": "simple_python", "per_category": 2, "iteration": 1})
        a = await con.final(c)
        assert a.status == "done" and a.result["scores"]["overall"] == 0.25 and "records" not in a.result
        assert eng.evals[0][0] == ("bfcl", "simple_python", 2, 1)
        await wait_for(lambda: con.of("metrics", "accuracy"), what="accuracy metric")
        acc = bp.parse_metrics(con.latest("metrics", "accuracy"))
        assert acc.stream == "accuracy" and acc.model_extra["score"] == 0.25 and acc.model_extra["on_demand"]
        assert any(bp.parse_event(p).event == "eval_done" for p in con.of("events"))

        c = await con.send("history", {"table": "evals", "run_id": "fake-run", "limit": 5})
        a = await con.final(c)
        assert a.status == "done" and [r["eval_id"] for r in a.result["rows"]] == ["bfcl-old"]
        assert "records" not in a.result["rows"][0]
        c = await con.send("history", {"table": "runs"})
        assert [r["run_id"] for r in (await con.final(c)).result["rows"]] == ["fake-run"]

        # malformed and unknown commands: rejected with the reason, never a crash
        c = await con.send("pause", raw=json.dumps({"id": "m1", "reply_to": bp.topic("gpu0", "ack", "con1"),
                                                    "args": {"x": 1}}).encode())
        a = await con.final("m1")
        assert a.status == "rejected" and "pause takes no arguments" in a.detail
        await con.send("eval", raw=json.dumps({"id": "m2", "reply_to": bp.topic("gpu0", "ack", "con1"),
                                               "args": {"benchmark": "mmlu"}}).encode())
        a = await con.final("m2")
        assert a.status == "rejected" and "args.benchmark" in a.detail
        await con.send("selfdestruct", raw=json.dumps({"id": "m3", "reply_to": bp.topic("gpu0", "ack", "con1")}).encode())
        a = await con.final("m3")
        assert a.status == "rejected" and "unknown command 'selfdestruct'" in a.detail
        await con.send("pause", raw=b"{not json")
        await con.send("history", raw=json.dumps({"id": "m4", "reply_to": bp.topic("gpu0", "ack", "con1"),
                                                  "args": {"limit": 0}}).encode())
        a = await con.final("m4")
        assert a.status == "rejected" and "args.limit" in a.detail
        # an ack topic outside this core's ack/ space is never published to
        await con.send("pause", raw=json.dumps({"id": "m5", "reply_to": bp.topic("gpu0", "status")}).encode())
        await asyncio.sleep(0.3)
        assert not con.acks_for("m5") and bp.parse_status(con.latest("status")).core_id == "gpu0"

        c = await con.send("stop")
        a = await con.final(c, timeout=10)
        assert a.status == "done" and a.result == {"state": "stopped"}
        assert await asyncio.wait_for(task, 10) == "stopped"
        await wait_for(lambda: con.latest("online") == b"false", what="online false on clean exit")
        await wait_for(lambda: con.state() == "stopped", what="final status")
        await con.close()
    run_async(main(), timeout=60)
    audit = store.get_docs("audit")
    store.close()
    by_status = {}
    for doc in audit:
        by_status.setdefault(doc["status"], []).append(doc["verb"])
    assert sorted(by_status["done"]) == ["eval", "history", "history", "pause", "resume", "stop"]
    assert "selfdestruct" in by_status["rejected"] and all(d["sender"] in ("con1", None) for d in audit)


def test_viewer_command_never_reaches_the_core(mosquitto, tmp_path):
    """MQTT 3.1.1 ACL denials are silent: the viewer's publish 'succeeds', the core sees nothing."""
    store = ResultStore(tmp_path / "db.json")

    async def main():
        eng = FakeEngine()
        d, task = await start_daemon(mosquitto.url, "gpu1", eng, store, creds=mosquitto.creds["core"])
        viewer = await Console(mosquitto.url, "gpu1", "view1", creds=mosquitto.creds["viewer"]).start()
        await viewer.send("pause")
        await asyncio.sleep(1.0)
        assert not eng.state["paused"] and viewer.acks == []
        assert viewer.latest("status") is not None  # the viewer does read state
        op = await Console(mosquitto.url, "gpu1", "op1", creds=mosquitto.creds["operator"]).start()
        assert (await op.final(await op.send("pause"))).status == "done"  # control: the path works
        assert (await op.final(await op.send("stop"))).status == "done"
        await asyncio.wait_for(task, 10)
        for c in (viewer, op):
            await c.close()
    run_async(main(), timeout=40)
    verbs = [(d["verb"], d["sender"]) for d in store.get_docs("audit")]
    store.close()
    assert sorted(verbs) == [("pause", "op1"), ("stop", "op1")]


def test_telemetry_coalesced_and_status_has_eta(embedded_broker, tmp_path):
    store = ResultStore(tmp_path / "db.json")

    async def main():
        eng = FakeEngine()
        d, task = await start_daemon(embedded_broker.url, "tele", eng, store)
        con = await Console(embedded_broker.url, "tele").start()
        await asyncio.sleep(0.3)
        t0 = time.monotonic()
        n = 0
        while time.monotonic() - t0 < 2.0:  # 100 Hz of train metrics and probe progress
            n += 1
            eng.emit("metrics", {"stage": "train", "iteration": 1, "step": n, "loss": 1.0 / n, "lr": 1e-5,
                                 "reward_mean": 0.5, "reward_std": 0.1, "tokens_per_s": 100.0 + n})
            eng.emit("progress", {"stage": "train", "iteration": 1, "done": n, "total": 1000})
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.8)
        train = [bp.parse_metrics(p) for p in con.of("metrics", "train")]
        assert 2 <= len(train) <= 6, len(train)  # <= 2 Hz over ~2.8 s, not ~200
        assert train[-1].model_extra["step"] == n and train[-1].model_extra["loss"] == pytest.approx(1.0 / n)
        thr = [bp.parse_metrics(p) for p in con.of("metrics", "throughput")]
        assert 2 <= len(thr) <= 6, len(thr)
        assert any("tok_s" in m.model_extra and m.model_extra.get("samples_s", 0) > 10 for m in thr), thr
        hw = [bp.parse_metrics(p) for p in con.of("metrics", "hardware")]
        assert hw and 0 <= hw[-1].model_extra["cpu_pct"] <= 100 * os.cpu_count() and "gpus" in hw[-1].model_extra
        st = bp.parse_status(con.latest("status"))
        assert st.progress.done == n and st.progress.total == 1000 and st.progress.eta_s > 0
        assert len(con.of("status")) <= 10
        eng.emit("metrics", {"stage": "assemble", "iteration": 1, "total": 8, "ES": 3})
        await wait_for(lambda: any(bp.parse_event(p).event == "dataset_composition" for p in con.of("events")))
        eng.stop()
        await asyncio.wait_for(task, 10)
        await con.close()
    run_async(main(), timeout=40)
    store.close()


def test_core_keeps_working_through_a_broker_outage_and_republishes_state(mosquitto, tmp_path):
    store = ResultStore(tmp_path / "db.json")

    async def main():
        eng = FakeEngine()
        d, task = await start_daemon(mosquitto.url, "out1", eng, store, creds=mosquitto.creds["core"])
        mosquitto.stop()  # no persistence: its retained state is gone with it
        await wait_for(lambda: not d.bus.connected, what="core sees the outage")
        for i in range(50):
            eng.emit("metrics", {"stage": "train", "iteration": 1, "step": i, "loss": 0.5})
        eng.pause()  # the engine goes on being driven while the broker is away
        mosquitto.start()
        await wait_for(lambda: d.bus.connected, timeout=15, what="core reconnect")
        late = await Console(mosquitto.url, "out1", creds=mosquitto.creds["viewer"]).start()
        await wait_for(lambda: late.latest("online") == b"true" and late.latest("status"), what="republished state")
        await wait_for(lambda: late.status() and late.status().paused, what="paused status after outage")
        assert json.loads(late.latest("run", "fake-run", "config"))["toml"].startswith("[run]")
        eng.stop()
        await asyncio.wait_for(task, 10)
        await late.close()
    run_async(main(), timeout=40)
    store.close()


def test_eval_failure_is_acked_failed_and_stay_serves_after_the_run(embedded_broker, tmp_path):
    store = ResultStore(tmp_path / "db.json")

    async def main():
        eng = FakeEngine(fail_eval="iteration 2 has no trained policy yet")
        d, task = await start_daemon(embedded_broker.url, "stay1", eng, store, stay=True)
        con = await Console(embedded_broker.url, "stay1").start()
        a = await con.final(await con.send("eval", {"iteration": 2}))
        assert (a.status, a.detail) == ("failed", "iteration 2 has no trained policy yet")
        eng.stop()  # the run ends; --stay keeps the core on the bus
        await wait_for(lambda: con.state() == "stopped")
        await asyncio.sleep(0.3)
        assert not task.done() and con.latest("online") == b"true"
        a = await con.final(await con.send("history", {"table": "audit"}))
        assert a.status == "done" and [r["verb"] for r in a.result["rows"]] == ["eval"]
        a = await con.final(await con.send("pause"))
        assert a.status == "rejected" and "stopped" in a.detail
        a = await con.final(await con.send("stop"))
        assert a.status == "done"
        assert await asyncio.wait_for(task, 10) == "stopped"
        await wait_for(lambda: con.latest("online") == b"false")
        await con.close()
    run_async(main(), timeout=40)
    store.close()


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
        d, task = await start_daemon(embedded_broker.url, "real1", engine, store)
        con = await Console(embedded_broker.url, "real1").start()
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
