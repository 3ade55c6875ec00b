"""Pilot tests of the operator console over the in-memory link: every binding and command screen, with
message_hook assertions on the typed messages and on the commands the link put on the "bus"; the
result panels and the history screen are in test_console_results.py."""
from __future__ import annotations

import time

import pytest
from textual.command import CommandPalette
from textual.widgets import DataTable, Input, Label, Select

from console.app import LoopConsole
from console.link import LinkError
from console.memlink import FakeCore, MemoryLink, feed_demo
from console.messages import (BadMessage, BusConnectionChanged, CommandUpdated, EventRaised, MetricsReceived,
                              StatusChanged)
from console.screens.confirm import ConfirmScreen
from console.screens.evaluate import EvaluateScreen
from console.screens.help import HelpScreen
from console.widgets.eventlog import EventLog
from console.widgets.panels import CommandsPanel
from core import busproto as bp

from console_pilot import (ACE_SKIPPED, HELD_OUT, PROBE_STATS, SIZE, header_text, make, run, screen_text,
                            settle, until, verbs)


def test_pause_and_resume_round_trip_with_acks():
    async def go():
        app, link = make()
        seen = []
        async with app.run_test(size=SIZE, message_hook=seen.append) as pilot:
            feed_demo(link)
            await settle(pilot)
            assert app.state == "running" and not app.paused and "RUNNING" in header_text(app)
            await pilot.press("p")
            await settle(pilot)
            assert verbs(link) == ["pause"]
            verb, cmd = link.sent[0]
            assert cmd.reply_to == "looptool/v1/test-core/ack/console-test" and len(cmd.id) == 32
            states = [m.state for m in seen if isinstance(m, CommandUpdated) and m.command.id == cmd.id]
            assert states == ["pending", "accepted", "done"]
            assert any(isinstance(m, StatusChanged) and m.status.paused for m in seen)
            assert app.paused and "PAUSED" in header_text(app)
            assert "pause" in str(app.query_one(CommandsPanel).render())
            await pilot.press("p")
            await settle(pilot)
            assert verbs(link) == ["pause", "resume"] and not app.paused and app.state == "running"
    run(go())


def test_rejected_and_unconfirmed_commands_are_shown():
    async def go():
        app, link = make(responder=None, ack_timeout=0.5)
        seen = []
        async with app.run_test(size=SIZE, message_hook=seen.append) as pilot:
            feed_demo(link)
            await settle(pilot)
            await pilot.press("p")
            await settle(pilot)
            (_, cmd), = link.sent
            # the 0.5 s tick marks it unconfirmed once 0.5 s passed without an ack
            await until(pilot, lambda: link.commands[cmd.id].state == "unconfirmed")
            assert "unconfirmed" in str(app.query_one(CommandsPanel).render())
            link.feed_ack(cmd.id, "rejected", "already paused", verb="pause")  # a late ack still lands
            await settle(pilot)
            assert link.commands[cmd.id].state == "rejected"
            assert [m.state for m in seen if isinstance(m, CommandUpdated)] == \
                ["pending", "unconfirmed", "rejected"]
            assert "already paused" in app.query_one(EventLog).visible_text()
            link.feed_ack(cmd.id, "done")  # a stray ack after a final one changes nothing
            await settle(pilot)
            assert link.commands[cmd.id].state == "rejected"
    run(go())


def test_evaluate_dialog_validates_and_sends_eval_args():
    async def go():
        app, link = make()
        async with app.run_test(size=SIZE) as pilot:
            feed_demo(link)
            await settle(pilot)
            await pilot.press("e")
            await settle(pilot)
            assert isinstance(app.screen, EvaluateScreen)
            await pilot.press("p", "s")  # app keys do nothing while the dialog is up
            assert link.sent == [] and isinstance(app.screen, EvaluateScreen)
            app.screen.query_one("#eval-benchmark", Select).value = "acebench"
            app.screen.query_one("#eval-subset", Input).value = "normal"
            app.screen.query_one("#eval-per-category", Input).value = "0"
            app.screen.query_one("#eval-iteration", Input).value = "1"
            await pilot.press("ctrl+s")
            await settle(pilot)
            assert isinstance(app.screen, EvaluateScreen) and link.sent == []
            assert "per category" in str(app.screen.query_one("#eval-error", Label).render())
            app.screen.query_one("#eval-per-category", Input).value = "3"
            await pilot.press("ctrl+s")
            await settle(pilot)
            assert not isinstance(app.screen, EvaluateScreen)
            (verb, cmd), = link.sent
            assert verb == "eval"
            assert cmd.args == {"benchmark": "acebench", "subset": "normal", "per_category": 3, "iteration": 1}
            assert link.commands[cmd.id].state == "done"
            await pilot.press("e")
            await settle(pilot)
            await pilot.press("escape")
            await settle(pilot)
            assert not isinstance(app.screen, EvaluateScreen) and len(link.sent) == 1
    run(go())


