"""Pilot tests of the operator console over the in-memory link: every binding, every screen, with
message_hook assertions on the typed messages and on the commands the link put on the "bus"."""
from __future__ import annotations

import asyncio
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
from console.screens.history import HistoryScreen
from console.widgets.eventlog import EventLog
from console.widgets.panels import AccuracyPanel, CommandsPanel
from core import busproto as bp

SIZE = (140, 45)


def run(coro, timeout: float = 60.0):
    async def guarded():
        return await asyncio.wait_for(coro, timeout)
    return asyncio.run(guarded())


def make(responder=True, **kw):
    link_kw = {k: kw.pop(k) for k in ("read_only", "ack_timeout", "connected") if k in kw}
    link = MemoryLink(responder=FakeCore() if responder is True else responder or None, **link_kw)
    kw.setdefault("ask_history", False)
    return LoopConsole(link, **kw), link


def header_text(app) -> str:
    return str(app.query_one("#header").render())


def screen_text(app) -> str:
    """What the terminal shows now, line by line, as plain text (the screen's compositor output)."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


# -- a cpu-demo shaped run: a 4-category held-out BFCL-v3 subset, ACEBench configured but offline --------

def _category(correct: int, total: int, errors: dict | None = None) -> dict:
    return {"correct": correct, "total": total, "accuracy": correct / total, "error_types": errors or {}}


HELD_OUT = [  # evals/bfcl.summarize's per_category, iterations 0 (the base model) and 1
    {"simple_python": _category(12, 25, {"value_error:string": 9, "type_error:simple": 4}),
     "multiple": _category(3, 25, {"simple_function_checker:wrong_func_name": 22}),
     "parallel": _category(0, 25, {"parallel_function_checker_no_order:wrong_count": 25}),
     "irrelevance": _category(25, 25)},
    {"simple_python": _category(15, 25, {"value_error:string": 10}),
     "multiple": {"correct": 9, "total": 25, "accuracy": 0.36},  # no error_types: an older summary
     "parallel": _category(2, 25, {"parallel_function_checker_no_order:wrong_count": 23}),
     "irrelevance": _category(20, 25, {"irrelevance_error:decoder_success": 5})},
]
HELD_OUT_OVERALL = (0.067, 0.082)  # v3 Overall over the subset: the 13 other categories count 0
ACE_SKIPPED = ("offline and no eval.acebench_data_dir: run `python -m evals.acebench.fetch DIR` where the "
               "network is reachable, then set eval.acebench_data_dir = DIR")
FAILURE_CLASSES = ("no_call", "unexpected_call", "malformed", "wrong_function", "missing_argument",
                   "extra_argument", "wrong_value")


def _probe(by_kind: dict, failures: dict, by_kind_failures: dict) -> dict:
    """core/stages/probe.summarize's stats (every class present, zeros included)."""
    mastered, total = sum(m for m, _ in by_kind.values()), sum(t for _, t in by_kind.values())
    return {"samples": total, "mastered": mastered, "mismatched": total - mastered, "mean_ppl": 1.9,
            "by_kind": {k: {"mastered": m, "total": t} for k, (m, t) in sorted(by_kind.items())},
            "failure_classes": {c: failures.get(c, 0) for c in FAILURE_CLASSES},
            "by_kind_failures": by_kind_failures, "unclassified": 0}


PROBE_STATS = {
    1: _probe({"simple": (150, 200), "multiple": (80, 120), "parallel": (30, 100), "clarify": (60, 90),
               "refuse": (60, 90)},
              {"no_call": 30, "unexpected_call": 40, "malformed": 10, "wrong_function": 30, "missing_argument": 40,
               "extra_argument": 5, "wrong_value": 65},
              {"parallel": {"missing_argument": 40, "wrong_value": 30}, "clarify": {"unexpected_call": 30}}),
    2: _probe({"simple": (170, 200), "multiple": (86, 120), "parallel": (28, 100), "clarify": (66, 90),
               "refuse": (62, 90)},
              {"no_call": 22, "unexpected_call": 31, "wrong_function": 30, "missing_argument": 44,
               "extra_argument": 6, "wrong_value": 55},
              {"parallel": {"missing_argument": 38, "wrong_value": 31}, "clarify": {"unexpected_call": 24},
               "simple": {"wrong_value": 20}}),
}


