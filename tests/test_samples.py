"""core.samples on a hand-written run (tests/samples_data.py): each stage's rows and joins, filters,
paging, bounded rows, and one clear error for a bad filter, stage, limit or a file that is not there."""
from __future__ import annotations

import json

import pytest

from core import samples
from core.errors import UserError
from samples_data import BFCL_RECORDS, LONG_REPLY, PROBE, RUN_ID, write_run


@pytest.fixture
def run(tmp_path):
    run_dir, runs, evals = write_run(tmp_path)
    return run_dir, samples.evals_of(evals, RUN_ID, run_dir, 1)


def ids(page: dict) -> list[str]:
    return [r["id"] for r in page["rows"]]


def test_probe_rows_put_the_dataset_label_beside_the_reply(run):
    run_dir, _ = run
    page = samples.page(run_dir, 1, "probe")
    assert page["total"] == 4 and ids(page) == ["s1", "s2", "s3", "s4"]  # the bad line and the torn one skipped
    assert page["columns"] == ["id", "kind", "mastered", "failure", "reward", "ppl"]
    assert page["sides"] == ["label", "prediction"]
    s1, s2, s3, s4 = page["rows"]
    assert (s1["left"], s1["right"], s1["mastered"], s1["failure"]) == (
        "[get_weather(city='Paris')]", "[get_weather(city='Paris')]", True, None)
    assert (s2["left"], s2["right"], s2["failure"], s2["kind"]) == (
        "[get_weather(city='Oslo')]", "I can't help with that.", "no_call", "simple")
    assert s3["left"] == "Which city?" and s3["failure"] == "unexpected_call"
    assert s4["left"] == "[get_weather(city='Rome'), get_weather(city='Bern')]"
    assert "question: Weather in Oslo?" in s2["detail"] and "7 tokens" in s2["detail"]


def test_long_texts_are_cut_with_a_marker(run):
    run_dir, _ = run
    (row,) = samples.page(run_dir, 1, "probe", {"id": "s4"})["rows"]
    cut = len(LONG_REPLY) - samples.MAX_TEXT_CHARS
    assert row["right"] == LONG_REPLY[:samples.MAX_TEXT_CHARS] + f" … [{cut} more characters]"
    assert samples.clip("x" * 300, samples.MAX_FIELD_CHARS).endswith(" … [100 more characters]")


def test_probe_filters_by_failure_kind_and_mastery(run):
    run_dir, _ = run
    assert ids(samples.page(run_dir, 1, "probe", {"failure": "no_call"})) == ["s2"]
    assert ids(samples.page(run_dir, 1, "probe", {"error_type": "malformed"})) == ["s4"]  # the alias
    assert ids(samples.page(run_dir, 1, "probe", {"category": "SIMPLE"})) == ["s1", "s2"]  # kind, any case
    assert ids(samples.page(run_dir, 1, "probe", {"mastered": "false", "kind": "simple"})) == ["s2"]
    assert samples.page(run_dir, 1, "probe", {"failure": "wrong_value"})["total"] == 0


def test_paging_counts_every_match_and_returns_one_page(run):
    run_dir, _ = run
    first = samples.page(run_dir, 1, "probe", offset=0, limit=2)
    second = samples.page(run_dir, 1, "probe", offset=2, limit=2)
    past = samples.page(run_dir, 1, "probe", offset=10, limit=2)
    assert (ids(first), ids(second), ids(past)) == (["s1", "s2"], ["s3", "s4"], [])
    assert first["total"] == second["total"] == past["total"] == 4
    assert ids(samples.page(run_dir, 1, "probe", {"mastered": "false"}, offset=1, limit=1)) == ["s3"]


def test_a_page_streams_a_large_file(run, tmp_path):
    run_dir, _ = run
    big = run_dir / "iter-1" / "probe.jsonl"
    with open(big, "w") as fh:
        for i in range(20_000):
            fh.write(json.dumps({**PROBE[1], "id": f"b{i}"}) + "\n")
    page = samples.page(run_dir, 1, "probe", offset=19_990, limit=50)
    assert page["total"] == 20_000 and ids(page) == [f"b{i}" for i in range(19_990, 20_000)]
    assert page["rows"][0]["left"] == "(the sample is not in the dataset file)"


def test_judge_rows_show_the_verdict_reason_and_relabel(run):
    run_dir, _ = run
    page = samples.page(run_dir, 1, "judge")
    assert ids(page) == ["s2", "s3", "s4"] and page["columns"][:2] == ["id", "verdict"]
    s2, s3, _ = page["rows"]
    assert (s2["left"], s2["right"], s2["relabelled"], s2["relabel"]) == (
        "[get_weather(city='Oslo')]", "I can't help with that.", False, None)
    assert "reason: the label's calls are valid and grounded" in s2["detail"]
    assert (s3["verdict"], s3["by"], s3["left"], s3["relabel"]) == (
        "LABEL_WRONG", "llm", "Which city?", "[get_weather(city='London')]")
    assert "relabelled to: [get_weather(city='London')]" in s3["detail"] and "votes: LABEL_WRONG" in s3["detail"]
    assert ids(samples.page(run_dir, 1, "judge", {"verdict": "label_wrong"})) == ["s3"]
    assert ids(samples.page(run_dir, 1, "judge", {"by": "rule"})) == ["s2", "s4"]


