"""The core daemon on real brokers: commands and acks, telemetry, retained state, last will.

These tests drive `CoreDaemon` with `FakeEngine`, a core.engine.RunEngine without a loop; the real
Engine and `looptool core` processes on the bus are in test_daemon_process.py.
"""
from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from brokers import embedded_broker, mosquitto, run_async  # noqa: F401
from daemon_client import Console, start_daemon, wait_for

from core import busproto as bp
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
        d, task = await start_daemon(embedded_broker.core_url, "tele", eng, store)
        con = await Console(embedded_broker.core_url, "tele").start()
        await asyncio.sleep(0.3)
        t0 = time.monotonic()
        n = 0
        while time.monotonic() - t0 < 2.0:  # 100 Hz of train metrics and probe progress
            n += 1
            eng.emit("metrics", {"stage": "train", "iteration": 1, "step": n, "loss": 1.0 / n, "lr": 1e-5,
                                 "reward_mean": 0.5, "reward_std": 0.1, "tokens_per_s": 100.0 + n})
            eng.emit("progress", {"stage": "train", "iteration": 1, "done": n, "total": 1000, "tokens": 10 * n})
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
        assert st.progress.tok_s == pytest.approx(10 * n / 2.0, rel=0.5)  # 10 tokens per record, ~2 s
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
        d, task = await start_daemon(embedded_broker.core_url, "stay1", eng, store, stay=True)
        con = await Console(embedded_broker.core_url, "stay1").start()
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
