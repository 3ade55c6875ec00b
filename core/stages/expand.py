"""EDDE, Error-Driven Data Expansion: k new samples per verified error seed (reference §6).

Each task (seed, i) draws one scenario variation as ``randint(0, 6) % 4`` (the paper code's draw:
complexity, persona, interaction style with probability 2/7 each, data 1/7) and makes up to
ATTEMPTS candidates until one passes both tiers:
  1. rules (core.seeds.validate) -- for the LLM generator also a readable INPUT/OUTPUT reply;
  2. the judge callable (the rule judge or an LLM judge, passed by the engine; None = rules only).
Generators:
  * procedural: the seed's tools are kept (or, with cfg.expand.redraw_tools, re-drawn from their
    catalog leaves: the same functions under new names, parameters and descriptions); its target
    function(s) get new argument values, phrasing and persona from core.seeds.synth; complexity adds optional parameters / more calls, interaction
    turns a single-turn seed multi-turn and vice versa;
  * llm (cfg.expand.generator = "llm"): the generator model sees the seed, its correct label, the
    policy's wrong reply (probe.jsonl) and the judge's error analysis, and answers with INPUT / OUTPUT
    sections (OUTPUT must hold <tool_call> blocks, as in the paper's code). Parsed with json/ast only.
Output: ``expand.jsonl`` (Samples, id ``<seed>-x<i>``, source "expand", parent = seed id, meta.variation),
appended as samples pass; ``expand.seeds.jsonl`` records each finished seed with its counts. A rerun
skips finished seeds and every ``<seed>-x<i>`` already written, so nothing is duplicated.
Counts: generated == rule_rejected + judge_rejected + kept.
"""
from __future__ import annotations

import json
import random
import re
from collections import Counter
from typing import Callable

from core.backends import Backend, GenParams
from core.checks import check_calls, ungrounded
from core.records import RecordLog
from core.schema import Call, Label, Message, Sample
from core.seeds import synth
from core.seeds.apis import make_api, norm, spec_from_doc, words_of
from core.seeds.catalog import BY_KEY, LEAVES
from core.seeds.validate import validate
from core.stages.base import StageContext, is_done, mark_done
from core.stages.judge import read_error_seeds
from core.toolcalls import DecodeError, parse_hermes, parse_python_calls, render_hermes, strip_think

VARIATIONS = ("complexity", "persona", "interaction", "data")
VARIATION_TEXT = {
    "complexity": "complexity variation: more detailed parameters and edge cases",
    "persona": "user persona: a different language style and request specificity",
    "interaction": "interaction style: different phrasing and a different way of giving context",
    "data": "data variation: other currencies, names, places, naming conventions and parameter values",
}
ATTEMPTS = 3
MAX_NEW_TOKENS = 4096
_SINGLE = ("simple", "multiple", "parallel", "parallel_multiple")
_MULTI = ("sequential", "clarify_then_call", "follow_up")
_NEEDS_REQUIRED = ("clarify", "mt_clarify", "clarify_then_call", "parallel", "follow_up")

Judge = Callable[[Sample], bool]


def draw_variation(rng: random.Random) -> str:
    return VARIATIONS[rng.randint(0, 6) % 4]


def seed_kind(seed: Sample) -> str:
    """The dialogue kind of a seed: recorded by the synthesizer, else inferred from its shape."""
    kind = seed.meta.get("kind")
    if kind in _SINGLE + _MULTI + ("clarify", "refuse", "mt_clarify", "mt_refuse"):
        return kind
    history = any(m.role == "assistant" for m in seed.messages)
    if seed.label.is_text:
        refusal = re.search(r"sorry|none of|can't|cannot|unable|not able|no (available )?tool",
                            seed.label.text or "", re.I)
        return ("mt_" if history else "") + ("refuse" if refusal else "clarify")
    if history:
        return "sequential"
    names = [c.name for c in seed.label.calls or []]
    if len(names) > 1:
        return "parallel" if len(set(names)) == 1 else "parallel_multiple"
    return "multiple" if len(seed.tools) > 1 else "simple"


def vary_kind(kind: str, variation: str, rng: random.Random) -> str:
    if variation == "complexity":
        return {"simple": "parallel", "multiple": rng.choice(["parallel", "parallel_multiple"]),
                "clarify": "mt_clarify", "refuse": "mt_refuse"}.get(kind, kind)
    if variation == "interaction":
        if kind in ("simple", "multiple"):
            return rng.choice(_MULTI)
        if kind in ("parallel", "parallel_multiple"):
            return "sequential"
        if kind in _MULTI:
            return rng.choice(("simple", "multiple"))
        return kind[3:] if kind.startswith("mt_") else "mt_" + kind
    return kind


