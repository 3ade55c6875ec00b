"""The multi-turn protocol driven with scripted replies (the real executor and bfcl's checker)."""
from __future__ import annotations

import pytest

from core.toolcalls import render_hermes, render_python
from evals import bfcl_data, bfcl_score
from evals.bfcl_exec import SafeExecutor
from evals.bfcl_multiturn import Session, step_limit


def entry(entry_id):
    return next(e for e in bfcl_data.load_category(bfcl_data.category_of_id(entry_id)) if e.id == entry_id)


def drive(e, mode, replies_per_turn):
    s = Session(e, mode)
    for replies in replies_per_turn:
        for r in replies:
            if s.done:
                break
            s.feed(r)
    return s


def truth_replies(e, mode):
    ex = SafeExecutor({"id": e.id, **e.extra})
    render = render_hermes if mode == "fc" else render_python
    out = []
    for turn in e.ground_truth:
        calls = [ex.parse(c) for c in turn]
        out.append(([render(calls)] if calls else []) + ["Done."])
    return out


def test_ground_truth_conversation_scores_valid_in_both_modes():
    for eid in ("multi_turn_base_0", "multi_turn_miss_param_3", "multi_turn_long_context_1"):
        e = entry(eid)
        for mode in ("prompt", "fc"):
            if mode == "prompt" and any("(" in c and "=" not in c.split("(", 1)[1] for t in e.ground_truth
                                        for c in t if not c.endswith("()")):
                continue  # positional ground truth cannot be written as prompt-mode output (bfcl drops it)
            s = drive(e, mode, truth_replies(e, mode))
            assert s.done and not s.force_quit
            assert len(s.steps) == len(e.question)
            assert bfcl_score.score_multi_turn(e, s.steps, mode)["valid"], (eid, mode)


def test_tool_results_are_fed_back_as_tool_messages():
    e = entry("multi_turn_base_0")
    s = Session(e, "prompt")
    first_call = truth_replies(e, "prompt")[0][0]
    s.feed(first_call)
    msgs, tools = s.prompt()
    assert tools is None and msgs[0]["role"] == "system" and "[func_name1(" in msgs[0]["content"]
    n_calls = len(e.ground_truth[0])
    assert msgs[-n_calls - 1] == {"role": "assistant", "content": first_call}
    assert all(m["role"] == "tool" and m["content"] for m in msgs[-n_calls:])
    fc = Session(e, "fc")
    msgs, tools = fc.prompt()
    assert tools and all(t["type"] == "function" for t in tools)
    assert msgs[0]["role"] == "user"  # no BFCL system prompt in fc mode


def test_miss_func_turn_adds_the_held_out_functions():
    e = entry("multi_turn_miss_func_0")
    held = e.extra["missed_function"]["3"]
    for mode in ("prompt", "fc"):
        s = Session(e, mode)
        for _ in range(3):
            s.feed("ok")  # a text reply ends each turn
        msgs, tools = s.prompt()
        assert s.turn == 3
        assert "I have updated some more functions" in msgs[-1]["content"]
        if mode == "fc":
            assert {t["function"]["name"] for t in tools} >= {f["name"] for f in held}
        else:
            assert held[0]["name"] in msgs[-1]["content"]


def test_step_limit_force_quits_and_scores_force_terminated():
    e = entry("multi_turn_base_0")
    s = Session(e, "prompt")
    n = 0
    while not s.done:
        s.feed("[pwd()]")
        n += 1
    assert s.force_quit and n == step_limit() + 1 and s.turn == 0
    r = bfcl_score.score_multi_turn(e, s.steps, "prompt")
    assert (r["valid"], r["error_type"]) == (False, "multi_turn:force_terminated")


@pytest.mark.parametrize("garbage,decoding", [
    ("[__import__('os').system('touch PWNED')]", "lenient"),  # a call for bfcl ("system", no arguments)
    ("[" * 50_000, "official"), ("[f(a=1", "official"), ("x" * 3_000_000, "official")])
def test_garbage_replies_end_turns_without_crashing(garbage, decoding, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    e = entry("multi_turn_base_0")
    s = Session(e, "prompt", decoding)
    for _ in e.question:
        s.feed(garbage)
    assert s.done and len(s.steps) == len(e.question)
    r = bfcl_score.score_multi_turn(e, s.steps, "prompt", decoding)
    assert (r["valid"], r["error_type"]) == (False, "multi_turn:empty_turn_model_response")
    assert not (tmp_path / "PWNED").exists()


def test_official_decoding_executes_what_bfcl_calls_and_nothing_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    e = entry("multi_turn_base_0")
    s = Session(e, "prompt")  # official: the reply is a call named "system", which the sandbox refuses
    s.feed("[__import__('os').system('touch PWNED')]")
    assert not s.done and len(s.steps[0]) == 1 and s.messages[-1]["role"] == "tool"
    assert not (tmp_path / "PWNED").exists()
