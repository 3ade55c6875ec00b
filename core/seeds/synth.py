"""Procedural seed synthesis (no LLM): Dual-Tree APIs (core.seeds.apis) + a procedural dialogue simulator.

The simulator plays user, assistant and tool from templates. Every argument value is drawn from a slot
generator and written into the user's words, so string and number arguments of a label always appear
in the conversation (core.checks.ungrounded checks it). Kinds, shaped like BFCL-v3 non-live (no BFCL
function or query is used):
  single-turn calls  simple | multiple (distractor tools) | parallel (one function, several value
                     sets) | parallel_multiple (two functions);
  multi-turn calls   sequential (earlier call + tool result, then a new request) | clarify_then_call
                     (the assistant asked for a missing required parameter) | follow_up (same call, one
                     value changed);
  text labels        clarify (a required parameter is missing) | refuse (no tool fits), single-turn or
                     after a sequential history (mt_clarify / mt_refuse).
`synthesize` gives exact shares of text and multi-turn samples (rounded), shuffled under the seed;
sample i is built from its own ``Random(f"{seed}-{i}")``, so a sample does not depend on n.
"""
from __future__ import annotations

import json
import random
import re
from random import Random

from core.schema import Call, Label, Message, Sample
from core.seeds.apis import ApiSpec, make_api
from core.seeds.catalog import LEAVES, Leaf
from core.seeds.llmgen import synthesize_llm  # noqa: F401  (re-exported: the LLM-driven generator)

PERSONAS = [("", ""), ("Hi! ", " Thanks!"), ("Hello, ", " Thank you."), ("Hey, ", ""),
            ("Good morning. ", " Much appreciated."), ("Quick question: ", ""),
            ("As a busy parent, ", ""), ("I'm sorting things out for my team, so ", ""),
            ("For a school project, ", " Thanks a lot."), ("I'm in a hurry. ", ""),
            ("Dear assistant, ", " Kind regards."), ("Yo, ", " Cheers.")]
STYLES = ["{}.", "Can you {}?", "Could you please {}?", "I need you to {}.", "Please {}.",
          "I'd like you to {}.", "Help me {}.", "Would you {} for me?"]
# Every text label opens with the same token ("I"). The choice between answering and calling is made
# at the first token, against the single "[" that opens every call list; text openings spread over
# several tokens each stay below "[" after SFT, and greedy decoding then never answers in prose
# (measured: 0/21 clarify and 0/8 refuse samples mastered with varied openings).
CLARIFY = ["I need the {w} first. What should it be?", "I can help with that, but I need the {w} first. What should it be?",
           "I can do that once I know the {w}. Which {w} should I use?", "I need one more detail: the {w}. Could you tell me?"]
REFUSE = ["I'm sorry, but none of the available tools can {i}.",
          "I can't help with that: no available function can {i}.",
          "I don't have a tool that can {i}, so I can't do that here."]
ANSWERS = ["Sure: {c}.", "It should be {c}.", "Oh right, {c}.", "{C}, please."]
SUMMARY = ["Done! The request went through (reference {ref}).", "I found {n} results for you.",
           "All set: {n} matches came back, reference {ref}."]
# Parallel (one function, several calls) outweighs parallel_multiple: with 15 / 20 a 128-sample dataset held
# 7 parallel and 22 parallel_multiple samples, and the trained model answered BFCL parallel entries with
# one call (wrong_count 28/50) and multiple entries with two (wrong_count 12/50).
SINGLE_CALL = (("simple", 30), ("multiple", 30), ("parallel", 27), ("parallel_multiple", 13))
MULTI_CALL = (("sequential", 40), ("clarify_then_call", 30), ("follow_up", 30))
TEXT_KINDS = ("clarify", "refuse")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _pick(rng: Random, table) -> str:
    return rng.choices([k for k, _ in table], weights=[w for _, w in table])[0]


def draw_args(rng: Random, api: ApiSpec, p_opt: float = 0.45, avoid: list[dict] | None = None) -> dict:
    """Required parameters, and each optional one with probability p_opt; differs from `avoid` sets."""
    args: dict = {}
    for _ in range(6):
        args = {}
        for p in api.required + [p for p in api.optional if rng.random() < p_opt]:
            for _ in range(5):  # origin != destination, source != target currency ...
                args[p.key] = p.gen(rng)
                if not isinstance(args[p.key], str) or args[p.key] not in [v for k, v in args.items() if k != p.key]:
                    break
        if not avoid or all(args != a for a in avoid):
            break
    dated = [k for k, v in args.items() if isinstance(v, str) and _ISO_DATE.fullmatch(v)]
    for k, v in zip(dated, sorted(args[k] for k in dated)):  # start dates before end dates
        args[k] = v
    return args