def _fits(spec, kind: str) -> bool:
    if kind == "follow_up":
        return any(p.required and p.schema.get("type") != "boolean" for p in spec.params)
    return bool(spec.required) if kind in _NEEDS_REQUIRED else True


def redraw_specs(specs: dict, rng: random.Random) -> dict:
    """The same tools under new surface forms: each spec with a catalog leaf re-drawn from it by
    core.seeds.apis.make_api (name style, parameter choice, types, description); others kept. Keys
    stay the seed's names, so the seed's calls still say which tool is which."""
    out, names = {}, set()
    for key, sp in specs.items():
        new = make_api(rng, BY_KEY[sp.leaf]) if sp.leaf in BY_KEY else sp
        out[key] = sp if new.name in names else new
        names.add(out[key].name)
    return out


def expand_procedural(seed: Sample, variation: str, rng: random.Random, redraw: bool = False) -> Sample:
    """One new sample from a seed under a scenario variation; the seed's tools are kept, or with
    `redraw` re-drawn from their catalog leaves (redraw_specs), so that the k expansions of a seed do
    not all repeat its tool docs word for word."""
    leaves = seed.meta.get("leaves") or {}
    specs = {d["name"]: spec_from_doc(d, leaves.get(d["name"])) for d in seed.tools
             if isinstance(d, dict) and isinstance(d.get("name"), str)}
    if not specs:
        raise ValueError("the seed offers no tools")
    if redraw:
        specs = redraw_specs(specs, rng)
    kind = vary_kind(seed_kind(seed), variation, rng)
    targets = [c.name for c in seed.label.calls or [] if c.name in specs]
    order = list(dict.fromkeys(targets)) + [n for n in specs if n not in targets]
    main = next((specs[n] for n in order if _fits(specs[n], kind)), None)
    if main is None:  # no tool can carry this kind: fall back to a plain call / a refusal
        kind = "refuse" if kind.endswith("clarify") else "simple"
        main = specs[order[0]]
    others = [specs[n] for n in order if specs[n] is not main]
    second = others[0] if others else main
    if kind.endswith("refuse"):
        taken = {norm("".join(words_of(n))) for n in specs}
        domains = {BY_KEY[sp.leaf].domain for sp in specs.values() if sp.leaf in BY_KEY}
        pool = [lf for lf in LEAVES if norm(lf.words) not in taken and lf.domain not in domains]
        apis = [make_api(rng, rng.choice(pool)), main]
    else:
        apis = [main, second]
    persona = rng.choice(synth.PERSONAS[1:]) if variation == "persona" else None
    p_opt = 1.0 if variation == "complexity" else 0.45
    messages, label = synth.simulate(kind, rng, apis, p_opt=p_opt, persona=persona)
    tools = seed.tools
    if redraw:
        offered = list(specs.values())
        rng.shuffle(offered)
        tools = [sp.doc for sp in offered]
        leaves = {sp.name: sp.leaf for sp in offered if sp.leaf}
    return Sample(id="x", tools=tools, messages=messages, label=label, source="expand",
                  parent=seed.id, meta={"variation": variation, "kind": kind, "generator": "procedural",
                                        **({"redrawn": True} if redraw else {}),
                                        **({"leaves": leaves} if leaves else {})})


# ------------------------------------------------------------------------------- LLM generator

def render_context(messages: list[Message]) -> str:
    out = []
    for m in messages:
        if m.role == "assistant" and m.tool_calls:
            out.append("ASSISTANT: " + render_hermes([c.tool_call() for c in m.tool_calls]))
        elif m.role in ("user", "assistant", "tool"):
            out.append(f"{m.role.upper()}: {m.content}")
    return "\n".join(out)


