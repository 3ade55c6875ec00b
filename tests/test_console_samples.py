"""Pilot tests of the examples screen (`x`): pages of an iteration's samples asked of the core, the two
sides of the selected row, filters and stages, paging, the rendered prompt, and what a refusal shows."""
from __future__ import annotations

import pytest
from textual.widgets import DataTable, Input, Label, Select, Static

import console.screens.samples as samples_screen
from console.memlink import feed_demo
from console.screens.samples import SamplesScreen, parse_filter_text
from samples_data import STAND_IN_PROMPT, samples_responder, write_run

from console_pilot import SIZE, make, run, settle, until


def text_of(screen, wid: str) -> str:
    return str(screen.query_one(f"#{wid}", Static).render())


def sent_samples(link) -> list[dict]:
    return [c.args for v, c in link.sent if v == "samples"]


@pytest.fixture
def responder(tmp_path):
    run_dir, _, evals = write_run(tmp_path)
    return samples_responder(run_dir, evals)


async def open_examples(app, link, pilot):
    feed_demo(link)  # iteration 2 of 4: the screen opens on iteration 1, whose probe is complete
    await settle(pilot)
    await pilot.press("x")
    await until(pilot, lambda: isinstance(app.screen, SamplesScreen) and app.screen.page is not None)
    return app.screen


def test_examples_screen_shows_label_and_prediction_side_by_side(responder):
    async def go():
        app, link = make(responder=responder)
        async with app.run_test(size=SIZE) as pilot:
            assert "Examples of an iteration" in [c.title for c in app.get_system_commands(app.screen)]
            screen = await open_examples(app, link, pilot)
            assert sent_samples(link) == [{"iteration": 1, "stage": "probe", "offset": 0, "limit": 20}]
            table = screen.query_one(DataTable)
            assert table.row_count == 4 and [c.label.plain for c in table.ordered_columns][:4] == [
                "id", "kind", "mastered", "failure"]
            assert [str(c) for c in table.get_row_at(1)][:4] == ["s2", "simple", "no", "no_call"]
            assert text_of(screen, "samples-left") == "[get_weather(city='Paris')]"
            await pilot.press("down")
            await settle(pilot)
            assert text_of(screen, "samples-left") == "[get_weather(city='Oslo')]"
            assert text_of(screen, "samples-right") == "I can't help with that."
            assert "question: Weather in Oslo?" in text_of(screen, "samples-detail")
            assert screen.query_one("#samples-left-box").border_title == "label"
            assert screen.query_one("#samples-right-box").border_title == "prediction"
            assert "4 of 4 row(s) from the core; last page" in str(screen.query_one("#samples-status", Label).render())
            await pilot.press("escape")
            await settle(pilot)
            assert not isinstance(app.screen, SamplesScreen)
    run(go())


def test_pages_turn_with_n_and_b(responder, monkeypatch):
    monkeypatch.setattr(samples_screen, "PAGE", 2)

    async def go():
        app, link = make(responder=responder)
        async with app.run_test(size=SIZE) as pilot:
            screen = await open_examples(app, link, pilot)
            table = screen.query_one(DataTable)
            assert [str(table.get_row_at(i)[0]) for i in range(table.row_count)] == ["s1", "s2"]
            await pilot.press("n")
            await until(pilot, lambda: screen.page["offset"] == 2)
            assert [str(table.get_row_at(i)[0]) for i in range(table.row_count)] == ["s3", "s4"]
            assert "3-4 of 4" in str(table.border_title)
            right = text_of(screen, "samples-right")  # s3's reply; s4's is cut by the core
            assert right == "[get_weather(city='London')]"
            await pilot.press("down")
            await settle(pilot)
            assert "more characters]" in text_of(screen, "samples-right")
            await pilot.press("n")  # the last page: nothing is asked
            await settle(pilot)
            assert len(sent_samples(link)) == 2
            assert "this is the last page" in str(screen.query_one("#samples-status", Label).render())
            await pilot.press("b")
            await until(pilot, lambda: screen.page["offset"] == 0)
            assert [a["offset"] for a in sent_samples(link)] == [0, 2, 0]
    run(go())


