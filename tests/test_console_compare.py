"""Pilot test: the history screen compares two marked evals, asked through the bus and answered by the
core's own command handler (core/daemon_commands.py) from a real results store and real records files;
only the broker is replaced, by the in-memory link (console/memlink.py)."""
from __future__ import annotations

import asyncio
import os
from types import SimpleNamespace

from textual.widgets import DataTable, Label

from console.memlink import feed_demo
from console.screens.history import HistoryScreen
from core import busproto as bp
from core.daemon_commands import CommandHandler
from core.store import ResultStore

from console_pilot import SIZE, make, run, settle, until
from eval_records import A_RECORDS, B_RECORDS, write_eval


class StoreCore:
    """The daemon's side of CommandHandler (engine, bus, store, spawn) around a real store: the link's
    commands go to the real handler, its acks come back through the link's own parser."""

    def __init__(self, store: ResultStore, core_id: str = "test-core"):
        self.store, self.core_id = store, core_id
        self.engine = SimpleNamespace(run_id="run-x", state={"state": "finished"})
        self.telemetry = None  # only pause/stop/eval use it
        self.stopping = self.engine_done = False
        self.bus = SimpleNamespace(publish_nowait=self.publish)
        self.link = None
        self.tasks: set[asyncio.Task] = set()
        self.handler = CommandHandler(self)

    def topic(self, kind: str, *rest: str) -> str:
        return bp.topic(self.core_id, kind, *rest)

    def spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        self.link.on_message(topic, payload, retain)

    def __call__(self, link, verb: str, cmd: bp.Command) -> None:  # the MemoryLink responder
        self.link = link
        self.handler.on_command(self.topic("cmd", verb), cmd.dump(), False)


def rows_of(table: DataTable) -> dict[str, tuple]:
    return {str(table.get_row_at(i)[0]): tuple(table.get_row_at(i)[1:]) for i in range(table.row_count)}


def test_two_marked_evals_are_compared_by_the_core(tmp_path):
    store = ResultStore(tmp_path / "looptool.db.json")
    store.add_doc("runs", {"run_id": "run-x", "state": "finished", "iterations": 2, "model": "embedded",
                           "updated_at": "2026-01-01T03:00:00"}, key="run_id")
    write_eval(tmp_path, store, "bfcl-aaaa1111", A_RECORDS, iteration=1, started_at="2026-01-01T01:00:00")
    write_eval(tmp_path, store, "bfcl-bbbb2222", B_RECORDS, iteration=2, started_at="2026-01-01T02:00:00")
    write_eval(tmp_path, store, "bfcl-cccc3333", B_RECORDS, iteration=2, started_at="2026-01-01T00:00:00")
    core = StoreCore(store)

    async def go():
        app, link = make(responder=core)
        async with app.run_test(size=SIZE) as pilot:
            feed_demo(link)
            await settle(pilot)
            await pilot.press("r")
            screen = app.screen
            assert isinstance(screen, HistoryScreen)
            await until(pilot, lambda: screen.query_one("#runs", DataTable).row_count == 1)
            await pilot.press("enter")  # open run-x: its evals, newest first, from the store
            evals = screen.query_one("#evals", DataTable)
            await until(pilot, lambda: evals.row_count == 3)
            assert [evals.get_row_at(i)[1] for i in range(3)] == ["bfcl-bbbb2222", "bfcl-aaaa1111", "bfcl-cccc3333"]
            evals.focus()
            await pilot.press("down", "space", "up", "space")  # A = iteration 1, then B = iteration 2
            assert screen.marked_evals == ["bfcl-aaaa1111", "bfcl-bbbb2222"]
            assert evals.get_row_at(0)[0] == evals.get_row_at(1)[0] == "✓"
            await pilot.press("c")
            cmp_ = screen.query_one("#compare", DataTable)
            await until(pilot, lambda: cmp_.row_count > 0)
            assert [c.args for v, c in link.sent if v == "compare"] == [
                {"a": "bfcl-aaaa1111", "b": "bfcl-bbbb2222", "limit": 20}]
            rows = rows_of(cmp_)
            assert rows["simple_python (n=4)"][:2] == ("2/4 50.0%", "2/4 50.0%")
            assert rows["simple_python (n=4)"][2].endswith("R->W 1 W->R 1")
            assert rows["multiple (n=2)"][:2] == ("1/2 50.0%", "0/2 0.0%")
            assert rows["multiple (n=2)"][2].startswith("-50.0 [")
            assert rows["mean of 2 (n=6)"][:2] == ("50.0%", "25.0%")
            assert "right -> wrong: 2" in rows and "wrong -> right: 1" in rows
            assert rows["  multiple_0"] == ("right: [g(b=1)]",
                                            "wrong (multiple_function_checker:wrong_count): [g(b=1), g(b=1)]",
                                            "right -> wrong")
            assert rows["only in A"][:1] == ("1",) and rows["only in B"][2] == "multiple_3"
            assert "bfcl-aaaa1111 (run-x iter 1)" in str(cmp_.border_title)
            status = str(screen.query_one("#history-status", Label).render())
            assert "6 shared entries, 2 right -> wrong, 1 wrong -> right" in status

            # an eval whose records are gone: the core's reason is shown, nothing crashes
            os.unlink(tmp_path / "evals" / "bfcl-cccc3333" / "records.jsonl")
            await pilot.press("down", "down", "space", "c")  # marks: bfcl-bbbb2222, bfcl-cccc3333
            await until(pilot, lambda: "records file is missing" in str(
                screen.query_one("#history-status", Label).render()))
            assert "compare: failed - eval bfcl-cccc3333" in str(screen.query_one("#history-status", Label).render())
        await asyncio.gather(*core.tasks, return_exceptions=True)

    try:
        run(go())
        audit = {(d["verb"], d["status"]) for d in store.get_docs("audit")}
        assert {("compare", "done"), ("compare", "failed")} <= audit  # the real handler answered and audited
    finally:
        store.close()
