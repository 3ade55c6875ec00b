"""GCP on the real embedded model (SmolLM2-135M, CPU): records, resume, stop, mastered, HPPL.

fc mode is used because SmolLM2's template renders no tools, so its prompts are ~30 tokens instead of
~260 in prompt mode (the stage itself is mode-agnostic). One module-scoped probe run (2 samples, then
all 4: the resume case) feeds most checks, to keep the model work small.
"""
from __future__ import annotations

import json
import math

import pytest

from core.backends import GenParams
from core.config import RunConfig
from core.prompt_format import decode_reply, reward
from core.schema import Call, Label, Message, Sample
from core.stages import probe
from core.stages.base import Control, StageContext, StageStopped, is_done

MODE = "fc"
TOOLS = [{"name": "get_weather", "description": "Current weather for a city.",
          "parameters": {"type": "dict", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]


def make_cfg(batch_size: int = 2) -> RunConfig:
    return RunConfig.model_validate({
        "run": {"name": "t"}, "model": {"mode": MODE, "device": "cpu"},
        "probe": {"max_new_tokens": 8, "batch_size": batch_size}})


def sample(i: str, text: str, label: Label) -> Sample:
    return Sample(id=i, tools=TOOLS, messages=[Message(role="user", content=text)], label=label)


def make_ctx(tmp_path, cfg=None, emit=None, control=None, model_path="unused") -> StageContext:
    return StageContext(cfg=cfg or make_cfg(), run_dir=tmp_path, iteration=1, model_path=model_path,
                        control=control or Control(), emit=emit or (lambda kind, data: None))


@pytest.fixture(scope="module")
def probed(hf_backend, tmp_path_factory):
    """Probe 2 samples, then all 4 (resume). Sample "echo" has as label the model's own greedy reply."""
    cfg = make_cfg()
    draft = sample("echo", "Hi there!", Label(text="placeholder"))
    greedy = hf_backend.generate([probe.build_prompt(draft, hf_backend.tokenizer, MODE)],
                                 GenParams(max_new_tokens=8))[0].text
    calls = decode_reply(greedy, MODE)
    assert calls is not None, f"the greedy reply must decode to build a label: {greedy!r}"
    label = Label(calls=[Call(name=c.name, arguments=c.arguments) for c in calls]) if calls else Label(text=greedy)
    samples = [
        sample("call", "What is the weather in Paris?", Label(calls=[Call(name="get_weather",
                                                                           arguments={"city": "Paris"})])),
        sample("echo", "Hi there!", label),
        sample("joke", "Tell me a joke.", Label(text="Why did the chicken cross the road?")),
        sample("oslo", "Weather in Oslo please", Label(calls=[Call(name="get_weather",
                                                                    arguments={"city": "Oslo"})])),
    ]
    run_dir = tmp_path_factory.mktemp("probe")
    events = []
    ctx = make_ctx(run_dir, cfg, emit=lambda kind, data: events.append((kind, data)))
    first_stats = probe.run(ctx, samples[:2], backend=hf_backend)
    first_lines = (ctx.iter_dir / "probe.jsonl").read_text().splitlines()
    stats = probe.run(ctx, samples, backend=hf_backend)
    lines = (ctx.iter_dir / "probe.jsonl").read_text().splitlines()
    return dict(samples=samples, ctx=ctx, first_stats=first_stats, first_lines=first_lines, stats=stats,
                records=[json.loads(x) for x in lines], lines=lines, events=events)


@pytest.mark.slow
def test_records_have_finite_ppl_and_consistent_mastered_flags(probed):
    by_id = {s.id: s for s in probed["samples"]}
    assert sorted(r["id"] for r in probed["records"]) == sorted(by_id)
    for r in probed["records"]:
        assert math.isfinite(r["ppl"]) and r["ppl"] >= 1.0
        assert r["ppl_call"] == r["ppl"]  # no think block from this model
        assert 0 < r["tokens"] <= 8
        rew = reward(r["response"], by_id[r["id"]], MODE)
        assert r["reward"] == rew and r["mastered"] == (rew == 1.0)
    recs = {r["id"]: r for r in probed["records"]}
    assert recs["call"]["mastered"] is False  # the model answers in prose, the label is a call


@pytest.mark.slow
def test_own_greedy_reply_as_label_is_mastered(probed):
    recs = {r["id"]: r for r in probed["records"]}
    assert recs["echo"]["mastered"] is True and recs["echo"]["reward"] == 1.0


@pytest.mark.slow
def test_resume_appends_without_duplicates(probed):
    lines = probed["lines"]
    assert len(lines) == 4 and len({json.loads(x)["id"] for x in lines}) == 4
    assert lines[:2] == probed["first_lines"]  # the first two records were not touched
    stats, first = probed["stats"], probed["first_stats"]
    assert first["samples"] == 2 and first["probed_now"] == 2
    assert stats["samples"] == 4 and stats["probed_now"] == 2
    assert stats["mastered"] + stats["mismatched"] == 4
    assert stats["mastered"] == sum(r["mastered"] for r in probed["records"])
    assert stats["tokens_per_s"] > 0 and stats["mean_ppl"] >= 1.0
    assert is_done(probed["ctx"].iter_dir, "probe") == json.loads(json.dumps(stats, default=str))


@pytest.mark.slow
def test_progress_and_throughput_metrics_emitted(probed):
    progress = [d for k, d in probed["events"] if k == "progress"]
    metrics = [d for k, d in probed["events"] if k == "metrics"]
    assert progress[-1]["done"] == progress[-1]["total"] == 4 and progress[-1]["stage"] == "probe"
    assert metrics and all(m["stage"] == "probe" and m["tokens_per_s"] > 0 and m["samples_per_s"] > 0
                           for m in metrics)


@pytest.mark.slow
def test_rerun_with_everything_probed_loads_no_model(probed, tmp_path):
    # no backend passed and nothing pending: the stage must not try to build one (model_path is bogus)
    ctx = make_ctx(tmp_path, probed["ctx"].cfg, model_path="/nonexistent")
    (ctx.iter_dir / "probe.jsonl").write_text("\n".join(probed["lines"]) + "\n")
    stats = probe.run(ctx, probed["samples"])
    assert stats["samples"] == 4 and stats["probed_now"] == 0


@pytest.mark.slow
def test_stop_between_batches_keeps_partial_output(hf_backend, tmp_path):
    control = Control()

    def emit(kind, data):
        if kind == "progress" and data["done"] > 0:
            control.stop.set()

    samples = [sample(f"s{i}", q, Label(text="x")) for i, q in enumerate(["Hi", "Hello", "Hey", "Yo"])]
    ctx = make_ctx(tmp_path, emit=emit, control=control)
    with pytest.raises(StageStopped):
        probe.run(ctx, samples, backend=hf_backend)
    lines = (ctx.iter_dir / "probe.jsonl").read_text().splitlines()
    assert [json.loads(x)["id"] for x in lines] == ["s0", "s1"]  # batch 1 written, batch 2 never ran
    assert is_done(ctx.iter_dir, "probe") is None


def test_high_ppl_takes_the_top_mastered_with_ties_by_id():
    recs = [{"id": "a", "ppl": 3.0}, {"id": "b", "ppl": 5.0}, {"id": "c", "ppl": 5.0},
            {"id": "d", "ppl": 9.0}, {"id": "e", "ppl": 1.0}, {"id": "f", "ppl": None}]
    mastered = {"a", "b", "c", "e", "f"}  # d is not mastered
    assert probe.high_ppl(recs, mastered, 2) == ["b", "c"]
    assert probe.high_ppl(recs, mastered, 3) == ["b", "c", "a"]
    assert probe.high_ppl(recs, mastered, 10) == ["b", "c", "a", "e"]  # no PPL: not ranked
    assert probe.high_ppl({r["id"]: r for r in recs}, mastered, 1) == ["b"]
    assert probe.high_ppl(list(reversed(recs)), mastered, 2) == ["b", "c"]  # input order is irrelevant
    assert probe.high_ppl(recs, mastered, 0) == []
    assert probe.high_ppl(recs, mastered, 2, rule="none") == []
    with pytest.raises(ValueError):
        probe.high_ppl(recs, mastered, 2, rule="bottom")


@pytest.mark.slow
def test_call_span_ppl_skips_the_think_block(hf_backend):
    from core.backends import Generation

    tok = hf_backend.tokenizer
    ids = tok("<think>hmm</think>Hello")["input_ids"]
    k = next(i for i in range(1, len(ids) + 1) if "</think>" in tok.decode(ids[:i]))
    lps = [-2.0] * k + [-0.5] * (len(ids) - k)
    gen = Generation(text=tok.decode(ids), token_ids=ids, logprobs=lps)
    rec = probe.make_record(sample("x", "hi", Label(text="Hello")), gen, MODE, tokenizer=tok)
    assert rec["ppl"] == pytest.approx(gen.perplexity)
    assert rec["ppl_call"] == pytest.approx(math.exp(0.5))


@pytest.mark.slow
def test_label_margin_cuts_each_batch_to_its_longest_label(hf_backend):
    tok = hf_backend.tokenizer
    short = sample("s", "Weather in Oslo please", Label(calls=[Call(name="get_weather", arguments={"city": "Oslo"})]))
    long = sample("l", "Tell me a joke.", Label(text="Why did the chicken cross the road? To get to the other side."))
    params = GenParams(max_new_tokens=40, temperature=0.0)
    cfg = RunConfig.model_validate({"run": {"name": "t"}, "model": {"mode": "prompt"},  # a call is ~9 tokens
                                    "probe": {"max_new_tokens": 40, "label_margin_tokens": 3}})
    n_long = len(tok.encode(long.label.text, add_special_tokens=False))
    assert probe.batch_params(params, [short, long], tok, cfg).max_new_tokens == min(40, n_long + 3)
    n_short = probe.batch_params(params, [short], tok, cfg).max_new_tokens
    assert 3 < n_short < n_long + 3
    # never above max_new_tokens, and unset means unchanged (models that think before answering)
    cfg.probe.label_margin_tokens = 1000
    assert probe.batch_params(params, [long], tok, cfg).max_new_tokens == 40
    assert probe.batch_params(params, [long], tok, make_cfg()) is params