def test_stop_asks_first_and_then_greys_out_pause_and_stop():
    async def go():
        app, link = make()
        async with app.run_test(size=SIZE) as pilot:
            feed_demo(link)
            await settle(pilot)
            await pilot.press("s")
            await settle(pilot)
            assert isinstance(app.screen, ConfirmScreen)
            await pilot.press("n")
            await settle(pilot)
            assert link.sent == [] and not isinstance(app.screen, ConfirmScreen)
            await pilot.press("s")
            await settle(pilot)
            await pilot.press("y")
            await settle(pilot)
            assert verbs(link) == ["stop"] and app.state == "stopped"
            assert app.check_action("toggle_pause", ()) is None and app.check_action("stop", ()) is None
            await pilot.press("p", "s")
            await settle(pilot)
            assert verbs(link) == ["stop"] and not isinstance(app.screen, ConfirmScreen)
    run(go())


def test_help_lists_every_binding_with_the_users_keys():
    async def go():
        app, link = make(keymap={"pause": "space", "help": "f1"})
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("f1")
            await settle(pilot)
            assert isinstance(app.screen, HelpScreen)
            rows = {bid: key for key, bid, _ in app.screen.rows}
            assert set(rows) >= {"pause", "evaluate", "stop", "history", "filter", "help", "detach"}
            assert rows["pause"] == "space" and rows["help"] == "f1" and rows["stop"] == "s"
            await pilot.press("escape")
            await settle(pilot)
            assert not isinstance(app.screen, HelpScreen)
    run(go())


def test_user_keymap_rebinds_pause():
    async def go():
        app, link = make(keymap={"pause": "space"})
        async with app.run_test(size=SIZE) as pilot:
            feed_demo(link)
            await settle(pilot)
            await pilot.press("p")
            await settle(pilot)
            assert link.sent == []
            await pilot.press("space")
            await settle(pilot)
            assert verbs(link) == ["pause"]
    run(go())


def test_detach_exits_without_any_command():
    async def go():
        app, link = make()
        async with app.run_test(size=SIZE) as pilot:
            feed_demo(link)
            await settle(pilot)
            await pilot.press("q")
            await settle(pilot)
        assert app.return_value == "detached"
        assert link.sent == [] and link.published == []
    run(go())


def test_filter_narrows_the_event_log():
    async def go():
        app, link = make()
        async with app.run_test(size=SIZE) as pilot:
            feed_demo(link)
            await settle(pilot)
            log = app.query_one(EventLog)
            assert "dataset_composition" in log.visible_text() and "judge" in log.visible_text()
            await pilot.press("slash")
            assert isinstance(app.focused, Input) and app.focused.id == "event-filter"
            await pilot.press(*"judge")
            await settle(pilot)
            text = log.visible_text()
            assert "PRED_WRONG=118" in text and "dataset_composition" not in text
            link.feed_event("stage_finished", stage="judge", iteration=2, stats={"verdicts": {"PRED_WRONG": 5}})
            link.feed_event("stage_started", stage="expand", iteration=2)
            await settle(pilot)
            text = log.visible_text()
            assert "PRED_WRONG=5" in text and "expand" not in text
            await pilot.press("enter")  # leaves the filter; keys go to the app again
            await pilot.press("p")
            await settle(pilot)
            assert verbs(link) == ["pause"]
    run(go())