def expansion_messages(seed: Sample, wrong: str, analysis: str, variation: str) -> list[dict]:
    correct = seed.label.text if seed.label.is_text else render_hermes(seed.label.tool_calls())
    tools = "\n".join(json.dumps(t, ensure_ascii=False) for t in seed.tools)
    system = (
        "You are a data engineer building training data for function-calling models. Write a completely "
        "new sample that shows CORRECT tool use in a scenario similar to the seed, with different parameter "
        "values. Keep the seed's error pattern (the kind of decision the model got wrong) while changing the "
        "complexity or the dialogue flow; a single-turn seed may become multi-turn and vice versa. Follow "
        "the format strictly:\nINPUT:\nUSER: <request>\n(optional earlier turns: ASSISTANT: <tool_call>...</tool_call>, "
        "TOOL: <result>, ASSISTANT: <text>, USER: <request>)\nOUTPUT:\n<tool_call>\n"
        '{"name": "<function>", "arguments": {...}}\n</tool_call>')
    user = (f"Available tools (you may also use other tools from this list):\n{tools}\n\n"
            f"Seed input:\n{render_context(seed.messages)}\n\nCorrect response:\n{correct}\n\n"
            f"Wrong response:\n{wrong or '(not recorded)'}\n\nError analysis:\n{analysis or '(none)'}\n\n"
            f"Scenario focus: {VARIATION_TEXT[variation]}.\nMaximise diversity; use only the tools above.")
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def _calls_in(text: str) -> list[Call]:
    try:
        calls = parse_hermes(text)
        if not calls and text.strip().startswith("["):
            calls = parse_python_calls(text)
    except DecodeError as e:
        raise ValueError(f"unreadable tool call: {e}") from None
    return [Call(name=c.name, arguments=c.arguments) for c in calls]


def parse_expansion(text: str) -> tuple[list[Message], Label]:
    """INPUT/OUTPUT sections of a generator reply -> (context messages, call label)."""
    m = re.search(r"INPUT:\s*(.*?)\s*OUTPUT:\s*(.*)", strip_think(text), re.S | re.I)
    if not m:
        raise ValueError("no INPUT/OUTPUT sections")
    calls = _calls_in(m.group(2).strip())
    if not calls:
        raise ValueError("OUTPUT has no <tool_call>")
    parts = re.split(r"(?im)^\s*(USER|ASSISTANT|TOOL)\s*:\s*", m.group(1))
    turns = list(zip(parts[1::2], parts[2::2])) or [("USER", parts[0])]
    messages: list[Message] = []
    pending: list[str] = []
    for role, body in turns:
        body = body.strip()
        if role.upper() == "ASSISTANT":
            tc = _calls_in(body) if "<tool_call>" in body else []
            messages.append(Message(role="assistant", tool_calls=tc) if tc else Message(role="assistant", content=body))
            pending = [c.name for c in tc]
        elif role.upper() == "TOOL":
            messages.append(Message(role="tool", content=body, name=pending.pop(0) if pending else None))
        else:
            messages.append(Message(role="user", content=body))
    if not any(x.role == "user" and x.content for x in messages):
        raise ValueError("INPUT has no user request")
    return messages, Label(calls=calls)


# ----------------------------------------------------------------------------------------- stage

def _probe_replies(ctx: StageContext) -> dict[str, str]:
    path = ctx.iter_dir / "probe.jsonl"
    out: dict[str, str] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                break
            if isinstance(rec, dict) and "id" in rec:
                out[str(rec["id"])] = str(rec.get("response", ""))
    return out


