"""EDDE stage: k samples per error seed, lineage, variation draw, two-tier validation, resume, LLM path."""
from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest

from core.backends import GenParams
from core.checks import ungrounded
from core.config import parse
from core.schema import Call, Label, Message, Sample, load_samples
from core.seeds.synth import synthesize
from core.seeds.validate import validate
from core.stages import expand
from core.stages.base import StageContext, StageStopped, is_done


def make_ctx(run_dir: Path, k: int = 3, generator: str = "procedural", events: list | None = None,
             redraw: bool = False) -> StageContext:
    extra = '\n[expand.llm]\nmodel = "embedded"\nbackend = "hf"\n' if generator == "llm" else ""
    extra += "redraw_tools = true\n" if redraw else ""
    cfg = parse(f'[run]\nname = "t"\nseed = 3\n[expand]\nk = {k}\ngenerator = "{generator}"\n{extra}', "test")
    emit = (lambda kind, data: events.append((kind, data))) if events is not None else (lambda kind, data: None)
    return StageContext(cfg=cfg, run_dir=run_dir, iteration=1, model_path="unused", emit=emit)


def seeds(n: int = 12) -> list[Sample]:
    return synthesize(n, seed=11, text_fraction=0.2, multi_turn_fraction=0.3)


def out_rows(ctx: StageContext) -> list[dict]:
    return [json.loads(line) for line in (ctx.iter_dir / "expand.jsonl").read_text().splitlines()]


def test_variation_draw_follows_the_paper_code():
    rng = random.Random(0)
    counts = Counter(expand.draw_variation(rng) for _ in range(14000))
    expected = {"complexity": 2 / 7, "persona": 2 / 7, "interaction": 2 / 7, "data": 1 / 7}
    for name, p in expected.items():
        assert abs(counts[name] / 14000 - p) < 0.02, counts


def test_k_samples_per_seed_with_lineage(tmp_path):
    events: list = []
    ctx = make_ctx(tmp_path, k=3, events=events)
    ss = seeds()
    stats = expand.run(ctx, ss, {s.id: "the model skipped a parameter" for s in ss})
    assert stats["seeds"] == 12 and stats["kept"] == 36 and stats["rule_rejected"] == 0
    assert stats["generated"] == stats["kept"] + stats["rule_rejected"] + stats["judge_rejected"]
    samples = load_samples(ctx.iter_dir / "expand.jsonl")
    by_parent = Counter(s.parent for s in samples)
    assert by_parent == {s.id: 3 for s in ss}
    seed_by_id = {s.id: s for s in ss}
    for s in samples:
        assert s.source == "expand" and s.id.startswith(f"{s.parent}-x")
        assert s.meta["variation"] in expand.VARIATIONS
        assert s.tools == seed_by_id[s.parent].tools  # the seed's tools are kept
        assert validate(s) == [] and ungrounded(s.label.tool_calls(), s) == []
    assert len({s.id for s in samples}) == 36
    assert is_done(ctx.iter_dir, "expand") == stats
    progress = [d for kind, d in events if kind == "progress"]
    assert progress[-1]["done"] == progress[-1]["total"] == 12 and progress[0]["stage"] == "expand"
    # single-turn call seeds turned multi-turn under "interaction", and back
    flips = [s for s in samples if s.meta["variation"] == "interaction"
             and seed_by_id[s.parent].meta["kind"] in ("simple", "multiple")]
    assert all(any(m.role == "assistant" for m in s.messages) for s in flips)


