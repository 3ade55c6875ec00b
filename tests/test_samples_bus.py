"""The `samples` command on a real broker: the core daemon answers pages of a run's examples from its
files (the hand-written run of tests/samples_data.py), rejects bad arguments with the reason, and says
why a page cannot be read."""
from __future__ import annotations

import asyncio
import json

from brokers import embedded_broker, run_async  # noqa: F401
from daemon_client import Console, start_daemon
from samples_data import RUN_ID, write_run
from test_daemon import FakeEngine

from core import busproto as bp
from core.store import ResultStore


def test_samples_pages_come_from_the_run_files_over_the_bus(embedded_broker, tmp_path):
    run_dir, runs, evals = write_run(tmp_path)
    store = ResultStore(tmp_path / "db.json")
    store.add_doc("runs", runs[0], key="run_id")
    for doc in evals:
        store.add_eval(doc)

    async def main():
        eng = FakeEngine(run_id=RUN_ID)
        d, task = await start_daemon(embedded_broker.core_url, "smp", eng, store)
        con = await Console(embedded_broker.core_url, "smp").start()

        async def ask(**args):
            cid = await con.send("samples", args)
            final = await con.final(cid)
            return [a.status for a in con.acks_for(cid)], final

        statuses, a = await ask(iteration=1, stage="probe", limit=3)
        assert a.status == "done" and statuses[0] == "accepted", a.detail
        assert [r["id"] for r in a.result["rows"]] == ["s1", "s2", "s3"] and a.result["total"] == 4
        assert a.result["rows"][1]["left"] == "[get_weather(city='Oslo')]" and a.detail == "3 of 4 probe rows"
        _, a = await ask(iteration=1, stage="probe", offset=3, limit=3)
        assert [r["id"] for r in a.result["rows"]] == ["s4"] and len(json.dumps(a.result)) < bp.MAX_PAYLOAD_BYTES
        _, a = await ask(iteration=1, stage="judge", filters={"verdict": "LABEL_WRONG"})
        assert [(r["id"], r["relabel"]) for r in a.result["rows"]] == [("s3", "[get_weather(city='London')]")]
        _, a = await ask(iteration=1, stage="eval", filters={"error_type": "simple_function_checker"})
        assert [(r["id"], r["benchmark"]) for r in a.result["rows"]] == [("multiple_3", "bfcl-v3")]
        _, a = await ask(iteration=1, stage="eval", prompt_id="multiple_3")
        assert a.status == "done" and a.result["prompt"] is None and "do not carry their prompt" in a.detail

        _, a = await ask(iteration=1, stage="probe", filters={"verdict": "PRED_WRONG"})
        assert a.status == "rejected" and "args.filters: filter 'verdict': not a key of stage probe" in a.detail
        _, a = await ask(iteration=1, stage="probe", limit=51)
        assert a.status == "rejected" and "args.limit" in a.detail
        _, a = await ask(iteration=1, stage="train")
        assert a.status == "rejected" and "args.stage" in a.detail
        _, a = await ask(iteration=2, stage="probe")
        assert a.status == "failed" and "iter-2/probe.jsonl does not exist" in a.detail
        _, a = await ask(run_id="gone", iteration=1, stage="probe")
        assert (a.status, a.detail) == ("failed", "no run 'gone' in the store (see `looptool runs list`)")

        eng.stop()
        await asyncio.wait_for(task, 10)
        await con.close()
    run_async(main(), timeout=40)
    store.close()
