"""Bounds on what a command may carry, checked where it is parsed (core/busproto.py) and held by the
daemon: ids and senders of bounded, printable text, a payload limit before any JSON parsing, and a
bounded queue of on-demand evals. Over the real embedded broker with the daemon and its store."""
from __future__ import annotations

import asyncio
import json

import pytest
from brokers import embedded_broker, run_async  # noqa: F401
from daemon_client import Console, start_daemon, wait_for
from test_daemon import FakeEngine

from core import busproto as bp
from core.daemon_commands import MAX_OPEN_EVALS
from core.store import ResultStore


def _raw(core_id: str, console_id: str = "con1", **fields) -> bytes:
    doc = {"id": "c-ok", "reply_to": bp.topic(core_id, "ack", console_id), "sender": console_id, **fields}
    return json.dumps(doc).encode()


# -- the parser ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("field, value, reason", [
    ("id", "x" * (bp.MAX_ID_CHARS + 1), f"id: has {bp.MAX_ID_CHARS + 1} characters; at most {bp.MAX_ID_CHARS}"),
    ("id", "", "id: is empty"),
    ("id", "\ud800", "id: character 1 (U+D800) is not printable text"),
    ("id", "ok\nforged log line", "id: character 3 (U+000A) is not printable text"),
    ("sender", "s" * 1000, f"sender: has 1000 characters; at most {bp.MAX_SENDER_CHARS}"),
    ("sender", "con\x1b[2J", "sender: character 4 (U+001B) is not printable text"),
    ("reply_to", "looptool/v1/c/ack/" + "a" * 300, "reply_to: has 318 characters"),
])
def test_ids_and_senders_are_bounded_printable_text(field, value, reason):
    with pytest.raises(bp.BadPayload) as e:
        bp.parse_command("pause", _raw("c", **{field: value}), "cmd/pause")
    assert str(e.value) == f"cmd/pause: {reason}" or str(e.value).startswith(f"cmd/pause: {reason}")
    assert str(e.value).isprintable()


def test_the_payload_limit_comes_before_json_parsing():
    big = _raw("c", sender="s" * (1 << 20))
    with pytest.raises(bp.BadPayload, match=rf"^cmd/pause: payload is {len(big)} bytes; at most {bp.MAX_COMMAND_BYTES}$"):
        bp.parse_command("pause", big, "cmd/pause")
    assert bp.command_envelope(big) == (None, None)  # not read at all, not even for its id
    deep = b"[" * (bp.MAX_COMMAND_BYTES - 10)  # under the limit, deeper than the parser can take
    with pytest.raises(bp.BadPayload, match="nested too deeply"):
        bp.parse_command("pause", deep, "cmd/pause")


def test_a_surrogate_id_has_no_envelope_but_a_valid_one_does():
    assert bp.command_envelope(_raw("c", id="\ud800")) == (None, bp.topic("c", "ack", "con1"))
    assert bp.command_envelope(_raw("c", id="abc")) == ("abc", bp.topic("c", "ack", "con1"))


# -- the daemon ---------------------------------------------------------------------------------------

def test_oversized_ids_and_senders_are_rejected_with_a_reason(embedded_broker, tmp_path):
    store = ResultStore(tmp_path / "db.json")

    async def main():
        eng = FakeEngine()
        d, task = await start_daemon(embedded_broker.core_url, "lim1", eng, store)
        con = await Console(embedded_broker.core_url, "lim1").start()
        await con.send("pause", raw=_raw("lim1", id="i" * 200))
        await wait_for(lambda: con.acks_for(""), what="the rejection of a long id")
        # (a set: amqtt delivers a copy per matching subscription, and this client has two)
        assert {(a.status, a.detail) for a in con.acks_for("")} == {
            ("rejected", f"looptool/v1/lim1/cmd/pause: id: has 200 characters; at most {bp.MAX_ID_CHARS}")}
        await con.send("pause", raw=_raw("lim1", id="long-sender", sender="s" * 1000))
        a = await con.final("long-sender")
        assert a.status == "rejected" and "sender: has 1000 characters" in a.detail
        assert not eng.state["paused"]
        eng.stop()
        assert await asyncio.wait_for(task, 10) == "stopped"
        await con.close()
    run_async(main(), timeout=40)
    audit = store.get_docs("audit")
    store.close()
    # the long id has no row (nothing to key it on); the long sender's row holds no sender
    assert [(doc["id"], doc["sender"], doc["status"]) for doc in audit] == [("long-sender", None, "rejected")]