def test_redrawn_tools_are_the_seeds_functions_under_new_docs(tmp_path):
    ctx = make_ctx(tmp_path, k=4, redraw=True)
    ss = [s for s in seeds(24) if not s.label.is_text][:10]
    stats = expand.run(ctx, ss, {})
    samples = load_samples(ctx.iter_dir / "expand.jsonl")
    assert stats["kept"] == len(samples) == 40 and stats["rule_rejected"] == 0
    seed_by_id = {s.id: s for s in ss}
    docs_repeated = 0
    for s in samples:
        seed = seed_by_id[s.parent]
        assert validate(s) == [] and ungrounded(s.label.tool_calls(), s) == []
        assert s.meta["redrawn"] is True
        # the same catalog leaves (functions) are offered, under docs drawn anew
        assert sorted(s.meta["leaves"].values()) == sorted(seed.meta["leaves"].values())
        assert set(s.meta["leaves"]) == {t["name"] for t in s.tools}
        docs_repeated += sum(t in seed.tools for t in s.tools)
        called = {s.meta["leaves"][c.name] for c in s.label.calls or []}
        assert called <= set(seed.meta["leaves"].values())
    offered = sum(len(s.tools) for s in samples)
    assert docs_repeated < offered / 4, (docs_repeated, offered)  # kept verbatim, every one would repeat
    # the draw is deterministic: a second run writes the same samples
    again = make_ctx(tmp_path / "again", k=4, redraw=True)
    expand.run(again, ss, {})
    assert out_rows(again) == out_rows(ctx)


def test_judge_rejections_are_counted(tmp_path):
    ctx = make_ctx(tmp_path, k=4)
    seen = []

    def no_persona(sample: Sample) -> bool:
        seen.append(sample.id)
        return sample.meta["variation"] != "persona"

    stats = expand.run(ctx, seeds(10), {}, judge=no_persona)
    assert stats["judge_rejected"] > 0 and stats["judge"] == "no_persona"
    assert stats["generated"] == stats["kept"] + stats["judge_rejected"] + stats["rule_rejected"]
    assert stats["generated"] == len(seen)
    rows = out_rows(ctx)
    assert len(rows) == stats["kept"] < 40 and all(r["meta"]["variation"] != "persona" for r in rows)


def test_rule_rejections_are_counted_and_retried(tmp_path):
    doc = {"name": "lookup_ghost", "description": "Looks up a ghost.", "parameters": {
        "type": "dict", "properties": {"city": {"type": "string"}}, "required": ["city", "phantom"]}}
    bad = Sample(id="bad", tools=[doc], messages=[Message(role="user", content="Ghosts in Oslo?")],
                 label=Label(calls=[Call(name="lookup_ghost", arguments={"city": "Oslo", "phantom": 1})]))
    ctx = make_ctx(tmp_path, k=2)
    stats = expand.run(ctx, [bad], {})
    assert stats["kept"] == 0 and stats["rule_rejected"] == stats["generated"] == 2 * expand.ATTEMPTS
    assert out_rows(ctx) == []


def test_foreign_seed_tools_are_expanded(tmp_path):
    doc = {"name": "getStockNews", "description": "Retrieves recent news articles for a stock symbol.",
           "parameters": {"type": "dict", "required": ["symbol"], "properties": {
               "symbol": {"type": "string", "description": "Ticker"}, "limit": {"type": "integer"},
               "region": {"type": "string", "enum": ["us", "eu"]},
               "window": {"type": "dict", "properties": {"start_date": {"type": "string"}}, "required": ["start_date"]}}}}
    seed = Sample(id="imp-1", tools=[doc], messages=[Message(role="user", content="News on ABC, 5 items")],
                  label=Label(calls=[Call(name="getStockNews", arguments={"symbol": "ABC", "limit": 5})]))
    ctx = make_ctx(tmp_path, k=6)
    stats = expand.run(ctx, [seed], {"imp-1": "wrong limit"})
    samples = load_samples(ctx.iter_dir / "expand.jsonl")
    assert stats["kept"] == 6 and all(validate(s) == [] and ungrounded(s.label.tool_calls(), s) == [] for s in samples)
    assert any("retrieve recent news articles" in s.messages[0].content.lower() for s in samples)


