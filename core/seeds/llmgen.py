"""LLM-driven seed generation (when a generator backend is configured), and helpers shared with EDDE.

Two prompts per sample, in batches through ``Backend.generate`` with chat prompts rendered by the
model's own template (core.prompting.render):
  1. API design: a sampled Dual-Tree path (context leaf + constraints) -> one API doc as JSON;
  2. dialogue: that API -> ``{"query": ..., "calls": [{"name", "arguments"}]}`` as JSON.
Replies are parsed with ``json`` only (never evaluated), converted to BFCL docs, and the sample must pass
core.seeds.validate; each step is retried a bounded number of times, then the task is counted as a
reject with a reason. Counts always add up: ``accepted + rejected == requested``.
"""
from __future__ import annotations

import itertools
import json
import random
import re
from collections import Counter
from typing import Any

from core.backends import Backend, GenParams, load_backend
from core.config import LLMRef
from core.errors import UserError
from core.prompting import render
from core.schema import Call, Label, Message, Sample
from core.seeds.apis import draw_constraints
from core.seeds.catalog import LEAVES
from core.seeds.importers import MAX_ROW_DEPTH, too_deep
from core.seeds.validate import validate
from core.toolcalls import strip_think

_NAME = re.compile(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*")
_COUNT_TEXT = {"zero": "no parameters", "few": "one to three parameters",
               "many": "four or more parameters, some required and some optional"}


def open_generator(ref: LLMRef, device: str = "auto") -> Backend:
    """The backend of a configured generator/judge model."""
    if ref.backend == "openai":
        if not ref.base_url:
            raise UserError(f"LLM {ref.model!r}: base_url is required for the openai backend")
        return load_backend("openai", ref.model, base_url=ref.base_url)
    from core.models import resolve

    path = resolve(ref.model).path
    return load_backend(ref.backend, path, **({"device": device} if ref.backend == "hf" else {}))


def chat(backend: Backend, conversations: list[list[dict]], params: GenParams) -> list[str]:
    """One reply per conversation, think blocks stripped."""
    if not conversations:
        return []
    prompts = [render(backend.tokenizer, msgs) for msgs in conversations]
    return [strip_think(g.text) for g in backend.generate(prompts, params)]


def first_json_object(text: str) -> Any:
    """The first JSON object in a reply (code fences and prose around it are skipped)."""
    dec = json.JSONDecoder()
    # bounded before json sees it: 200k characters, 64 starting braces (each attempt may read to the
    # end), and json's recursion limit ends a deep object
    text = text[:200_000]
    for m in itertools.islice(re.finditer(r"\{", text), 64):
        try:
            value, _ = dec.raw_decode(text, m.start())
        except (ValueError, RecursionError):
            continue
        if isinstance(value, dict):
            if too_deep(value):  # the checks bound nothing deeper (ToolCall refuses past 100 levels)
                raise ValueError(f"the JSON object is nested deeper than {MAX_ROW_DEPTH} levels")
            return value
    raise ValueError("no JSON object in the reply")


def api_messages(leaf, c) -> list[dict]:
    dom, sub = leaf.path.split("/")
    return [
        {"role": "system", "content": "You design realistic web APIs for a function-calling dataset. "
                                      "Reply with one JSON object and nothing else."},
        {"role": "user", "content": (
            f"Design one API for the path {dom} > {sub} > {leaf.words}.\n"
            f"Purpose: {leaf.desc}\n"
            f"Constraints: function name in {c.naming} style; {_COUNT_TEXT[c.param_count]}; prefer "
            f"{c.type_focus} parameter types; a {c.description} description.\n"
            'Format: {"name": "...", "description": "...", "parameters": {"type": "dict", '
            '"properties": {"param": {"type": "string|integer|float|boolean|array|dict", '
            '"description": "..."}}, "required": ["param"]}}')},
    ]


def dialogue_messages(doc: dict) -> list[dict]:
    return [
        {"role": "system", "content": "You write training data for tool-calling assistants. "
                                      "Reply with one JSON object and nothing else."},
        {"role": "user", "content": (
            f"API:\n{json.dumps(doc, ensure_ascii=False)}\n\n"
            "Write one realistic user request that this API answers, stating every needed value "
            "explicitly, and the exact call that answers it.\n"
            'Format: {"query": "...", "calls": [{"name": "...", "arguments": {...}}]}')},
    ]


def parse_api(reply: str) -> dict:
    from core.seeds.importers import RowError, bfcl_doc

    try:
        doc = bfcl_doc(first_json_object(reply))
    except RowError as e:
        raise ValueError(str(e)) from None
    if not _NAME.fullmatch(doc["name"]):
        raise ValueError(f"function name {doc['name']!r:.60} is not an identifier")
    return doc


def parse_dialogue(reply: str, doc: dict, sid: str) -> Sample:
    obj = first_json_object(reply)
    query, calls = obj.get("query"), obj.get("calls")
    if not isinstance(query, str) or not query.strip():
        raise ValueError("no query")
    if not isinstance(calls, list) or not calls:
        raise ValueError("no calls")
    parsed = []
    for c in calls:
        if not isinstance(c, dict) or not isinstance(c.get("name"), str) or not isinstance(c.get("arguments", {}), dict):
            raise ValueError("a call needs a name and an arguments object")
        parsed.append(Call(name=c["name"], arguments=c.get("arguments", {})))
    sample = Sample(id=sid, tools=[doc], messages=[Message(role="user", content=query.strip())],
                    label=Label(calls=parsed), source="seed:llm")
    problems = validate(sample)
    if problems:
        raise ValueError(problems[0])
    return sample


def synthesize_llm(backend: Backend, n: int, seed: int = 0, max_new_tokens: int = 768, retries: int = 2,
                   temperature: float = 0.7) -> tuple[list[Sample], dict]:
    """n LLM-written samples (ids llm-<seed>-<i>); stats {requested, accepted, rejected, reasons}."""
    params = GenParams(max_new_tokens=max_new_tokens, temperature=temperature, top_p=0.9, seed=seed)
    tasks = {}
    for i in range(n):
        rng = random.Random(f"llm-{seed}-{i}")
        tasks[i] = {"leaf": rng.choice(LEAVES), "c": draw_constraints(rng), "doc": None, "why": ""}
    done: dict[int, Sample] = {}
    for step in ("api", "dialogue"):
        todo = [i for i in tasks if (tasks[i]["doc"] is None) == (step == "api") and i not in done
                and not tasks[i]["why"]]
        for attempt in range(retries + 1):
            if not todo:
                break
            convs = [api_messages(tasks[i]["leaf"], tasks[i]["c"]) if step == "api"
                     else dialogue_messages(tasks[i]["doc"]) for i in todo]
            replies = chat(backend, convs, params)
            failed = []
            for i, reply in zip(todo, replies):
                try:
                    if step == "api":
                        tasks[i]["doc"] = parse_api(reply)
                    else:
                        done[i] = parse_dialogue(reply, tasks[i]["doc"], f"llm-{seed}-{i}")
                except ValueError as e:
                    failed.append(i)
                    if attempt == retries:
                        tasks[i]["why"] = f"{step}: {str(e)[:80]}"
            todo = failed
    reasons = Counter(_reason_key(t["why"]) for i, t in tasks.items() if i not in done)
    samples = [done[i] for i in sorted(done)]
    return samples, {"requested": n, "accepted": len(samples), "rejected": n - len(samples),
                     "reasons": dict(reasons)}


def _reason_key(why: str) -> str:
    return why.split(":")[0] + (": no JSON" if "no JSON" in why else "") if why else "unknown"