class _Expander:
    def __init__(self, ctx: StageContext, errors: dict[str, str], judge: Judge | None,
                 backend: Backend | None, gen_params: GenParams | None, attempts: int):
        self.ctx, self.errors, self.judge, self.attempts = ctx, errors, judge, max(1, attempts)
        self.llm = ctx.cfg.expand.generator == "llm"
        self.backend, self.own_backend = backend, False
        if self.llm and backend is None:
            from core.seeds.llmgen import open_generator

            self.backend, self.own_backend = open_generator(ctx.cfg.expand.llm, ctx.cfg.model.device), True
        self.params = gen_params or GenParams(max_new_tokens=MAX_NEW_TOKENS, temperature=1.0, top_p=0.9)
        self.replies = _probe_replies(ctx) if self.llm else {}
        self.reasons: Counter = Counter()

    def rng(self, seed_id: str, i: int, attempt: int | str) -> random.Random:
        return random.Random(f"expand-{self.ctx.cfg.run.seed}-{self.ctx.iteration}-{seed_id}-{i}-{attempt}")

    def check(self, cand: Sample, counts: Counter) -> bool:
        counts["generated"] += 1
        problems = validate(cand)
        if problems:
            counts["rule_rejected"] += 1
            self.reasons[problems[0].split(":")[0]] += 1
            return False
        if self.judge is not None and not self.judge(cand):
            counts["judge_rejected"] += 1
            return False
        return True

    def candidates(self, seed: Sample, tasks: list[int], variations: dict[int, str],
                   attempt: int) -> dict[int, Sample | str]:
        """One candidate (or the reason there is none) per pending task."""
        if not self.llm:
            out: dict[int, Sample | str] = {}
            for i in tasks:
                try:
                    out[i] = expand_procedural(seed, variations[i], self.rng(seed.id, i, attempt),
                                               self.ctx.cfg.expand.redraw_tools)
                except (ValueError, RuntimeError, IndexError, KeyError) as e:
                    out[i] = f"{type(e).__name__}: {e}"
            return out
        from core.seeds.llmgen import chat

        convs = [expansion_messages(seed, self.replies.get(seed.id, ""), self.errors.get(seed.id, ""),
                                    variations[i]) for i in tasks]
        out = {}
        for i, reply in zip(tasks, chat(self.backend, convs, self.params)):
            try:
                messages, label = parse_expansion(reply)
                out[i] = Sample(id="x", tools=seed.tools, messages=messages, label=label, source="expand",
                                parent=seed.id, meta={"variation": variations[i], "generator": "llm"})
            except ValueError as e:
                out[i] = str(e)
        return out

    def expand_seed(self, seed: Sample, k: int, log: RecordLog) -> Counter:
        counts: Counter = Counter()
        variations = {i: draw_variation(self.rng(seed.id, i, "variation")) for i in range(k)}
        pending = []
        for i in range(k):
            if f"{seed.id}-x{i}" in log:
                counts.update(generated=1, kept=1, resumed=1)
            else:
                pending.append(i)
        for attempt in range(self.attempts):
            if not pending:
                break
            failed = []
            for i, cand in self.candidates(seed, pending, variations, attempt).items():
                if isinstance(cand, str):
                    counts.update(generated=1, rule_rejected=1)
                    self.reasons["unparsed"] += 1
                    failed.append(i)
                    continue
                cand = cand.model_copy(update={"id": f"{seed.id}-x{i}"})
                if self.check(cand, counts):
                    log.add(json.loads(cand.to_json()))
                    counts["kept"] += 1
                else:
                    failed.append(i)
            pending = failed
        return counts

    def close(self) -> None:
        if self.own_backend and self.backend is not None:
            self.backend.close()


def grounded_label(sample: Sample) -> bool:
    """The second-tier check of an expansion without an LLM judge: a text label, or calls that fit the
    schema with every argument value grounded in the conversation (core.checks)."""
    if sample.label.is_text:
        return True
    calls = sample.label.tool_calls()
    return not check_calls(calls, sample.tools) and not ungrounded(calls, sample)


def run(ctx: StageContext, seeds: list[Sample] | None = None, errors: dict[str, str] | None = None,
        judge: Judge | None = grounded_label, *, backend: Backend | None = None,
        gen_params: GenParams | None = None, attempts: int = ATTEMPTS) -> dict:
    """Expand every error seed into cfg.expand.k samples; resumable; returns the counts.

    seeds / errors: the error seeds and id -> the judge's error analysis; when not given, the
    iteration's ES (core.stages.judge.read_error_seeds). judge: second-tier check (None = rules only).
    backend / gen_params: the generator model and its sampling (llm generator; default: opened from
    cfg.expand.llm, temperature 1.0, top_p 0.9). attempts: candidates per task before it is given up."""
    if (done := is_done(ctx.iter_dir, "expand")) is not None:
        return done
    if seeds is None:
        found = read_error_seeds(ctx)
        seeds, errors = found.samples, found.reasons
    errors = errors or {}
    k = ctx.cfg.expand.k
    out = RecordLog(ctx.iter_dir / "expand.jsonl")
    finished = RecordLog(ctx.iter_dir / "expand.seeds.jsonl")
    totals: Counter = Counter()
    expander = _Expander(ctx, errors, judge, backend, gen_params, attempts) if seeds and k else None
    try:
        for n, seed in enumerate(seeds):
            ctx.control.checkpoint()
            if seed.id in finished:
                totals.update({key: v for key, v in finished.records[seed.id].items() if key != "id"})
            elif expander is not None:
                counts = expander.expand_seed(seed, k, out)
                finished.add({"id": seed.id, **counts})
                totals.update(counts)
            ctx.progress("expand", n + 1, len(seeds), kept=totals["kept"])
    finally:
        out.close()
        finished.close()
        if expander is not None:
            expander.close()
    stats = {"seeds": len(seeds), "k": k, "generator": ctx.cfg.expand.generator,
             "judge": "none" if judge is None else getattr(judge, "__name__", type(judge).__name__),
             **{key: totals[key] for key in ("generated", "rule_rejected", "judge_rejected", "kept", "resumed")},
             "rule_reasons": dict(expander.reasons) if expander else {}}
    mark_done(ctx.iter_dir, "expand", stats)
    return stats