def test_filters_and_stages_ask_the_core_again(responder):
    async def go():
        app, link = make(responder=responder)
        async with app.run_test(size=SIZE) as pilot:
            screen = await open_examples(app, link, pilot)
            screen.query_one("#samples-filter", Input).focus()
            await pilot.press(*"failure=no_call", "enter")
            await until(pilot, lambda: screen.page["filters"] == {"failure": "no_call"})
            assert sent_samples(link)[-1]["filters"] == {"failure": "no_call"}
            assert screen.query_one(DataTable).row_count == 1
            screen.query_one("#samples-filter", Input).value = ""
            screen.query_one("#samples-stage", Select).value = "judge"
            await until(pilot, lambda: screen.page["stage"] == "judge")
            assert sent_samples(link)[-1] == {"iteration": 1, "stage": "judge", "offset": 0, "limit": 20}
            table = screen.query_one(DataTable)
            assert [str(table.get_row_at(i)[1]) for i in range(3)] == ["PRED_WRONG", "LABEL_WRONG", "BOTH_WRONG"]
            await pilot.press("down")
            await settle(pilot)
            assert "relabelled to: [get_weather(city='London')]" in text_of(screen, "samples-detail")
            screen.query_one("#samples-filter", Input).value = "failure=no_call"  # not a judge key
            screen.apply()
            await until(pilot, lambda: "rejected" in str(screen.query_one("#samples-status", Label).render()))
            assert "filter 'failure': not a key of stage judge; its keys are id, verdict, outcome, by" in str(
                screen.query_one("#samples-status", Label).render())
            screen.query_one("#samples-filter", Input).value = ""
            screen.query_one("#samples-iteration", Input).value = "2"  # the last iteration: no probe, no judge
            screen.apply()
            await until(pilot, lambda: "failed" in str(screen.query_one("#samples-status", Label).render()))
            assert "iter-2/judge.jsonl does not exist" in str(screen.query_one("#samples-status", Label).render())
    run(go())


def test_o_fetches_the_rendered_prompt_and_o_goes_back(responder):
    async def go():
        app, link = make(responder=responder)
        async with app.run_test(size=SIZE) as pilot:
            screen = await open_examples(app, link, pilot)
            await pilot.press("down", "o")
            await until(pilot, lambda: screen.prompt_shown)
            assert sent_samples(link)[-1] == {"iteration": 1, "stage": "probe", "prompt_id": "s2"}
            assert text_of(screen, "samples-prompt") == STAND_IN_PROMPT
            assert not screen.query_one("#samples-sides").display
            await pilot.press("o")
            await settle(pilot)
            assert screen.query_one("#samples-sides").display and not screen.prompt_shown
            screen.query_one("#samples-stage", Select).value = "eval"
            await until(pilot, lambda: screen.page["stage"] == "eval")
            await pilot.press("o")
            await until(pilot, lambda: screen.prompt_shown)
            assert text_of(screen, "samples-prompt").startswith("(no prompt) eval records do not carry their prompt")
            await pilot.press("escape")  # first back to the sides, then off the screen
            await settle(pilot)
            assert isinstance(app.screen, SamplesScreen) and not screen.prompt_shown
    run(go())


def test_read_only_consoles_have_no_examples_key():
    async def go():
        app, link = make(read_only=True)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("x")
            await settle(pilot)
            assert not isinstance(app.screen, SamplesScreen) and link.published == []
    run(go())


def test_filter_text_is_key_value_pairs():
    assert parse_filter_text("failure=no_call, kind=simple") == {"failure": "no_call", "kind": "simple"}
    assert parse_filter_text("  ") == {}
    with pytest.raises(ValueError, match="filter 'no_call': expected key=value"):
        parse_filter_text("no_call")
