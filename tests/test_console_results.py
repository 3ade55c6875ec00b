"""Pilot tests of what the console shows of results: the held-out accuracy with counts, probe mastery and
failure classes, ACEBench columns, the v3 breakdown, and the history screen read through the core."""
from __future__ import annotations

from textual.widgets import DataTable, Label

from console.memlink import FakeCore, feed_demo
from console.screens.history import HistoryScreen
from console.widgets.eventlog import EventLog
from console.widgets.panels import AccuracyPanel
from core import busproto as bp

from console_pilot import (HELD_OUT, HELD_OUT_OVERALL, PROBE_STATS, SIZE, _category, feed_subset_run, make,
                            run, screen_text, settle, until)


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
            assert screen.query_one("#evals", DataTable).get_row_at(0)[1] == "bfcl-a1"  # after the mark column
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