def feed_subset_run(link, *, ace_skipped: bool = True) -> None:
    """Iteration 2 of 4 training after two held-out evals and two probes, as the daemon publishes them
    (stage_finished events with the engine's briefs, then the accuracy metric and eval_done)."""
    from core import busproto

    link.set_online(True)
    for j, (per_category, overall) in enumerate(zip(HELD_OUT, HELD_OUT_OVERALL)):
        stats = {"eval_id": f"bfcl-{j}", "scores": {"overall": overall, "irrelevance": 0.5},
                 "per_category": per_category, "wall_s": 40.0}
        if ace_skipped:
            stats["acebench_skipped"] = ACE_SKIPPED
        link.feed_event("stage_finished", stage="eval", iteration=j, wall_s=40.0, stats=stats,
                        ts=1_700_000_010 + j)
        link.feed_metrics("accuracy", stage="eval", iteration=j, benchmark="bfcl-v3", eval_id=f"bfcl-{j}",
                          scores=stats["scores"], ts=1_700_000_010 + j)
        link.feed_event("eval_done", iteration=j, benchmark="bfcl-v3", eval_id=f"bfcl-{j}", on_demand=False,
                        scores=stats["scores"], ts=1_700_000_010 + j)
    for j, stats in PROBE_STATS.items():
        link.feed_event("stage_finished", stage="probe", iteration=j, wall_s=60.0, stats=stats, ts=1_700_000_020 + j)
    link.feed_event("stage_started", stage="train", iteration=2, ts=1_700_000_031)
    link.feed_status(run_id="cpu-demo-20260101-120000", state="running", iteration=2, iterations=4, stage="train",
                     seq=7, ts=1_700_000_040,
                     progress=busproto.Progress(stage="train", iteration=2, done=12, total=40, eta_s=95.0))


def verbs(link) -> list[str]:
    return [v for v, _ in link.sent]


async def settle(pilot, t: float = 0.05):
    await pilot.pause(t)
    await pilot.pause()


async def until(pilot, cond, timeout: float = 5.0):
    """Poll (timers run at 2-4 Hz, and a busy machine delays them)."""
    for _ in range(int(timeout / 0.05)):
        if cond():
            return
        await pilot.pause(0.05)
    assert cond()


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


HISTORY = {
    "runs": [{"run_id": "run-a", "state": "finished", "iterations": 2, "model": "embedded",
              "updated_at": "2026-01-01T10:00:00"},
             {"run_id": "run-b", "state": "stopped", "iterations": 2, "model": "embedded",
              "updated_at": "2026-01-02T10:00:00"}],
    "iterations": [
        {"run_id": rid, "iteration": j, "eval": {"scores": {"overall": base + 0.05 * j}},
         "assemble": {"error_seeds": 10 * j, "expansions": 40, "high_ppl": 5, "fresh_seeds": 60, "topped_up": 0,
                      "total": 105 + 10 * j},
         "judge": {"verdicts": {"PRED_WRONG": 9, "LABEL_WRONG": j}, "label_corrections": j}}
        for rid, base in (("run-a", 0.20), ("run-b", 0.25)) for j in (1, 2)],
    "evals": [{"eval_id": "bfcl-a1", "run_id": "run-a", "iteration": 1, "scores": {"overall": 0.25}}],
}


