"""JGLV: the rule judge's decision table, the verdict parser, votes / consensus, the order swap, the
stage with a scripted judge, and an LLM judge run end to end on the embedded model."""
from __future__ import annotations

import json

import pytest

from core.backends import Generation
from core.config import RunConfig
from core.schema import Call, Label, Message, Sample
from core.stages import judge
from core.stages.base import StageContext, is_done

TOOLS = [{"name": "get_weather", "description": "Weather forecast for a city.", "parameters": {
    "type": "dict", "required": ["city"], "properties": {
        "city": {"type": "string", "description": "City name"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "default": "celsius"},
        "days": {"type": "integer", "description": "Forecast length"}}}}]
QUESTION = "What's the weather in Paris for the next 3 days?"


def calls_label(**args) -> Label:
    return Label(calls=[Call(name="get_weather", arguments=args)])


def smp(label: Label, i: str = "s1", text: str = QUESTION) -> Sample:
    return Sample(id=i, tools=TOOLS, messages=[Message(role="user", content=text)], label=label)


def hermes(name="get_weather", **args) -> str:
    return "<tool_call>\n" + json.dumps({"name": name, "arguments": args}) + "\n</tool_call>"


GOOD = calls_label(city="Paris", days=3)


@pytest.mark.parametrize("label, response, verdict", [
    (GOOD, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {bad json\n</tool_call>", "PRED_WRONG"),
    (GOOD, hermes("get_forecast", city="Paris"), "PRED_WRONG"),  # unknown function
    (GOOD, hermes(days=3), "PRED_WRONG"),  # required city missing
    (GOOD, hermes(city="Paris", days="3"), "PRED_WRONG"),  # wrong type
    (GOOD, hermes(city="Paris", days=True), "PRED_WRONG"),  # a bool is not an integer
    (GOOD, hermes(city="Paris", hours=3), "PRED_WRONG"),  # unknown parameter
    (GOOD, hermes(city="Paris", unit="kelvin"), "PRED_WRONG"),  # not in the enum
    (GOOD, hermes(city="London", days=3), "PRED_WRONG"),  # ungrounded string
    (GOOD, hermes(city="Paris", days=13), "PRED_WRONG"),  # ungrounded number ("3" is not "13")
    (GOOD, "Sure, which city do you mean?", "PRED_WRONG"),  # the label's call was possible
    (GOOD, "", "PRED_WRONG"),
    (calls_label(city="London"), hermes(city="Paris", days=3), "LABEL_WRONG"),
    (calls_label(days=3), hermes(city="Paris"), "LABEL_WRONG"),  # label misses a required parameter
    (calls_label(days=3), hermes(city="Rome"), "BOTH_WRONG"),
    (calls_label(city="London"), "<tool_call>\n{oops\n</tool_call>", "BOTH_WRONG"),
    (GOOD, hermes(city="  PARIS ", days=3.0, unit="celsius"), "BOTH_CORRECT"),  # equal after normalising
    (Label(text="Which city?"), "I can help with that.", "BOTH_CORRECT"),
    (Label(text="Which city?"), hermes(city="Berlin"), "PRED_WRONG"),
    (Label(text="Which city?"), "<tool_call>\n{oops\n</tool_call>", "PRED_WRONG"),
])
def test_rule_judge_settles_clear_cases(label, response, verdict):
    r = judge.rule_verdict(smp(label), response, "fc")
    assert r.verdict == verdict, r.reason
    assert r.reason


@pytest.mark.parametrize("label, response, fallback", [
    (GOOD, hermes(city="Paris"), "PRED_WRONG"),  # both valid and grounded, but different
    (Label(text="Which city?"), hermes(city="Paris", days=3), "PRED_WRONG"),  # text label vs good call
    (calls_label(city="London"), "Which city do you mean?", "BOTH_WRONG"),  # bad label vs text reply
])
def test_rule_judge_leaves_unclear_cases_undecided(label, response, fallback):
    r = judge.rule_verdict(smp(label), response, "fc")
    assert r.verdict is None and r.fallback == fallback


def test_rule_judge_in_prompt_mode_and_with_think():
    assert judge.rule_verdict(smp(GOOD), "[get_weather(city='Paris', days=3, unit='celsius')]",
                              "prompt").verdict == "BOTH_CORRECT"
    assert judge.rule_verdict(smp(GOOD), "<think>" + hermes(city="Paris", days=3) + "</think>Paris is nice.",
                              "fc").verdict == "PRED_WRONG"  # a call inside the think block does not count


def test_grounding_uses_tool_results_and_exempts_enums_and_defaults():
    s = Sample(id="t", tools=TOOLS, label=GOOD, messages=[
        Message(role="user", content="Weather where my meeting is, for 3 days?"),
        Message(role="assistant", tool_calls=[Call(name="get_meeting", arguments={})]),
        Message(role="tool", name="get_meeting", content='{"location": "Paris"}')])
    assert judge.ungrounded([c.tool_call() for c in GOOD.calls], s) == []
    assert judge.ungrounded(judge.toolcalls.parse_hermes(hermes(city="paris", unit="fahrenheit")), s) == []
    assert judge.ungrounded(judge.toolcalls.parse_hermes(hermes(city="Lyon")), s) != []


@pytest.mark.parametrize("text, verdict", [
    ("[RESPONSE2_INCORRECT]\nError Analysis: wrong city.\nCorrect Approach: use Paris.", "PRED_WRONG"),
    ("**[RESPONSE1_INCORRECT]**\n\nError Analysis: invented value.", "LABEL_WRONG"),
    ("```\n[BOTH_CORRECT]\n```", "BOTH_CORRECT"),
    ("[both_incorrect] error analysis: neither works", "BOTH_WRONG"),
    ("[ Response 1 Incorrect ]", "LABEL_WRONG"),
    ("\\[BOTH\\_CORRECT\\] (markdown-escaped)", "BOTH_CORRECT"),
    ("  \n\n[RESPONSE2_INCORRECT]", "PRED_WRONG"),
    ("<think>maybe [RESPONSE1_INCORRECT]?</think>\n[RESPONSE2_INCORRECT] Error Analysis: x", "PRED_WRONG"),
    ("[BOTH_CORRECT] though one could say [RESPONSE1_INCORRECT]", "BOTH_CORRECT"),  # first token wins
    ("Verdict: [RESPONSE2_INCORRECT]", "PRED_WRONG"),
    ("<think>I will answer [BOTH_CORRECT] once I", None),  # cut off inside the think block
    ("Both look fine to me.", None),
    ("[MAYBE] [RESPONSE3_INCORRECT]", None),
    ("", None),
])
def test_parse_verdict(text, verdict):
    got, analysis = judge.parse_verdict(text)
    assert got == verdict
    if verdict and "Error Analysis" in text:
        assert analysis.lower().startswith("error analysis")


def test_parse_verdict_swapped_maps_back():
    assert judge.parse_verdict("[RESPONSE1_INCORRECT]", swapped=True)[0] == "PRED_WRONG"
    assert judge.parse_verdict("[RESPONSE2_INCORRECT]", swapped=True)[0] == "LABEL_WRONG"
    assert judge.parse_verdict("[BOTH_CORRECT]", swapped=True)[0] == "BOTH_CORRECT"


def test_aggregate_votes():
    pw, lw = "PRED_WRONG", "LABEL_WRONG"
    assert judge.aggregate([pw], 0.5) == pw
    assert judge.aggregate([pw, pw, lw], 0.5) == pw
    assert judge.aggregate([pw, pw, lw], 0.7) == judge.NO_CONSENSUS
    assert judge.aggregate([pw, lw], 0.5) == judge.NO_CONSENSUS  # a tie is never a consensus
    assert judge.aggregate([pw, None, None], 0.5) == judge.NO_CONSENSUS  # failed votes count
    assert judge.aggregate([None, None], 0.5) == judge.JUDGE_FAILED


def test_combine_orders():
    assert judge.combine_orders("PRED_WRONG", "PRED_WRONG") == "PRED_WRONG"
    assert judge.combine_orders("PRED_WRONG", "LABEL_WRONG") == judge.POSITION_INCONSISTENT
    assert judge.combine_orders("PRED_WRONG", judge.JUDGE_FAILED) == "PRED_WRONG"  # unchecked
    assert judge.combine_orders(judge.NO_CONSENSUS, "PRED_WRONG") == judge.NO_CONSENSUS


# -- a scripted judge backend -------------------------------------------------------------------

class ChatTok:
    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=True, **kw):
        return "\n".join(f"<{m['role']}>\n{m['content']}" for m in messages)


class Scripted:
    """Answers with reply(prompt, params, call_no); records every call's params."""
    name, model, tokenizer = "scripted", "scripted", ChatTok()

    def __init__(self, reply):
        self.reply, self.params, self.closed = reply, [], False

    def generate(self, prompts, params, adapter=None):
        self.params.append(params)
        return [Generation(text=self.reply(p, params, len(self.params))) for p in prompts]

    def close(self):
        self.closed = True


def judge_cfg(**judge_opts) -> RunConfig:
    return RunConfig.model_validate({"run": {"name": "t"}, "model": {"mode": "fc"},
                                     "judge": {"kind": "llm", "llm": {"model": "embedded", "backend": "hf"},
                                               "max_new_tokens": 16, **judge_opts}})


UNDECIDED = (smp(GOOD, "u1"), hermes(city="Paris"))  # both pass the checks, they differ


def blames_prediction(prompt, params, n):
    """A position-consistent judge: always says the prediction (the call without days) is wrong."""
    second = prompt.split("## Response 2")[1]
    return "[RESPONSE2_INCORRECT] Error Analysis: days missing." if '"days"' not in second else \
        "[RESPONSE1_INCORRECT] Error Analysis: days missing."


def test_llm_judge_single_vote_is_greedy_and_labels_first():
    b = Scripted(blames_prediction)
    [res] = judge.llm_judge(b, [UNDECIDED], judge_cfg().judge, "fc")
    assert res["outcome"] == "PRED_WRONG" and res["votes"] == ["PRED_WRONG"]
    assert res["analysis"].startswith("Error Analysis")
    assert [p.temperature for p in b.params] == [0.0]


def test_swap_order_consistent_and_inconsistent():
    [res] = judge.llm_judge(Scripted(blames_prediction), [UNDECIDED], judge_cfg(swap_order=True).judge, "fc")
    assert res["outcome"] == "PRED_WRONG" and res["votes_swapped"] == ["PRED_WRONG"]
    always_first = Scripted(lambda p, params, n: "[RESPONSE1_INCORRECT]")  # pure position bias
    [res] = judge.llm_judge(always_first, [UNDECIDED], judge_cfg(swap_order=True).judge, "fc")
    assert res["votes"] == ["LABEL_WRONG"] and res["votes_swapped"] == ["PRED_WRONG"]
    assert res["outcome"] == judge.POSITION_INCONSISTENT


def test_votes_sample_and_need_consensus():
    replies = ["[RESPONSE2_INCORRECT]", "[RESPONSE1_INCORRECT]", "[BOTH_INCORRECT]"]
    b = Scripted(lambda p, params, n: replies[n - 1])
    [res] = judge.llm_judge(b, [UNDECIDED], judge_cfg(votes=3, consensus=0.5).judge, "fc")
    assert res["votes"] == ["PRED_WRONG", "LABEL_WRONG", "BOTH_WRONG"]
    assert res["outcome"] == judge.NO_CONSENSUS
    assert all(p.temperature > 0 for p in b.params) and len({p.seed for p in b.params}) == 3


def test_malformed_reply_is_retried_once_then_fails():
    b = Scripted(lambda p, params, n: "garbage" if n == 1 else "[BOTH_CORRECT]")
    [res] = judge.llm_judge(b, [UNDECIDED], judge_cfg().judge, "fc")
    assert res["outcome"] == "BOTH_CORRECT" and len(b.params) == 2 and b.params[1].temperature > 0
    b = Scripted(lambda p, params, n: "no idea")
    [res] = judge.llm_judge(b, [UNDECIDED], judge_cfg().judge, "fc")
    assert res["outcome"] == judge.JUDGE_FAILED and res["votes"] == [judge.JUDGE_FAILED] and len(b.params) == 2


# -- the stage ----------------------------------------------------------------------------------

def stage_inputs():
    cases = [
        (smp(GOOD, "pw"), hermes(city="London")),  # rule: PRED_WRONG
        (smp(calls_label(city="London"), "lw"), hermes(city="Paris", days=3)),  # rule: LABEL_WRONG
        (smp(GOOD, "bc"), hermes(city="paris", days=3)),  # rule: BOTH_CORRECT
        (smp(GOOD, "u1"), hermes(city="Paris")),  # undecided
        (smp(Label(text="Which city?"), "u2"), hermes(city="Paris", days=3)),  # undecided
        (smp(GOOD, "ok"), hermes(city="Paris", days=3)),  # mastered: not judged
    ]
    dataset = [s for s, _ in cases]
    probe = [{"id": s.id, "response": r, "mastered": s.id == "ok", "ppl": 1.5} for s, r in cases]
    return dataset, probe


def make_ctx(tmp_path, cfg) -> StageContext:
    return StageContext(cfg=cfg, run_dir=tmp_path, iteration=1, model_path="unused")


def read(ctx) -> dict[str, dict]:
    lines = (ctx.iter_dir / "judge.jsonl").read_text().splitlines()
    recs = [json.loads(x) for x in lines]
    assert len(recs) == len({r["id"] for r in recs})
    return {r["id"]: r for r in recs}


def test_rule_only_stage_relabels_and_falls_back(tmp_path):
    dataset, probe = stage_inputs()
    ctx = make_ctx(tmp_path, RunConfig.model_validate({"run": {"name": "t"}, "model": {"mode": "fc"}}))
    stats = judge.run(ctx, dataset, probe)
    recs = read(ctx)
    assert set(recs) == {"pw", "lw", "bc", "u1", "u2"}
    assert {i: r["verdict"] for i, r in recs.items()} == {
        "pw": "PRED_WRONG", "lw": "LABEL_WRONG", "bc": "BOTH_CORRECT", "u1": "PRED_WRONG", "u2": "PRED_WRONG"}
    assert recs["u1"]["outcome"] == judge.UNDECIDED and all(r["by"] == "rule" for r in recs.values())
    fixed = Sample.model_validate(recs["lw"]["relabel"])
    assert fixed.id == "lw" and fixed.source == "relabel" and fixed.parent == "lw"
    assert fixed.label.calls[0].arguments == {"city": "Paris", "days": 3}
    assert fixed.meta["original_label"]["calls"][0]["arguments"] == {"city": "London"}
    assert stats["label_corrections"] == 1 and stats["error_seeds"] == 4 and stats["mismatched"] == 5
    assert stats["outcomes"][judge.UNDECIDED] == 2
    assert is_done(ctx.iter_dir, "judge")["verdicts"]["BOTH_CORRECT"] == 1
    assert judge.run(ctx, dataset, probe)["judged"] == 5  # resume: nothing judged twice
    assert len(read(ctx)) == 5


def test_llm_stage_counts_no_consensus_and_keeps_it(tmp_path):
    dataset, probe = stage_inputs()
    replies = ["[RESPONSE2_INCORRECT]", "[RESPONSE1_INCORRECT]"]
    b = Scripted(lambda p, params, n: replies[(n - 1) % 2])
    ctx = make_ctx(tmp_path, judge_cfg(votes=2, consensus=0.5))
    stats = judge.run(ctx, dataset, probe, backend=b)
    recs = read(ctx)
    assert {recs[i]["by"] for i in ("u1", "u2")} == {"llm"} and recs["pw"]["by"] == "rule"
    for i in ("u1", "u2"):
        assert recs[i]["outcome"] == judge.NO_CONSENSUS and recs[i]["verdict"] == "PRED_WRONG"
        assert recs[i]["votes"] == ["PRED_WRONG", "LABEL_WRONG"]
    assert stats["no_consensus"] == 2 and stats["judged"] == 5 and stats["verdicts"]["PRED_WRONG"] == 3
    assert not b.closed  # a backend passed in belongs to the caller


def test_build_judge_backend_follows_the_config():
    cfg = RunConfig.model_validate({"run": {"name": "t"}, "judge": {"kind": "llm", "llm": {
        "model": "judge-32b", "backend": "openai", "base_url": "http://127.0.0.1:9/v1"}}})
    b = judge.build_judge_backend(cfg)  # no request is made until generate()
    assert (b.name, b.model, b.base_url) == ("openai", "judge-32b", "http://127.0.0.1:9/v1")


@pytest.mark.slow
def test_llm_judge_end_to_end_on_the_embedded_model(tmp_path, hf_backend):
    """The 135M model cannot follow the judge protocol in 16 tokens: its replies fail to parse, the
    failures are counted as JUDGE_FAILED, and nothing crashes."""
    dataset, probe = stage_inputs()
    dataset = [s for s in dataset if s.id in ("pw", "u1", "ok")]  # one rule case, one for the LLM
    ctx = make_ctx(tmp_path, judge_cfg())
    stats = judge.run(ctx, dataset, probe, backend=hf_backend)  # the session's embedded model
    recs = read(ctx)
    assert recs["pw"]["by"] == "rule" and recs["u1"]["by"] == "llm"
    failed = [r for r in recs.values() if r["verdict"] == judge.JUDGE_FAILED]
    assert stats["judge_failed"] == len(failed) == stats["outcomes"].get(judge.JUDGE_FAILED, 0)
    assert sum(stats["verdicts"].values()) == stats["judged"] == 2
    assert all(r["verdict"] in (*judge.VERDICTS, judge.JUDGE_FAILED) for r in recs.values())
