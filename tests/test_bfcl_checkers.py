"""Checker parity on bfcl-eval's own data: ground truth rendered as model output scores valid through
looptool's decoding + bfcl's checkers; perturbed outputs score invalid with bfcl's error types."""
from __future__ import annotations

import random

import pytest

from core.toolcalls import ToolCall, render_hermes, render_python
from evals import bfcl_data, bfcl_score
from evals.bfcl_truth import single_turn_text, truth_calls

SINGLE = bfcl_data.NON_LIVE + bfcl_data.LIVE

# Entries whose ground truth cannot be written as a valid answer. Each reason was checked by hand.
KNOWN_UNRENDERABLE = {
    # A required parameter whose only acceptable option is "" (omit): no output can pass.
    "live_simple_106-63-0": "required auto_loan_payment_start has only the omit option",
    "live_simple_112-68-0": "required acc_routing_start has only the omit option",
    "live_multiple_507-149-4": "required origin_airport has only the omit option",
    "live_multiple_964-207-0": "required statement has only the omit option",
    "live_multiple_862-181-3": "answer names journey_start_time, which the function doc lacks",
}
# Java values for long/int/ArrayList<int> parameters are kept as Java source strings by the data, but
# bfcl's Java checker wants Python values for those types; our renderer cannot produce both at once.
JAVA_TYPED = {"simple_java_22", "simple_java_25", "simple_java_32", "simple_java_34", "simple_java_35",
              "simple_java_36", "simple_java_49", "simple_java_64", "simple_java_65", "simple_java_78",
              "simple_java_83", "simple_java_85", "simple_java_86", "simple_java_89", "simple_java_90",
              "simple_java_91", "simple_java_98"}


def modes(cat):
    return ("prompt", "fc") if bfcl_data.language(cat) == "python" else ("fc",)


@pytest.mark.parametrize("cat", SINGLE)
def test_ground_truth_scores_valid_on_every_entry(cat):
    bad = []
    for e in bfcl_data.load_category(cat):
        for mode in modes(cat):
            r = bfcl_score.score_single(e, single_turn_text(e, mode), mode)
            if not r["valid"]:
                bad.append((e.id, mode, r["error_type"]))
    unexpected = [b for b in bad if b[0] not in KNOWN_UNRENDERABLE and b[0] not in JAVA_TYPED]
    assert not unexpected
    # the known list stays honest: every entry named there really fails
    named = {k for k in KNOWN_UNRENDERABLE | dict.fromkeys(JAVA_TYPED) if bfcl_data.category_of_id(k) == cat}
    assert named <= {b[0] for b in bad}


def sample(cat, n=5):
    entries = list(bfcl_data.load_category(cat))
    ok = [e for e in entries if e.id not in KNOWN_UNRENDERABLE and e.id not in JAVA_TYPED]
    return random.Random(cat).sample(ok, min(n, len(ok)))


def score(e, calls_or_text, mode="prompt"):
    text = calls_or_text if isinstance(calls_or_text, str) else (
        render_python(calls_or_text) if mode == "prompt" else render_hermes(calls_or_text))
    return bfcl_score.score_single(e, text, mode)


AST = [c for c in SINGLE if bfcl_data.kind(c) == "ast"]


@pytest.mark.parametrize("cat,mode", [(c, m) for c in AST for m in modes(c)])
def test_perturbations_fail_with_bfcl_error_types(cat, mode):
    for e in sample(cat):
        calls = truth_calls(e)
        assert score(e, calls, mode)["valid"], e.id
        # prose instead of calls
        r = score(e, "I think you should call a function.", mode)
        assert not r["valid"]
        assert r["error_type"].startswith("ast_decoder:") or (
            mode == "fc" and r["error_type"].endswith("wrong_count"))
        # wrong function name
        renamed = [ToolCall(c.name + "_x", c.arguments) for c in calls]
        r = score(e, renamed, mode)
        assert not r["valid"]
        if cat in ("simple_python", "live_simple"):
            assert r["error_type"] == "simple_function_checker:wrong_func_name"
        # an argument the function does not have
        extra = [ToolCall(calls[0].name, {**calls[0].arguments, "zz_not_a_param": 1})] + calls[1:]
        r = score(e, extra, mode)
        assert not r["valid"]
        if cat in ("simple_python", "live_simple"):
            assert r["error_type"] == "simple_function_checker:unexpected_param"
        # one call too many
        r = score(e, calls + [calls[0]], mode)
        assert not r["valid"]
        assert r["error_type"].endswith("wrong_count")