def test_history_screen_reads_through_the_core_and_compares():
    async def go():
        app, link = make(responder=FakeCore(history=HISTORY))
        async with app.run_test(size=SIZE) as pilot:
            feed_demo(link)
            await settle(pilot)
            await pilot.press("r")
            await settle(pilot)
            screen = app.screen
            assert isinstance(screen, HistoryScreen)
            assert link.sent[-1][1].args == {"table": "runs", "limit": 200}
            runs = screen.query_one("#runs", DataTable)
            assert runs.row_count == 2 and runs.get_row_at(0)[1] == "run-a"
            await pilot.press("enter")  # open run-a
            await settle(pilot)
            asked = [c.args for v, c in link.sent if v == "history"]
            assert {"table": "iterations", "run_id": "run-a", "limit": 200} in asked
            assert {"table": "evals", "run_id": "run-a", "limit": 200} in asked
            its = screen.query_one("#iterations", DataTable)
            assert its.row_count == 2 and its.get_row_at(1)[4] == "30.0" and its.get_row_at(1)[2] == "-"
            assert screen.query_one("#evals", DataTable).get_row_at(0)[0] == "bfcl-a1"
            # two runs side by side
            await pilot.press("space", "down", "space", "c")
            await settle(pilot)
            cmp_ = screen.query_one("#compare", DataTable)
            rows = {cmp_.get_row_at(i)[0]: tuple(cmp_.get_row_at(i)[1:]) for i in range(cmp_.row_count)}
            assert rows["iter 2 BFCL Overall"] == ("30.0", "35.0", "+5")
            # two iterations of the open run side by side
            its.focus()
            await pilot.press("space", "down", "space", "c")
            await settle(pilot)
            rows = {cmp_.get_row_at(i)[0]: tuple(cmp_.get_row_at(i)[1:]) for i in range(cmp_.row_count)}
            assert rows["error_seeds"] == ("10", "20", "+10") and rows["label corrections"] == ("1", "2", "+1")
            assert "iter 1" in str(cmp_.border_title) and "iter 2" in str(cmp_.border_title)
            await pilot.press("r")  # no second history screen on top of the first
            await settle(pilot)
            assert len(app.screen_stack) == 2
            await pilot.press("escape")
            await settle(pilot)
            assert not isinstance(app.screen, HistoryScreen)
    run(go())


def test_history_failure_is_reported_on_the_screen():
    def refuse(link, verb, cmd):
        link.feed_ack(cmd.id, "rejected", "this core has no results store", verb=verb)

    async def go():
        app, link = make(responder=refuse)
        async with app.run_test(size=SIZE) as pilot:
            feed_demo(link)
            await settle(pilot)
            await pilot.press("r")
            await settle(pilot)
            assert "rejected - this core has no results store" in str(
                app.screen.query_one("#history-status", Label).render())
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
            assert "ACEBench: not evaluated — offline" in screen_text(app)
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


def test_the_runs_held_out_accuracy_is_shown_with_counts_and_the_overall_marked_partial():
    async def go():
        app, link = make()
        async with app.run_test(size=SIZE) as pilot:
            feed_subset_run(link)
            await until(pilot, lambda: all(s in screen_text(app) for s in (
                "Overall (partial, 4/17 categories)", "ACEBench: not evaluated", "eval errors, iter 1:", "40/100")))
            acc = app.query_one("#accuracy-table", DataTable)
            assert [acc.get_cell("0", k) for k in ("held", "pct", "delta", "bfcl:overall")] == \
                ["40/100", "40.0", "", "6.7 (partial)"]
            assert [acc.get_cell("1", k) for k in ("held", "pct", "delta", "bfcl:overall")] == \
                ["46/100", "46.0", "+6.0", "8.2 (partial)"]
            assert [acc.get_cell("1", f"cat:{c}") for c in HELD_OUT[1]] == ["15/25", "9/25", "2/25", "20/25"]
            columns = [c.key.value for c in acc.ordered_columns]
            assert "bfcl:irrelevance" not in columns  # a subset's v3 breakdown would read 50.0 for 25/25
            assert not any(c.startswith("ace:") for c in columns)  # no "-" columns for a skipped benchmark
            text = screen_text(app)
            lines = text.splitlines()
            assert any("simple_python" in ln and "multiple" in ln and "irrelevance" in ln for ln in lines)
            assert any("12/25" in ln and "40/100" in ln and "6.7 (partial)" in ln for ln in lines)
            assert "Overall (partial, 4/17 categories): BFCL-v3's formula, the other 13 count as 0" in text
            skip = next(ln for ln in lines if "ACEBench: not evaluated" in ln)
            assert "ACEBench: not evaluated — offline and no eval.acebench_data_dir" in skip
            assert "…" in skip and "network is reachable" not in text  # cut to the panel, not wrapped over it
            errors = next(ln for ln in lines if "eval errors, iter 1:" in ln)
            assert "parallel: parallel_function_checker_no_order:wrong_count 23" in errors
            assert app.query_one(AccuracyPanel)._plotted == {"heldout": [(0, 0.4), (1, 0.46)], "acebench": []}
            log = app.query_one(EventLog).visible_text()
            assert "held-out 46/100 (46.0%) overall 8.2 (partial, 4/17 categories)" in log
    run(go())