def test_megabyte_senders_do_not_grow_the_store(embedded_broker, tmp_path):
    """20 commands with a 1 MB sender once grew the store from 15 KB to 20 MB."""
    db = tmp_path / "db.json"
    store = ResultStore(db)
    store.add_doc("runs", {"run_id": "fake-run", "state": "running"}, key="run_id")
    store.flush()
    before = db.stat().st_size

    async def main():
        eng = FakeEngine()
        d, task = await start_daemon(embedded_broker.core_url, "lim2", eng, store)
        con = await Console(embedded_broker.core_url, "lim2").start()
        for i in range(20):
            await con.send("pause", raw=_raw("lim2", id=f"big{i}", sender="s" * (1 << 20)))
        await con.send("eval", raw=b"[" * 10_000)  # unreadable too: no reply_to to answer on
        await con.send("pause", raw=b"\xff\xfe not UTF-8")
        # the same client's later command is handled after them (MQTT keeps one sender's order)
        assert (await con.final(await con.send("pause"))).status == "done"
        assert not any(a.id.startswith("big") for a in con.acks)
        eng.stop()
        assert await asyncio.wait_for(task, 10) == "stopped"
        await con.close()
    run_async(main(), timeout=60)
    audit = store.get_docs("audit")
    store.close()
    assert [doc["verb"] for doc in audit] == ["pause"]
    assert db.stat().st_size - before < 4096


def test_a_surrogate_id_is_rejected_and_the_store_untouched(embedded_broker, tmp_path):
    db = tmp_path / "db.json"
    store = ResultStore(db)
    store.add_doc("runs", {"run_id": "fake-run", "state": "running"}, key="run_id")
    store.flush()
    before = db.read_bytes()

    async def main():
        eng = FakeEngine()
        d, task = await start_daemon(embedded_broker.core_url, "lim3", eng, store)
        con = await Console(embedded_broker.core_url, "lim3").start()
        raw = b'{"id": "\\ud800", "reply_to": "%s", "sender": "con1"}' % bp.topic("lim3", "ack", "con1").encode()
        await con.send("stop", raw=raw)
        await wait_for(lambda: con.acks, what="the rejection")
        ack = con.acks[0]
        assert (ack.id, ack.status) == ("", "rejected") and "id: character 1 (U+D800) is not printable" in ack.detail
        assert not task.done()
        eng.stop()  # not a stop command: that would be audited
        assert await asyncio.wait_for(task, 10) == "stopped"
        await con.close()
    run_async(main(), timeout=40)
    store.close()
    assert db.read_bytes() == before


def test_on_demand_evals_are_bounded_and_a_full_queue_refuses_clearly(embedded_broker, tmp_path):
    store = ResultStore(tmp_path / "db.json")

    async def main():
        eng = FakeEngine(eval_s=3600)  # nothing finishes by itself
        d, task = await start_daemon(embedded_broker.core_url, "lim4", eng, store)
        con = await Console(embedded_broker.core_url, "lim4").start()
        queued = [await con.send("eval", {"iteration": 1}) for _ in range(MAX_OPEN_EVALS)]
        await wait_for(lambda: all(con.acks_for(c) for c in queued), what="the queued evals accepted")
        assert {a.status for c in queued for a in con.acks_for(c)} == {"accepted"}
        a = await con.final(await con.send("eval", {"iteration": 1}))
        assert (a.status, a.detail) == ("rejected", f"the eval queue is full ({MAX_OPEN_EVALS} on-demand evals "
                                                    "waiting or running): send it again when one has finished")
        assert len(eng.evals) == MAX_OPEN_EVALS
        eng._answer("bfcl", 1, eng.evals[0][1])  # one finishes: its place is free again
        assert (await con.final(queued[0])).status == "done"
        again = await con.send("eval", {"iteration": 1})
        await wait_for(lambda: con.acks_for(again), what="accepted again")
        assert con.acks_for(again)[0].status == "accepted"
        eng.stop()
        assert await asyncio.wait_for(task, 10) == "stopped"
        await con.close()
    run_async(main(), timeout=40)
    store.close()