def test_resume_after_partial_output_has_no_duplicates(tmp_path):
    full = make_ctx(tmp_path / "full", k=3)
    expand.run(full, seeds(), {})
    reference = (full.iter_dir / "expand.jsonl").read_text().splitlines()
    part = make_ctx(tmp_path / "part", k=3)
    (part.iter_dir / "expand.jsonl").write_text("\n".join(reference[:7]) + "\n" + reference[7][:25])  # torn line
    stats = expand.run(part, seeds(), {})
    rows = (part.iter_dir / "expand.jsonl").read_text().splitlines()
    assert sorted(rows) == sorted(reference) and len(set(rows)) == len(rows) == 36
    assert stats["resumed"] == 7 and stats["kept"] == 36
    again = expand.run(part, seeds(), {})  # finished: the done marker answers
    assert again == stats and len((part.iter_dir / "expand.jsonl").read_text().splitlines()) == 36


def test_stop_between_seeds_then_resume(tmp_path):
    ctx = make_ctx(tmp_path, k=2)
    calls = {"n": 0}

    def stop_in_third_seed(sample: Sample) -> bool:
        calls["n"] += 1
        if calls["n"] == 6:
            ctx.control.stop.set()
        return True

    with pytest.raises(StageStopped):
        expand.run(ctx, seeds(8), {}, judge=stop_in_third_seed)
    assert len(out_rows(ctx)) == 6 and is_done(ctx.iter_dir, "expand") is None
    ctx.control.stop.clear()
    stats = expand.run(ctx, seeds(8), {}, judge=stop_in_third_seed)
    ids = [r["id"] for r in out_rows(ctx)]
    assert len(ids) == len(set(ids)) == 16 and stats["kept"] == 16


def test_parse_expansion_reply():
    reply = ("<think>plan</think>INPUT:\nUSER: Convert 10 USD to EUR\nASSISTANT: <tool_call>\n"
             '{"name": "cv", "arguments": {"amount": 10}}\n</tool_call>\nTOOL: {"eur": 9.2}\n'
             "ASSISTANT: That is 9.2 EUR.\nUSER: And 20 USD?\nOUTPUT:\n<tool_call>\n"
             '{"name": "cv", "arguments": {"amount": 20}}\n</tool_call>')
    messages, label = expand.parse_expansion(reply)
    assert [m.role for m in messages] == ["user", "assistant", "tool", "assistant", "user"]
    assert messages[2].name == "cv" and label.calls[0].arguments == {"amount": 20}
    with pytest.raises(ValueError, match="INPUT/OUTPUT"):
        expand.parse_expansion("USER: hi")
    with pytest.raises(ValueError, match="no <tool_call>"):
        expand.parse_expansion("INPUT:\nUSER: hi\nOUTPUT:\nSure, here you go.")
    with pytest.raises(ValueError, match="unreadable"):
        expand.parse_expansion("INPUT:\nUSER: hi\nOUTPUT:\n[f(x=__import__('os'))]")


@pytest.mark.slow
def test_llm_generator_with_the_embedded_model(tmp_path, hf_backend):
    ctx = make_ctx(tmp_path, k=1, generator="llm")
    seed = seeds(3)[0]
    (ctx.iter_dir / "probe.jsonl").write_text(json.dumps({"id": seed.id, "response": "[wrong()]"}) + "\n")
    prompt = expand.expansion_messages(seed, "[wrong()]", "missed a parameter", "data")[1]["content"]
    assert "[wrong()]" in prompt and "missed a parameter" in prompt and seed.tools[0]["name"] in prompt
    stats = expand.run(ctx, [seed], {seed.id: "missed a parameter"}, backend=hf_backend,
                       gen_params=GenParams(max_new_tokens=12, temperature=1.0, top_p=0.9, seed=0), attempts=1)
    assert stats["generator"] == "llm"
    assert stats["generated"] == stats["kept"] + stats["rule_rejected"] + stats["judge_rejected"]
    assert stats["kept"] == len(out_rows(ctx)) <= 1 and stats["generated"] == 1