def test_probe_mastery_by_kind_and_failure_classes_are_shown_with_the_change():
    async def go():
        app, link = make()
        async with app.run_test(size=SIZE) as pilot:
            feed_subset_run(link)
            shown = ("probe iter 2: 412/600 mastered (68.7%, +5.3 vs iter 1)",
                     "simple 170/200 (+20)", "multiple 86/120 (+6)", "parallel 28/100 (-2)",
                     "clarify 66/90 (+6)", "refuse 62/90 (+2)",
                     "wrong_value 55 (-10)", "missing_argument 44 (+4)", "unexpected_call 31 (-9)",
                     "wrong_function 30 ", "no_call 22 (-8)", "extra_argument 6 (+1)",
                     "malformed 0 (-10)",  # gone since the last probe: still worth a line
                     "parallel: missing_argument 38, wrong_value 31", "clarify: unexpected_call 24")
            await until(pilot, lambda: all(s in screen_text(app) for s in shown))  # laid out on the next refresh
            link.feed_event("stage_finished", stage="probe", iteration=3, stats=PROBE_STATS[1])
            await until(pilot, lambda: "probe iter 3: 380/600 mastered (63.3%, -5.3 vs iter 2)" in screen_text(app))
            assert "simple 150/200 (-20)" in screen_text(app)
            assert "probe iter 3 mastered 380/600" in app.query_one(EventLog).visible_text()
    run(go())


def test_acebench_columns_stay_when_it_was_evaluated():
    async def go():
        app, link = make()
        async with app.run_test(size=SIZE) as pilot:
            feed_subset_run(link, ace_skipped=False)
            link.feed_metrics("accuracy", stage="eval", iteration=1, benchmark="acebench",
                              scores={"normal": 0.41, "special": 0.33, "agent": 0.05, "overall": 0.31})
            acc = app.query_one("#accuracy-table", DataTable)
            await until(pilot, lambda: "ace:overall" in acc.columns)
            assert acc.get_cell("1", "ace:overall") == "31.0" and acc.get_cell("1", "ace:normal") == "41.0"
            assert acc.get_cell("0", "ace:overall") == "-"
            assert "ACEBench: not evaluated" not in screen_text(app)
            assert app.query_one(AccuracyPanel)._plotted["acebench"] == [(1, 0.31)]
    run(go())


def test_a_metrics_flood_does_not_rebuild_the_result_panels(monkeypatch):
    from console.widgets import panels

    calls = {"accuracy": 0, "probe": 0}
    accuracy_view, probe_summary = panels.accuracy_view, panels.probe_summary

    def counted(name, fn):
        def wrapper(tel):
            calls[name] += 1
            return fn(tel)
        return wrapper

    monkeypatch.setattr(panels, "accuracy_view", counted("accuracy", accuracy_view))
    monkeypatch.setattr(panels, "probe_summary", counted("probe", probe_summary))

    async def go():
        app, link = make()
        async with app.run_test(size=SIZE) as pilot:
            feed_subset_run(link)
            await until(pilot, lambda: "probe iter 2:" in screen_text(app))
            before = dict(calls)
            for i in range(2000):
                link.feed_metrics("throughput", stage="train", iteration=2, tok_s=float(i))
                link.feed_metrics("hardware", cpu_pct=float(i % 100), ram_pct=40.0, gpus=[])
            await until(pilot, lambda: "1,999" in str(app.query_one("#tp-tok_s-label").render()))
            assert calls == before  # redrawn by the timer, but nothing they show changed
            link.feed_event("stage_finished", stage="probe", iteration=3, stats=PROBE_STATS[1])
            await until(pilot, lambda: calls["probe"] == before["probe"] + 1)
    run(go())


