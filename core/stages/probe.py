"""GCP -- Greedy Capability Probing (method reference section 4).

Every sample of D_j is decoded greedily (temperature 0, thinking left to the chat template) by the
policy just trained on D_j, with per-token logprobs. Each sample is *mastered* when the reply earns
the training reward (core.prompt_format.reward == 1.0), else *mismatched* and handed to the judge.

Records (iter_dir/probe.jsonl, one per sample, appended per batch, resumable by id):
    {id, response, ppl, ppl_call, mastered, reward, tokens, finish, kind, failure}
    ppl       exp(-mean logprob) over ALL generated tokens, think trace included (the official code);
    ppl_call  the same over the tokens after the last </think> (the call / answer span; reference
              section 12 #4 "for analysis"); equal to ppl when the reply has no think block.
    kind      the sample's dialogue kind (core.failures.sample_kind);
    failure   why the reply missed (core.failures.classify: one of FAILURE_CLASSES), null when mastered.

Stats (probe.done, hence the iteration record and the stage_finished event), beside the counts:
    by_kind           {kind: {"mastered": int, "total": int}}
    failure_classes   {class: count} for every class of FAILURE_CLASSES, zeros included
    by_kind_failures  {kind: {class: count}}, non-zero counts only
    unclassified      mismatched records without a failure class (see `summarize`)

Which weights are probed: the policy trained on D_j (core.weights.trained).

HPPL (`high_ppl`): the rule is named by cfg.probe.hppl_rule. "top_ppl_fill" (default) takes the n
highest-PPL eligible (mastered) samples, where n is what assemble has left of the budget; ties are
broken by id so the choice is deterministic. "none" selects nothing (assemble then tops up with
random mastered samples: the paper's "w/o High-PPL" ablation).
"""
from __future__ import annotations

import math
import time
from dataclasses import replace
from pathlib import Path
from typing import Iterable

from core.backends import GenParams, Generation, for_run
from core.failures import FAILURE_CLASSES, UNKNOWN_KIND, classify, sample_kind
from core.prompting import render
from core.prompt_format import label_text, prompt_messages, reward
from core.records import RecordLog
from core.schema import Sample, load_samples
from core.stages.base import StageContext, mark_done
from core.weights import trained

HPPL_RULES = ("top_ppl_fill", "none")


# -- prompts and records ------------------------------------------------------------------------

def build_prompt(sample: Sample, tokenizer, mode: str) -> str:
    """The exact prompt the policy is trained and evaluated on (core.prompt_format)."""
    msgs, tools = prompt_messages(sample, mode)
    return render(tokenizer, msgs, tools)


def _ppl(logprobs: list[float] | None) -> float | None:
    if not logprobs:
        return None
    return math.exp(-sum(logprobs) / len(logprobs))


def _answer_start(gen: Generation, tokenizer) -> int:
    """Index of the first token after the last </think> (0 without one): the fewest leading tokens
    whose decoded text already contains every </think>."""
    want = gen.text.count("</think>")
    if not want or tokenizer is None:
        return 0
    lo, hi = 1, len(gen.token_ids)
    while lo < hi:
        mid = (lo + hi) // 2
        if tokenizer.decode(gen.token_ids[:mid], skip_special_tokens=True).count("</think>") >= want:
            hi = mid
        else:
            lo = mid + 1
    return hi


def make_record(sample: Sample, gen: Generation, mode: str, list_as_set: bool = False,
                tokenizer=None) -> dict:
    r = reward(gen.text, sample, mode, list_as_set=list_as_set)
    ppl = gen.perplexity
    ppl_call = ppl
    if gen.logprobs and "</think>" in gen.text:
        ppl_call = _ppl(gen.logprobs[_answer_start(gen, tokenizer):]) or ppl
    return {"id": sample.id, "response": gen.text, "ppl": ppl, "ppl_call": ppl_call,
            "mastered": r == 1.0, "reward": r, "tokens": gen.num_tokens, "finish": gen.finish_reason,
            "kind": sample_kind(sample),
            "failure": None if r == 1.0 else classify(gen.text, sample, mode, list_as_set=list_as_set)}


def batch_params(params: GenParams, batch: list[Sample], tokenizer, cfg) -> GenParams:
    """`params`, with max_new_tokens cut to the batch's longest label plus cfg.probe.label_margin_tokens
    when that is set: greedy decoding past it only decides how a reply that already cannot match fails."""
    margin = cfg.probe.label_margin_tokens
    if margin is None:
        return params
    longest = max(len(tokenizer.encode(label_text(s, cfg.model.mode), add_special_tokens=False)) for s in batch)
    return replace(params, max_new_tokens=min(params.max_new_tokens, longest + margin))


# -- the stage ----------------------------------------------------------------------------------

