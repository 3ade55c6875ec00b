"""SVG snapshots of the states an operator must recognise at a glance: running, paused, a command
waiting for its ack, disconnected, stale, finished, a run on a held-out subset, the examples screen
(pytest-textual-snapshot; textual pinned to 8.2.8).

Everything shown is fixed: the in-memory link is fed a scripted run with fixed timestamps, the
console's own notes use a fixed clock, times are rendered in UTC, the cursor does not blink.
Regenerate after an intended change with `pytest tests/test_console_snapshots.py --snapshot-update`
and look at the SVGs in tests/__snapshots__/ before committing them.
"""
from __future__ import annotations

import os
import time

import pytest
from textual.widgets import Input

from console.app import LoopConsole
from console.memlink import MemoryLink, feed_demo
from console_pilot import feed_subset_run

SIZE = (140, 45)
FIXED = 1_700_000_100.0


@pytest.fixture(autouse=True)
def utc():
    old = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if old is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = old
    time.tzset()


def app_with(state: str = "running", read_only: bool = False):
    link = MemoryLink(read_only=read_only)
    link.telemetry.clock = lambda: FIXED
    return LoopConsole(link, ask_history=False, stale_after=3600), link


def prepared(app, link, *steps):
    async def run_before(pilot):
        for _ in range(200):  # the link's worker connects first, so every run logs in the same order
            if link.connected:
                break
            await pilot.pause(0.01)
        assert link.connected
        for inp in app.query(Input):
            inp.cursor_blink = False
        for step in steps:
            step(link)
        await pilot.pause(0.1)
        app.redraw()
        app.clear_notifications()
        await pilot.pause()
    return run_before


def test_snapshot_running(snap_compare):
    app, link = app_with()
    assert snap_compare(app, terminal_size=SIZE, run_before=prepared(app, link, feed_demo))


def test_snapshot_held_out_subset_with_acebench_skipped(snap_compare):
    """A cpu-demo run: the held-out counts on a 4-category subset, the Overall marked partial,
    ACEBench's reason for not being evaluated, probe mastery by kind and the failure classes."""
    app, link = app_with()
    assert snap_compare(app, terminal_size=SIZE, run_before=prepared(app, link, feed_subset_run))


def test_snapshot_paused(snap_compare):
    app, link = app_with()
    assert snap_compare(app, terminal_size=SIZE,
                        run_before=prepared(app, link, lambda lk: feed_demo(lk, state="paused")))


def test_snapshot_command_pending(snap_compare):
    app, link = app_with()
    assert snap_compare(app, terminal_size=SIZE,
                        run_before=prepared(app, link, feed_demo, lambda lk: lk.send("stop")))


def test_snapshot_disconnected(snap_compare):
    app, link = app_with()
    assert snap_compare(app, terminal_size=SIZE,
                        run_before=prepared(app, link, feed_demo, lambda lk: lk.set_connected(False)))


def test_snapshot_finished_read_only(snap_compare):
    def finish(lk):
        feed_demo(lk)
        lk.feed_event("run_finished", ts=1_700_000_090)
        lk.feed_status(run_id="cpu-demo-20260101-120000", state="finished", iteration=4, iterations=4,
                       seq=99, ts=1_700_000_090)

    app, link = app_with(read_only=True)
    assert snap_compare(app, terminal_size=SIZE, run_before=prepared(app, link, finish))


def test_snapshot_examples_screen(snap_compare, tmp_path):
    """`x` on iteration 1's probe: the page's table, the second row's label beside the policy's reply."""
    from console.screens.samples import SamplesScreen
    from samples_data import samples_responder, write_run

    run_dir, _, evals = write_run(tmp_path)
    link = MemoryLink(responder=samples_responder(run_dir, evals))
    link.telemetry.clock = lambda: FIXED
    app = LoopConsole(link, ask_history=False, stale_after=3600)
    before = prepared(app, link, feed_demo)

    async def open_examples(pilot):
        await before(pilot)
        await pilot.press("x")
        for _ in range(200):
            if isinstance(app.screen, SamplesScreen) and app.screen.page is not None:
                break
            await pilot.pause(0.01)
        for inp in app.screen.query(Input):
            inp.cursor_blink = False
        await pilot.press("down")
        await pilot.pause(0.1)
        app.clear_notifications()
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=open_examples)