def clauses(api: ApiSpec, args: dict, rng: Random | None = None) -> list[str]:
    """Query phrases: required parameters in doc order, optional ones shuffled; generic ones grouped."""
    by_key = {p.key: p for p in api.params}
    req = [k for k in args if k in by_key and by_key[k].required]
    opt = [k for k in args if k in by_key and not by_key[k].required]
    if rng is not None:
        rng.shuffle(opt)
    named, generic = [], []
    for k in req + opt:
        (generic if by_key[k].phrase is None else named).append(by_key[k].clause(args[k]))
    if generic:
        named.append("with " + (generic[0] if len(generic) == 1 else ", ".join(generic[:-1]) + " and " + generic[-1]))
    return named


def utterance(rng: Random, pieces: list[tuple[str, list[str]]], persona=None, style: str | None = None) -> str:
    """A user turn asking for one or more requests: pieces are (intent, clauses)."""
    bodies = [" ".join(x for x in [intent, *cl] if x) for intent, cl in pieces]
    body = bodies[0] + "".join(f", and also {b}" for b in bodies[1:])
    prefix, suffix = persona if persona is not None else rng.choice(PERSONAS)
    style = style or rng.choice(STYLES)
    text = style.format(body)
    if prefix.endswith((", ", "so ", ": ")) and not text.startswith(("I ", "I'")):
        text = text[0].lower() + text[1:]
    else:
        text = text[0].upper() + text[1:]
    return prefix + text + suffix


def _call(api: ApiSpec, args: dict) -> Call:
    return Call(name=api.name, arguments=args)


def _tool_turns(rng: Random, calls: list[Call]) -> list[Message]:
    out = [Message(role="assistant", tool_calls=calls)]
    ref, n = "", 0
    for c in calls:
        ref, n = f"R-{rng.randint(10000, 99999)}", rng.randint(1, 12)
        out.append(Message(role="tool", name=c.name,
                           content=json.dumps({"status": "success", "reference": ref, "results": n})))
    out.append(Message(role="assistant", content=rng.choice(SUMMARY).format(ref=ref, n=n)))
    return out


def _ask(rng, api, args, persona, style) -> str:
    return utterance(rng, [(rng.choice(api.intents), clauses(api, args, rng))], persona, style)


def simulate(kind: str, rng: Random, apis: list[ApiSpec], p_opt: float = 0.45, persona=None,
             style: str | None = None) -> tuple[list[Message], Label]:
    """One dialogue of `kind` about apis[0] (apis[1]: the second function where the kind needs one;
    for refuse kinds apis[0] is the unrelated request, not offered as a tool)."""
    main = apis[0]
    second = apis[1] if len(apis) > 1 else main
    if kind in ("simple", "multiple"):
        args = draw_args(rng, main, p_opt)
        return [Message(role="user", content=_ask(rng, main, args, persona, style))], Label(calls=[_call(main, args)])
    if kind == "parallel":
        sets: list[dict] = []
        for _ in range(3 if rng.random() < 0.2 else 2):
            sets.append(draw_args(rng, main, p_opt, avoid=sets))
        pieces = [(rng.choice(main.intents) if i == 0 else "", clauses(main, a, rng)) for i, a in enumerate(sets)]
        return ([Message(role="user", content=utterance(rng, pieces, persona, style))],
                Label(calls=[_call(main, a) for a in sets]))
    if kind == "parallel_multiple":
        a1, a2 = draw_args(rng, main, p_opt), draw_args(rng, second, p_opt)
        pieces = [(rng.choice(main.intents), clauses(main, a1, rng)), (rng.choice(second.intents), clauses(second, a2, rng))]
        return ([Message(role="user", content=utterance(rng, pieces, persona, style))],
                Label(calls=[_call(main, a1), _call(second, a2)]))
    if kind in ("clarify", "clarify_then_call"):
        args = draw_args(rng, main, p_opt)
        missing = rng.choice(main.required)
        partial = {k: v for k, v in args.items() if k != missing.key}
        msgs = [Message(role="user", content=_ask(rng, main, partial, persona, style))]
        question = rng.choice(CLARIFY).format(w=missing.words)
        if kind == "clarify":
            return msgs, Label(text=question)
        c = missing.clause(args[missing.key])
        answer = rng.choice(ANSWERS).format(c=c, C=c[0].upper() + c[1:])
        msgs += [Message(role="assistant", content=question), Message(role="user", content=answer)]
        return msgs, Label(calls=[_call(main, args)])
    if kind in ("sequential", "follow_up", "mt_clarify", "mt_refuse"):
        first = second if kind == "sequential" else main
        if kind in ("mt_clarify", "mt_refuse"):
            first = second
        a1 = draw_args(rng, first, p_opt)
        msgs = [Message(role="user", content=_ask(rng, first, a1, persona, style))] + _tool_turns(rng, [_call(first, a1)])
        if kind == "sequential":
            a2 = draw_args(rng, main, p_opt, avoid=[a1])
            msgs.append(Message(role="user", content=_ask(rng, main, a2, ("", ""), None)))
            return msgs, Label(calls=[_call(main, a2)])
        if kind == "follow_up":
            changeable = [p for p in main.params if p.key in a1 and not isinstance(a1[p.key], bool)]
            p = rng.choice(changeable)
            a2 = dict(a1)
            for _ in range(6):
                a2[p.key] = p.gen(rng)
                if a2[p.key] != a1[p.key]:
                    break
            msgs.append(Message(role="user", content=f"Now do the same but {p.clause(a2[p.key])}."))
            return msgs, Label(calls=[_call(main, a2)])
        sub, label = simulate(kind[3:], rng, [main], p_opt, ("", ""), None)
        return msgs + sub, label
    if kind == "refuse":
        args = draw_args(rng, main, p_opt)
        intent = rng.choice(main.intents)
        text = rng.choice(REFUSE).format(i=intent)
        return [Message(role="user", content=_ask(rng, main, args, persona, style))], Label(text=text)
    raise ValueError(f"unknown dialogue kind {kind!r}")