@pytest.mark.parametrize("cat", ["simple_python", "live_simple"])
def test_value_and_type_errors(cat):
    checked = 0
    for e in bfcl_data.load_category(cat):
        if e.id in KNOWN_UNRENDERABLE:
            continue
        (call,) = truth_calls(e)
        props = e.raw_functions[0]["parameters"]["properties"]
        strs = [k for k, v in call.arguments.items() if isinstance(v, str) and props[k]["type"] == "string"]
        if not strs:
            continue
        k = strs[0]
        r = score(e, [ToolCall(call.name, {**call.arguments, k: call.arguments[k] + " zzz"})])
        assert (r["valid"], r["error_type"]) == (False, "value_error:string"), e.id
        r = score(e, [ToolCall(call.name, {**call.arguments, k: 12345})])
        assert (r["valid"], r["error_type"]) == (False, "type_error:simple"), e.id
        req = [p for p in e.raw_functions[0]["parameters"].get("required", []) if p in call.arguments]
        dropped = {a: v for a, v in call.arguments.items() if a != req[0]}
        r = score(e, [ToolCall(call.name, dropped)])
        assert (r["valid"], r["error_type"]) == (False, "simple_function_checker:missing_required"), e.id
        checked += 1
        if checked == 10:
            break
    assert checked == 10


def test_float_for_integer_is_a_type_error_and_int_for_float_is_fine():
    for e in bfcl_data.load_category("simple_python"):
        (call,) = truth_calls(e)
        props = e.raw_functions[0]["parameters"]["properties"]
        ints = [k for k, v in call.arguments.items() if props[k]["type"] == "integer" and type(v) is int]
        if ints:
            r = score(e, [ToolCall(call.name, {**call.arguments, ints[0]: float(call.arguments[ints[0]])})])
            assert (r["valid"], r["error_type"]) == (False, "type_error:simple")
            break
    else:
        pytest.fail("no integer parameter found")


@pytest.mark.parametrize("cat", ["irrelevance", "live_irrelevance"])
def test_irrelevance_wants_no_call(cat):
    for e in sample(cat):
        f = e.functions[0] if e.functions else {"name": "anything"}
        for mode in ("prompt", "fc"):
            call = [ToolCall(f["name"], {})]
            r = score(e, call, mode)
            assert (r["valid"], r["error_type"]) == (False, "irrelevance_error:decoder_success")
            assert score(e, "I can't help with that using these tools.", mode)["valid"]
            assert score(e, "[]" if mode == "prompt" else "no calls", mode)["valid"]


def test_relevance_wants_any_call():
    for e in sample("live_relevance"):
        for mode in ("prompt", "fc"):
            r = score(e, "Sure, here you go.", mode)
            assert (r["valid"], r["error_type"]) == (False, "relevance_error:decoder_failed")
            assert score(e, [ToolCall(e.functions[0]["name"], {"whatever": 1})], mode)["valid"]


def test_hostile_output_scores_invalid_and_runs_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    e = bfcl_data.load_category("simple_python")[0]
    for text in ["[" * 50_000, "x" * 3_000_000, "[f(a=lambda: __import__('os').system('touch PWNED'))]"]:
        for decoding in ("official", "lenient"):
            r = bfcl_score.score_single(e, text, "prompt", decoding)
            assert r["valid"] is False and r["error_type"].startswith("ast_decoder:decoder_failed"), (text[:40], r)
    # bfcl reads a call without keywords inside an argument as its source text, and a call's name from
    # its attribute chain: both decode (as text, never run) and then fail the checker
    for text in ["[__import__('os').system('touch PWNED')]", "[f(a=__import__('os').system('touch PWNED'))]",
                 "[f(a=1 + __import__('os').system('touch PWNED'))]"]:
        r = bfcl_score.score_single(e, text, "prompt")
        assert r["valid"] is False and r["by_decoding"]["lenient"] is False
    assert not (tmp_path / "PWNED").exists()