def run(ctx: StageContext, dataset: list[Sample] | None = None, backend=None) -> dict:
    """Probe every sample of D_j (the iteration's dataset.jsonl when not given) not yet in probe.jsonl;
    returns (and marks done with) the stats."""
    cfg = ctx.cfg
    if dataset is None:
        dataset = load_samples(ctx.iter_dir / "dataset.jsonl")
    iter_dir = ctx.iter_dir
    log = RecordLog(iter_dir / "probe.jsonl")
    # Batches of similar label length: greedy decoding runs until a batch's longest answer ends, so
    # mixing a 140-token answer into a batch of 20-token ones costs the whole batch 120 extra steps.
    pending = sorted((s for s in dataset if s.id not in log), key=lambda s: len(label_text(s, cfg.model.mode)))
    total, done = len(dataset), len(dataset) - len(pending)
    params = GenParams(max_new_tokens=cfg.probe.max_new_tokens, temperature=0.0, logprobs=True)
    own_backend = backend is None and bool(pending)
    weights = trained(ctx)
    model, adapter = weights.model, weights.adapter
    t0, tokens, probed = time.monotonic(), 0, 0
    try:
        if own_backend:
            backend = for_run(cfg, weights)
        ctx.progress("probe", done, total, tokens=0)
        size = cfg.probe.batch_size
        for start in range(0, len(pending), size):
            ctx.control.checkpoint()
            batch = pending[start:start + size]
            tb = time.monotonic()
            prompts = [build_prompt(s, backend.tokenizer, cfg.model.mode) for s in batch]
            gens = backend.generate(prompts, batch_params(params, batch, backend.tokenizer, cfg), adapter=adapter)
            for s, g in zip(batch, gens):
                log.add(make_record(s, g, cfg.model.mode, cfg.train.list_as_set, backend.tokenizer))
            n_tok = sum(g.num_tokens for g in gens)
            tokens, probed, done = tokens + n_tok, probed + len(batch), done + len(batch)
            dt = max(time.monotonic() - tb, 1e-9)
            ctx.progress("probe", done, total, tokens=tokens)
            ctx.emit("metrics", {"stage": "probe", "iteration": ctx.iteration,
                                 "tokens_per_s": n_tok / dt, "samples_per_s": len(batch) / dt})
    finally:
        log.close()
        if own_backend and backend is not None:
            backend.close()
    wall = time.monotonic() - t0
    stats = summarize(log.records, [s.id for s in dataset], samples={s.id: s for s in dataset},
                      mode=cfg.model.mode, list_as_set=cfg.train.list_as_set)
    stats.update(wall_s=round(wall, 3), probed_now=probed, tokens_now=tokens,
                 tokens_per_s=round(tokens / wall, 2) if probed else 0.0,
                 samples_per_s=round(probed / wall, 3) if probed else 0.0,
                 model=model, adapter=adapter)
    mark_done(iter_dir, "probe", stats)
    return stats


def summarize(records: dict[str, dict], ids: Iterable[str], samples: dict[str, Sample] | None = None,
              mode: str = "prompt", list_as_set: bool = False) -> dict:
    """Counts, mean PPL, and mastery / failure classes per kind over the records of `ids`.

    Records written before records had `kind` / `failure` are classified here from `samples` (the
    dataset, by id) in `mode`; without their sample they count under kind "unknown", and a mismatched
    one without a class counts in `unclassified`, not in `failure_classes`.
    """
    recs = [records[i] for i in ids if i in records]
    ppls = [r["ppl"] for r in recs if r.get("ppl") is not None]
    mastered = sum(1 for r in recs if r["mastered"])
    by_kind: dict[str, dict[str, int]] = {}
    classes = dict.fromkeys(FAILURE_CLASSES, 0)
    by_kind_failures: dict[str, dict[str, int]] = {}
    unclassified = 0
    for r in recs:
        kind, failure = _kind_and_failure(r, (samples or {}).get(r["id"]), mode, list_as_set)
        k = by_kind.setdefault(kind, {"mastered": 0, "total": 0})
        k["total"] += 1
        k["mastered"] += bool(r["mastered"])
        if r["mastered"]:
            continue
        if failure not in classes:
            unclassified += 1
            continue
        classes[failure] += 1
        per = by_kind_failures.setdefault(kind, {})
        per[failure] = per.get(failure, 0) + 1
    return {"samples": len(recs), "mastered": mastered, "mismatched": len(recs) - mastered,
            "mean_ppl": round(sum(ppls) / len(ppls), 4) if ppls else None,
            "by_kind": dict(sorted(by_kind.items())), "failure_classes": classes,
            "by_kind_failures": dict(sorted(by_kind_failures.items())), "unclassified": unclassified}


def _kind_and_failure(record: dict, sample: Sample | None, mode: str, list_as_set: bool
                      ) -> tuple[str, str | None]:
    """A record's (kind, failure), from the record when it has them, else from its sample."""
    kind = record.get("kind") or (sample_kind(sample) if sample is not None else UNKNOWN_KIND)
    if record["mastered"]:
        return kind, None
    failure = record.get("failure")
    if failure is None and sample is not None and "response" in record:
        failure = classify(record["response"], sample, mode, list_as_set=list_as_set)
    return kind, failure


# -- HPPL ---------------------------------------------------------------------------------------

def high_ppl(records: Iterable[dict] | dict[str, dict], mastered_ids: Iterable[str], n: int,
             rule: str = "top_ppl_fill") -> list[str]:
    """The HPPL set: ids of the `n` highest-PPL samples among `mastered_ids` (ties by id).

    Samples without a PPL (a backend without logprobs) are not ranked; assemble's random top-up may
    still pick them. `rule="none"` returns [] (the w/o-High-PPL ablation).
    """
    if rule not in HPPL_RULES:
        raise ValueError(f"unknown HPPL rule {rule!r}; choose from {', '.join(HPPL_RULES)}")
    if rule == "none" or n <= 0:
        return []
    recs = records.values() if isinstance(records, dict) else records
    eligible = set(mastered_ids)
    ranked = sorted(((r["ppl"], r["id"]) for r in recs
                     if r["id"] in eligible and r.get("ppl") is not None and math.isfinite(r["ppl"])),
                    key=lambda t: (-t[0], t[1]))
    seen: set[str] = set()
    out = []
    for _, i in ranked:
        if i not in seen:
            seen.add(i)
            out.append(i)
            if len(out) == n:
                break
    return out