def _other_leaves(rng: Random, exclude: set[str], k: int, other_domain_than: set[str] = frozenset(),
                  in_domain: str | None = None) -> list[Leaf]:
    pool = [leaf for leaf in LEAVES if leaf.key not in exclude and leaf.domain not in other_domain_than
            and (in_domain is None or leaf.domain == in_domain)]
    return rng.sample(pool, min(k, len(pool)))


def _needs(kind: str) -> str:
    """What the main API must have: 'required' (a required parameter) or '' (nothing)."""
    if kind in ("clarify", "clarify_then_call", "mt_clarify", "parallel", "follow_up"):
        return "required"
    return ""


def _main_api(rng: Random, kind: str) -> ApiSpec:
    need = _needs(kind)
    for _ in range(20):
        api = make_api(rng)
        if need == "required" and not api.required:
            continue
        if kind == "follow_up" and not any(p.required and p.schema.get("type") != "boolean" for p in api.params):
            continue
        return api
    raise RuntimeError(f"no API fits dialogue kind {kind}")  # pragma: no cover - the catalogue always fits


def synth_one(sid: str, rng: Random, is_text: bool, is_multi: bool, refuse_share: float | None = None,
              refuse_same_domain: float = 0.0) -> Sample:
    if is_text:
        text_kind = rng.choice(TEXT_KINDS) if refuse_share is None else \
            ("refuse" if rng.random() < refuse_share else "clarify")
        kind = ("mt_" if is_multi else "") + text_kind
    else:
        kind = _pick(rng, MULTI_CALL if is_multi else SINGLE_CALL)
    main = _main_api(rng, kind)
    leaf_of = {main.name: main.leaf}
    if kind.endswith("refuse"):
        query_api = main
        dom = next(x for x in LEAVES if x.key == main.leaf).domain
        if refuse_same_domain and rng.random() < refuse_same_domain:  # a hard negative: a sibling tool that looks close but does not fit
            leaves = _other_leaves(rng, {main.leaf}, rng.randint(1, 2), in_domain=dom)
        else:
            leaves = _other_leaves(rng, {main.leaf}, rng.randint(1, 3), {dom})
        offered = [make_api(rng, leaf) for leaf in leaves]
        if kind == "mt_refuse":
            apis = [query_api, offered[0]]
        else:
            apis = [query_api]
        tools_specs = offered
        leaf_of = {}
    else:
        n_extra = {"multiple": rng.randint(2, 4), "parallel_multiple": rng.randint(1, 2),
                   "sequential": rng.randint(1, 2), "mt_clarify": 1}.get(kind, 0)
        extras = [make_api(rng, leaf) for leaf in _other_leaves(rng, {main.leaf}, n_extra)]
        apis = [main, *extras]
        tools_specs = apis
    messages, label = simulate(kind, rng, apis)
    tools_specs = list({s.name: s for s in tools_specs}.values())
    rng.shuffle(tools_specs)
    leaf_of.update({s.name: s.leaf for s in tools_specs})
    meta = {"kind": kind, "leaves": leaf_of}
    if kind.endswith("refuse"):
        meta["asked"] = main.leaf  # the leaf the user's request is for, which no offered tool serves
    return Sample(id=sid, tools=[s.doc for s in tools_specs], messages=messages, label=label,
                  source="seed:procedural", meta=meta)


def synthesize(n: int, seed: int = 0, text_fraction: float = 0.15, multi_turn_fraction: float = 0.3,
               refuse_share: float | None = None, refuse_same_domain: float = 0.0) -> list[Sample]:
    """n procedural samples with ids syn-<seed>-<i>; deterministic under seed. `refuse_share`: the share
    of text samples that are refusals (the rest ask for a missing parameter); None draws both kinds
    with equal odds. `refuse_same_domain`: the share of refusals whose offered tools come from the
    request's own domain (hard negatives) rather than from other domains."""
    plan = random.Random(f"plan-{seed}-{n}")
    n_text = round(n * text_fraction)
    n_multi = round(n * multi_turn_fraction)
    text_flags = [True] * n_text + [False] * (n - n_text)
    multi_flags = [True] * n_multi + [False] * (n - n_multi)
    plan.shuffle(text_flags)
    plan.shuffle(multi_flags)
    return [synth_one(f"syn-{seed}-{i}", random.Random(f"{seed}-{i}"), text_flags[i], multi_flags[i], refuse_share,
                       refuse_same_domain)
            for i in range(n)]