def test_expansions_stand_beside_their_seed(run):
    run_dir, _ = run
    page = samples.page(run_dir, 1, "expand")
    assert ids(page) == ["s2-x0", "s2-x1", "s3-x0"] and page["sides"] == ["seed", "expansion"]
    x0, _, x3 = page["rows"]
    assert (x0["seed"], x0["variation"], x0["kind"]) == ("s2", "data", "simple")
    assert x0["left"] == "user: Weather in Oslo?\n=> label: [get_weather(city='Oslo')]"
    assert x0["right"] == "user: Tell me the weather in Lima.\n=> label: [get_weather(city='Lima')]"
    assert x0["detail"] == "seed s2: verdict PRED_WRONG, 2 of 3 generated kept"
    assert x3["left"].endswith("=> label: [get_weather(city='London')]")  # the relabelled seed, as expanded
    assert ids(samples.page(run_dir, 1, "expand", {"seed": "s2", "variation": "persona"})) == ["s2-x1"]


def test_eval_records_of_the_iteration_raw_beside_decoded(run):
    run_dir, evals = run
    assert [e["eval_id"] for e in evals] == ["bfcl-t1", "acebench-t1"]
    page = samples.page(run_dir, 1, "eval", evals=evals)
    assert ids(page) == [r["id"] for r in BFCL_RECORDS] + ["normal_atom_bool_1"]
    first, second = page["rows"][:2]
    assert (first["benchmark"], first["valid"], first["left"]) == ("bfcl-v3", True, "[math.hypot(x=3, y=4)]")
    assert json.loads(first["right"]) == [{"math.hypot": {"x": 3, "y": 4}}]
    assert second["right"] == "(nothing decoded)" and second["detail"] == "error: not a Python call list"
    assert ids(samples.page(run_dir, 1, "eval", {"error_type": "ast_decoder"}, evals=evals)) == ["simple_python_2"]
    assert ids(samples.page(run_dir, 1, "eval", {"category": "multiple"}, evals=evals)) == ["multiple_3"]
    assert ids(samples.page(run_dir, 1, "eval", {"benchmark": "acebench"}, evals=evals)) == ["normal_atom_bool_1"]
    assert samples.page(run_dir, 1, "eval", {"valid": "false"}, evals=evals)["total"] == 3
    reply = samples.prompt(run_dir, 1, "eval", "multiple_3", evals=evals)
    assert reply["prompt"] is None and "do not carry their prompt" in reply["note"] and reply["eval_id"] == "bfcl-t1"


def test_bad_filters_stages_and_bounds_are_one_clear_error(run):
    run_dir, evals = run
    with pytest.raises(UserError, match=r"filter 'verdict': not a key of stage probe; its keys are id, kind, "
                                        r"failure, mastered"):
        samples.page(run_dir, 1, "probe", {"verdict": "PRED_WRONG"})
    with pytest.raises(UserError, match="filter mastered='maybe': expected true or false"):
        samples.page(run_dir, 1, "probe", {"mastered": "maybe"})
    with pytest.raises(UserError, match="stage 'train': expected one of probe, judge, expand, eval"):
        samples.page(run_dir, 1, "train")
    with pytest.raises(UserError, match=r"limit 51: expected 1\.\.50"):
        samples.page(run_dir, 1, "probe", limit=51)
    with pytest.raises(UserError, match=r"--filter 'failure': expected key=value"):
        samples.parse_filters(["failure"])
    assert samples.parse_filters(["failure = no_call", "kind=simple"]) == {"failure": "no_call", "kind": "simple"}
    with pytest.raises(UserError, match="iter-2/probe.jsonl does not exist: iteration 2 has no probe output"):
        samples.page(run_dir, 2, "probe")
    with pytest.raises(UserError, match="has no iteration 7"):
        samples.page(run_dir, 7, "judge")
    with pytest.raises(UserError, match="iteration 2 of run .* has no eval in the store"):
        samples.page(run_dir, 2, "eval", evals=samples.evals_of(evals, RUN_ID, run_dir, 2))
    with pytest.raises(UserError, match="no sample 'nope' in"):
        samples.prompt(run_dir, 1, "probe", "nope")


def test_the_run_directory_comes_from_the_store(run, tmp_path):
    run_dir, _ = run
    _, runs, _ = write_run(tmp_path / "other")
    assert samples.run_dir_of(runs, RUN_ID) == tmp_path / "other" / "runs" / RUN_ID
    assert samples.run_dir_of([], RUN_ID, run_dir) == run_dir  # the core's own run before the store has it
    with pytest.raises(UserError, match="no run 'gone' in the store"):
        samples.run_dir_of(runs, "gone")