def test_read_only_hides_commands_and_publishes_nothing():
    async def go():
        app, link = make(read_only=True)
        async with app.run_test(size=SIZE) as pilot:
            feed_demo(link)
            await settle(pilot)
            for action in ("toggle_pause", "evaluate", "stop", "history"):
                assert app.check_action(action, ()) is False
            await pilot.press("p", "e", "s", "r")
            await settle(pilot)
            assert len(app.screen_stack) == 1
            assert link.sent == [] and link.published == []
            with pytest.raises(LinkError, match="read-only"):
                link.send("pause")
            titles = [c.title for c in app.get_system_commands(app.screen)]
            assert "Stop the run" not in titles and "Keys" in titles and "Detach" in titles
            footer_keys = {b.binding.id for b in app.active_bindings.values() if b.enabled}
            assert not footer_keys & {"pause", "evaluate", "stop", "history"}
            assert "READ-ONLY" in header_text(app)
            await pilot.press("q")
        assert link.published == []
    run(go())


def test_disconnected_greys_out_commands():
    async def go():
        app, link = make()
        seen = []
        async with app.run_test(size=SIZE, message_hook=seen.append) as pilot:
            feed_demo(link)
            await settle(pilot)
            link.set_connected(False)
            await settle(pilot)
            assert any(isinstance(m, BusConnectionChanged) and not m.connected for m in seen)
            assert "DISCONNECTED" in header_text(app)
            assert app.check_action("toggle_pause", ()) is None and app.check_action("help", ()) is True
            await pilot.press("p", "e", "s")
            await settle(pilot)
            assert link.sent == [] and len(app.screen_stack) == 1
            link.set_connected(True)
            link.set_online(False)
            await settle(pilot)
            assert "CORE OFFLINE" in header_text(app) and app.check_action("stop", ()) is None
    run(go())


def test_command_palette_runs_actions():
    async def go():
        app, link = make()
        async with app.run_test(size=SIZE) as pilot:
            feed_demo(link)
            await settle(pilot)
            titles = [c.title for c in app.get_system_commands(app.screen)]
            for t in ("Pause / resume the run", "Evaluate a checkpoint", "Stop the run", "Runs history",
                      "Filter the event log", "Keys", "Detach"):
                assert titles.count(t) >= 1, t
            await pilot.press("ctrl+p")
            await settle(pilot)
            await pilot.press(*"Pause / resume")
            await settle(pilot, 0.3)
            for _ in range(3):  # highlight, select, run
                if not isinstance(app.screen, CommandPalette):
                    break
                await pilot.press("enter")
                await settle(pilot, 0.2)
            assert verbs(link) == ["pause"] and app.paused
    run(go())


def test_stale_when_status_stops_advancing():
    async def go():
        app, link = make(stale_after=5.0)
        async with app.run_test(size=SIZE) as pilot:
            feed_demo(link)
            await settle(pilot)
            assert not app.stale
            link.status_advanced_at -= 10  # as if the core's status had not moved for 10 s
            for _ in range(60):  # the 0.5 s tick notices
                if app.stale:
                    break
                await pilot.pause(0.05)
            assert app.stale and "STALE" in header_text(app)
            link.feed_status(run_id="cpu-demo-20260101-120000", state="running", iteration=2, iterations=4,
                             stage="train", seq=8)
            await settle(pilot)
            assert not app.stale and "live" in header_text(app)
    run(go())


def test_flood_is_coalesced_and_the_latest_value_is_drawn():
    async def go():
        app, link = make()
        seen = []
        async with app.run_test(size=SIZE, message_hook=seen.append) as pilot:
            feed_demo(link)
            await settle(pilot)
            before = sum(isinstance(m, MetricsReceived) for m in seen)
            for i in range(3000):
                link.feed_metrics("throughput", stage="probe", iteration=2, tok_s=float(i), samples_s=1.0)
                link.feed_status(run_id="r", state="running", iteration=2, iterations=4, stage="probe", seq=100 + i)
                if i % 10 == 0:
                    link.feed_event("probe_info", n=i)
            await until(pilot, lambda: "2,999" in str(app.query_one("#tp-tok_s-label").render()))
            n_metrics = sum(isinstance(m, MetricsReceived) for m in seen) - before
            n_status = sum(isinstance(m, StatusChanged) for m in seen)
            n_events = sum(isinstance(m, EventRaised) for m in seen)
            assert n_metrics <= 5 and n_status <= 5 and n_events <= 5, (n_metrics, n_status, n_events)
            assert link.telemetry.series["tok_s"][-1] == 2999.0
            assert "2,999" in str(app.query_one("#tp-tok_s-label").render())
            assert link.status.seq == 3099 and "stage probe" in header_text(app)
            assert "n=2990" in app.query_one(EventLog).visible_text()
    run(go())