def test_an_eval_of_every_category_shows_the_v3_breakdown_without_the_partial_mark():
    from console.telemetry import Telemetry
    from console.widgets.panels import accuracy_notes, accuracy_view
    from evals.bfcl_data import CATEGORIES as BFCL_V3_CATEGORIES

    tel = Telemetry()
    scores = {"overall": 0.268, "non_live_ast": 0.354, "live": 0.251, "multi_turn": 0.012, "relevance": 0.5,
              "irrelevance": 0.724}
    full = {c: _category(1, 4) for c in BFCL_V3_CATEGORIES}
    tel.absorb_event(bp.Event(event="stage_finished", stage="eval", iteration=1,
                              stats={"scores": scores, "per_category": full}))
    tel.absorb_event(bp.Event(event="stage_finished", stage="eval", iteration=2,
                              stats={"scores": {"overall": 0.1, "irrelevance": 0.5}, "per_category": HELD_OUT[0]}))
    tel.absorb_metrics(bp.Metrics(stream="accuracy", iteration=1, benchmark="acebench", scores={"overall": 0.31}))
    view = accuracy_view(tel)
    keys = [k for k, _ in view.columns]
    assert keys[:10] == ["iter", "held", "pct", "delta", "bfcl:overall", "bfcl:non_live_ast", "bfcl:live",
                         "bfcl:multi_turn", "bfcl:relevance", "bfcl:irrelevance"]
    assert keys[10:14] == ["ace:normal", "ace:special", "ace:agent", "ace:overall"]  # before 17 categories
    assert keys[14:] == [f"cat:{c}" for c in BFCL_V3_CATEGORIES]
    rows = {k: dict(zip(keys, cells)) for k, cells in view.rows}
    assert rows["1"]["held"] == "17/68" and rows["1"]["bfcl:overall"] == "26.8" and rows["1"]["bfcl:live"] == "25.1"
    assert rows["2"]["bfcl:overall"] == "10.0 (partial)" and rows["2"]["bfcl:irrelevance"] == "-"
    assert rows["2"]["cat:live_simple"] == "-" and rows["2"]["ace:overall"] == "-"
    assert rows["1"]["ace:overall"] == "31.0" and rows["2"]["delta"] == "+15.0"
    assert [n.plain.split(":")[0] for n in accuracy_notes(tel)] == ["Overall (partial, 4/17 categories)",
                                                                   "eval errors, iter 2"]


def test_history_iterations_show_the_held_out_counts_and_probe_for_comparison():
    from console.screens.history import flatten_iteration, side_by_side

    docs = [{"iteration": j, "eval": {"scores": {"overall": ov}, "per_category": per}, "probe": PROBE_STATS.get(j, {})}
            for j, (per, ov) in enumerate(zip(HELD_OUT, HELD_OUT_OVERALL))]
    a, b = flatten_iteration(docs[0]), flatten_iteration(docs[1])
    assert (b["held-out"], b["held-out %"], b["BFCL Overall"]) == ("46/100", "46.0", "8.2")
    assert b["BFCL categories"] == "partial, 4/17 categories" and b["held-out parallel"] == "2/25"
    assert b["probe mastered %"] == "63.3" and b["probe parallel mastered %"] == "30.0"
    assert b["failures wrong_value"] == "65" and "probe mastered %" not in a
    rows = {r[0]: r[1:] for r in side_by_side(a, b)}
    assert rows["held-out %"] == ("40.0", "46.0", "+6") and rows["held-out multiple"] == ("3/25", "9/25", "")