def test_bad_messages_are_noted_not_fatal():
    async def go():
        app, link = make()
        seen = []
        async with app.run_test(size=SIZE, message_hook=seen.append) as pilot:
            feed_demo(link)
            await settle(pilot)
            link.on_message("looptool/v1/test-core/status", b"{not json")
            link.on_message("looptool/v1/test-core/metrics/train", b'{"stream": "train", "schema": 99}')
            await settle(pilot)
            assert any(isinstance(m, BadMessage) for m in seen)
            text = app.query_one(EventLog).visible_text()
            assert "looptool/v1/test-core/status: not JSON" in text
            assert link.bad_total == 2 and "schema 99" in link.last_bad
            assert app.state == "running"
    run(go())


def test_attaching_late_fills_the_tables_from_the_core_history():
    async def go():
        app, link = make(responder=FakeCore(history={"iterations": [
            {"run_id": "cpu-demo-20260101-120000", "iteration": 3, "eval": {"scores": {"overall": 0.4}},
             "assemble": {"error_seeds": 7, "total": 99}},
            {"run_id": "cpu-demo-20260101-120000", "iteration": 4, "probe": PROBE_STATS[2],
             "eval": {"eval_id": "bfcl-4", "scores": {"overall": 0.082}, "per_category": HELD_OUT[1],
                      "acebench_skipped": ACE_SKIPPED}}]}), ask_history=True)
        async with app.run_test(size=SIZE) as pilot:
            link.feed_status(run_id="cpu-demo-20260101-120000", state="running", iteration=3, iterations=4,
                             stage="train", seq=1)
            await until(pilot, lambda: app.query_one("#data-table", DataTable).row_count == 1)
            assert verbs(link) == ["history"]
            assert link.sent[0][1].args == {"table": "iterations", "run_id": "cpu-demo-20260101-120000"}
            acc = app.query_one("#accuracy-table", DataTable)
            assert acc.get_cell("3", "bfcl:overall") == "40.0" and acc.get_cell("3", "held") == "-"
            assert acc.get_cell("4", "held") == "46/100" and acc.get_cell("4", "bfcl:overall") == "8.2 (partial)"
            data = app.query_one("#data-table", DataTable)
            assert data.get_row("3")[1] == "7" and data.get_row("3")[6] == "99"
            await until(pilot, lambda: "probe iter 4: 412/600 mastered (68.7%)" in screen_text(app))
            await until(pilot, lambda: "ACEBench: not evaluated — offline" in screen_text(app))
    run(go())


def test_send_validates_before_publishing():
    link = MemoryLink()
    with pytest.raises(LinkError, match="not connected"):
        link.send("pause")
    link.set_connected(True)
    with pytest.raises(LinkError, match="unknown command 'reboot'"):
        link.send("reboot")
    with pytest.raises(LinkError, match="args.per_category"):
        link.send("eval", {"per_category": 0})
    with pytest.raises(LinkError, match="pause takes no arguments"):
        link.send("pause", {"now": True})
    assert link.published == []
    pc = link.send("eval", {"benchmark": "bfcl", "iteration": 2})
    (topic, raw), = link.published
    assert topic == "looptool/v1/test-core/cmd/eval"
    cmd, args = bp.parse_command("eval", raw)
    assert cmd.id == pc.id and args.iteration == 2 and cmd.sender == "console-test"
    assert link.expire(time.monotonic() + 10) == [pc] and pc.state == "unconfirmed"


def test_a_link_that_dies_is_reported_not_hidden():
    class Broken(MemoryLink):
        async def run(self):
            raise RuntimeError("broker refused the connection: not authorised")

    async def go():
        app = LoopConsole(Broken(), ask_history=False)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: "not authorised" in app.query_one(EventLog).visible_text())
            assert "DISCONNECTED" in header_text(app)
    run(go())
