"""JGLV -- Judgement-Guided Label Verification (method reference section 5).

Every mismatched probe sample gets a verdict: PRED_WRONG (keep the label: an error seed),
LABEL_WRONG (replace the label by the prediction: an error seed), BOTH_CORRECT (treated as mastered,
eligible for HPPL), BOTH_WRONG (discarded), or JUDGE_FAILED (the LLM never answered parsably: discarded).

1. The rule judge settles the clear cases. Each side is checked for schema validity against
   sample.tools and for grounding in the conversation by the rules of core.checks (check_calls,
   ungrounded). A side "passes" when it has no problem; a text reply passes when it is non-empty; a
   malformed call never passes.

       label   prediction                      verdict
       text    text                            BOTH_CORRECT (no call either way)
       text    fails                           PRED_WRONG
       text    passing calls                   undecided (maybe a needless clarification)
       calls+  fails                           PRED_WRONG
       calls+  text                            PRED_WRONG (the label's call was possible)
       calls+  passing calls, equivalent*      BOTH_CORRECT
       calls+  passing calls, different        undecided
       calls-  passing calls                   LABEL_WRONG (relabel with the prediction)
       calls-  text                            undecided
       calls-  fails                           BOTH_WRONG
   (calls+ / calls- = the label's calls pass / fail the checks; * equal after normalisation: strings
   compared casefolded with whitespace collapsed, 1 == 1.0, optional arguments equal to their schema
   default dropped, calls as a multiset.)

2. Undecided cases go to the LLM judge when cfg.judge.kind = "llm" (or a judge backend is passed in).
   Without one, the rule judge's FALLBACK applies: PRED_WRONG when the label passes the checks (the
   label is trusted, as the paper's "w/o JGLV" treats every mismatch), BOTH_WRONG when it does not
   (nothing checkable is left to train on). Recorded with outcome "UNDECIDED".

3. LLM judge: Response 1 = label, Response 2 = prediction (the paper's order). Replies are parsed by
   `parse_verdict` (think stripped; first bracketed verdict token wins); an unparsable reply is
   retried once (sampling, so a deterministic backend can answer differently); still unparsable ->
   a failed vote. cfg.judge.votes > 1 samples each vote (VOTE_TEMPERATURE). The top verdict needs a
   share >= cfg.judge.consensus of ALL votes (failed ones included) and must not be tied, else
   NO_CONSENSUS; all votes failed -> JUDGE_FAILED. With cfg.judge.swap_order the same is asked with
   the responses swapped and mapped back; a decisive normal-order verdict that the swapped one
   contradicts -> POSITION_INCONSISTENT (a failed swapped call leaves the normal verdict unchecked).
   NO_CONSENSUS and POSITION_INCONSISTENT are kept as the record's `outcome` and counted in the stats;
   their `verdict` is the rule FALLBACK above (so a trusted label still yields a PRED_WRONG seed).

Records (iter_dir/judge.jsonl, resumable by id):
    {id, verdict, outcome, reason, by: "rule"|"llm", votes[, votes_swapped][, relabel]}
`verdict` is always actionable (PRED_WRONG / LABEL_WRONG / BOTH_CORRECT / BOTH_WRONG / JUDGE_FAILED);
`outcome` is what the judge itself concluded (a verdict, UNDECIDED, NO_CONSENSUS,
POSITION_INCONSISTENT or JUDGE_FAILED); `relabel` (LABEL_WRONG only) is the corrected Sample as JSON
(source "relabel", same id, parent = the original id, meta.original_label = the old label).
"""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, replace

from core import toolcalls
from core.backends import GenParams, load_backend
from core.checks import check_calls, norm_text, tool_params, ungrounded
from core.prompting import render
from core.records import RecordLog, read_records
from core.prompt_format import decode_reply, label_text
from core.schema import Call, Label, Sample, load_samples
from core.stages.base import StageContext, mark_done
from core.stages.judge_prompts import (  # noqa: F401  (re-exported: the judge's reply protocol)
    JUDGE_FAILED, NO_CONSENSUS, POSITION_INCONSISTENT, UNDECIDED, VERDICTS, aggregate, combine_orders,
    judge_messages, parse_verdict)

VOTE_TEMPERATURE, VOTE_TOP_P = 0.7, 0.8
LLM_CHUNK = 16  # samples per LLM batch between control checkpoints


# -- call equivalence ---------------------------------------------------------------------------

def _normalised(calls: list[toolcalls.ToolCall], tools: list[dict]) -> list[toolcalls.ToolCall]:
    """Calls with strings in core.checks' normal form and optional arguments equal to their default
    dropped, so that equivalent calls compare equal."""
    def norm(v):
        if isinstance(v, str):
            return norm_text(v)
        if isinstance(v, list):
            return [norm(x) for x in v]
        return {k: norm(x) for k, x in v.items()} if isinstance(v, dict) else v

    index, out = tool_params(tools), []
    for c in calls:
        params = index.get(c.name) or {}
        props, required = params.get("properties") or {}, set(params.get("required") or [])
        args = {k: norm(v) for k, v in c.arguments.items()
                if k in required or "default" not in (props.get(k) or {}) or norm(props[k]["default"]) != norm(v)}
        out.append(toolcalls.ToolCall(c.name, args))
    return out


def equivalent(a: list[toolcalls.ToolCall], b: list[toolcalls.ToolCall], tools: list[dict],
               list_as_set: bool = False) -> bool:
    return toolcalls.tool_match(_normalised(a, tools), _normalised(b, tools), list_as_set=list_as_set)


# -- the rule judge -----------------------------------------------------------------------------

@dataclass(frozen=True)
class RuleResult:
    verdict: str | None  # None = undecided
    reason: str
    fallback: str  # the verdict to use when nothing better decides an undecided case
    label_ok: bool


def rule_verdict(sample: Sample, response: str, mode: str, list_as_set: bool = False) -> RuleResult:
    pred = decode_reply(response, mode)
    label_calls = None if sample.label.is_text else sample.label.tool_calls()
    label_why = [] if label_calls is None else check_calls(label_calls, sample.tools) + ungrounded(label_calls, sample)
    if pred is None:
        pred_why = ["the prediction is a malformed tool call"]
    elif not pred:
        pred_why = [] if toolcalls.strip_think(response) else ["the prediction is empty"]
    else:
        pred_why = check_calls(pred, sample.tools) + ungrounded(pred, sample)
    label_ok, pred_ok = not label_why, not pred_why
    fallback = "PRED_WRONG" if label_ok else "BOTH_WRONG"

    def res(verdict, reason):
        return RuleResult(verdict, reason, fallback, label_ok)

    pred_is_text = pred == [] and pred_ok
    if label_calls is None:
        if pred_is_text:
            return res("BOTH_CORRECT", "text label and text reply: no call either way")
        if not pred_ok:
            return res("PRED_WRONG", "text label; prediction: " + "; ".join(pred_why))
        return res(None, "text label, but the prediction makes valid, grounded calls")
    if label_ok:
        if not pred_ok:
            return res("PRED_WRONG", "prediction: " + "; ".join(pred_why))
        if pred_is_text:
            return res("PRED_WRONG", "the label's calls are valid and grounded; the prediction makes no call")
        if equivalent(pred, label_calls, sample.tools, list_as_set):
            return res("BOTH_CORRECT", "both valid and grounded; equal after normalisation")
        return res(None, "both valid and grounded, but they differ")
    if not pred_ok:
        return res("BOTH_WRONG", "label: " + "; ".join(label_why) + " | prediction: " + "; ".join(pred_why))
    if pred_is_text:
        return res(None, "label fails the checks (" + "; ".join(label_why) + "); the prediction is text")
    return res("LABEL_WRONG", "label: " + "; ".join(label_why) + "; the prediction's calls are valid and grounded")


# -- the LLM judge ------------------------------------------------------------------------------

def _pred_text(response: str, mode: str) -> str:
    calls = decode_reply(response, mode)
    return toolcalls.render_hermes(calls) if calls else toolcalls.strip_think(response)


def _ask(backend, prompts: list[str], params: GenParams, swapped: bool) -> list[tuple[str | None, str]]:
    return [parse_verdict(g.text, swapped) for g in backend.generate(prompts, params)]


def llm_judge(backend, items: list[tuple[Sample, str]], jcfg, mode: str, seed: int = 0) -> list[dict]:
    """Judge (sample, response) pairs: [{outcome, votes, analysis[, votes_swapped]}] in order."""
    if not items:
        return []
    sampled = GenParams(max_new_tokens=jcfg.max_new_tokens, temperature=VOTE_TEMPERATURE, top_p=VOTE_TOP_P)
    first = sampled if jcfg.votes > 1 else GenParams(max_new_tokens=jcfg.max_new_tokens)
    texts = [(label_text(s, "fc"), _pred_text(r, mode)) for s, r in items]
    per_order = {}
    for swapped in ([False, True] if jcfg.swap_order else [False]):
        prompts = [render(backend.tokenizer, judge_messages(s, lt, pt, swapped))
                   for (s, _), (lt, pt) in zip(items, texts)]
        votes: list[list[tuple[str | None, str]]] = [[] for _ in items]
        for v in range(jcfg.votes):
            parsed = _ask(backend, prompts, replace(first, seed=seed + v), swapped)
            retry = [i for i, (verdict, _) in enumerate(parsed) if verdict is None]
            if retry:
                again = _ask(backend, [prompts[i] for i in retry], replace(sampled, seed=seed + 1000 + v), swapped)
                for i, p in zip(retry, again):
                    parsed[i] = p
            for i, p in enumerate(parsed):
                votes[i].append(p)
        per_order[swapped] = votes
    out = []
    for i in range(len(items)):
        normal = per_order[False][i]
        outcome = aggregate([v for v, _ in normal], jcfg.consensus)
        rec = {"votes": [v or JUDGE_FAILED for v, _ in normal]}
        if jcfg.swap_order:
            swapped_votes = per_order[True][i]
            rec["votes_swapped"] = [v or JUDGE_FAILED for v, _ in swapped_votes]
            outcome = combine_orders(outcome, aggregate([v for v, _ in swapped_votes], jcfg.consensus))
        else:
            swapped_votes = []
        rec["outcome"] = outcome
        rec["analysis"] = next((a for v, a in normal + swapped_votes if v == outcome),
                               next((a for _, a in normal), ""))
        out.append(rec)
    return out


def build_judge_backend(cfg):
    from core.models import resolve

    ref = cfg.judge.llm
    if ref.backend == "openai":
        return load_backend("openai", ref.model, base_url=ref.base_url or cfg.model.base_url)
    options = {"device": cfg.model.device, "batch_size": cfg.probe.batch_size} if ref.backend == "hf" else {}
    return load_backend(ref.backend, resolve(ref.model).path, **options)


# -- the stage ----------------------------------------------------------------------------------

def relabelled(sample: Sample, response: str, mode: str) -> Sample | None:
    """The sample with the prediction as its label (None when the prediction is malformed or empty)."""
    calls = decode_reply(response, mode)
    if calls is None:
        return None
    if calls:
        label = Label(calls=[Call(name=c.name, arguments=c.arguments) for c in calls])
    else:
        text = toolcalls.strip_think(response)
        if not text:
            return None
        label = Label(text=text)
    meta = {**sample.meta, "original_label": sample.label.model_dump(exclude_none=True)}
    return sample.model_copy(update={"label": label, "source": "relabel", "parent": sample.id, "meta": meta})


def _record(sample: Sample, response: str, mode: str, verdict: str, outcome: str, reason: str, by: str,
            **extra) -> dict:
    rec = {"id": sample.id, "verdict": verdict, "outcome": outcome, "reason": reason, "by": by,
           "votes": [], **extra}
    if verdict == "LABEL_WRONG":
        fixed = relabelled(sample, response, mode)
        if fixed is None:
            rec.update(verdict="BOTH_WRONG", reason=reason + " | the prediction cannot become a label")
        else:
            rec["relabel"] = fixed.model_dump(mode="json", exclude_none=True)
    return rec


@dataclass
class ErrorSeeds:
    """ES of iteration j (reference section 7): PRED_WRONG samples with their label and LABEL_WRONG samples
    relabelled, in judge.jsonl order, each id once."""
    samples: list[Sample]
    reasons: dict[str, str]  # id -> the judge's error analysis (expansion prompts use it)
    pred_wrong: int
    label_wrong: int


def error_seeds(dataset: list[Sample], judge_records: list[dict]) -> ErrorSeeds:
    by_id = {s.id: s for s in dataset}
    es = ErrorSeeds([], {}, 0, 0)
    for r in judge_records:
        if r["id"] in es.reasons:
            continue
        if r.get("verdict") == "PRED_WRONG" and r["id"] in by_id:
            es.samples.append(by_id[r["id"]])
            es.pred_wrong += 1
        elif r.get("verdict") == "LABEL_WRONG" and r.get("relabel"):
            es.samples.append(Sample.model_validate(r["relabel"]))
            es.label_wrong += 1
        else:
            continue
        es.reasons[r["id"]] = r.get("reason", "")
    return es


def read_error_seeds(ctx: StageContext) -> ErrorSeeds:
    """ES from the iteration's dataset.jsonl and judge.jsonl."""
    return error_seeds(load_samples(ctx.iter_dir / "dataset.jsonl"), read_records(ctx.iter_dir / "judge.jsonl"))


def run(ctx: StageContext, dataset: list[Sample] | None = None, probe_records=None, backend=None) -> dict:
    """Judge every mismatched probe sample not yet in judge.jsonl; returns (and marks done with) stats.
    dataset / probe_records: the iteration's dataset.jsonl / probe.jsonl when not given."""
    cfg, t0 = ctx.cfg, time.monotonic()
    if dataset is None:
        dataset = load_samples(ctx.iter_dir / "dataset.jsonl")
    if probe_records is None:
        probe_records = read_records(ctx.iter_dir / "probe.jsonl")
    mode, list_as_set = cfg.model.mode, cfg.train.list_as_set
    probe = probe_records if isinstance(probe_records, dict) else {r["id"]: r for r in probe_records}
    mismatched = [(s, probe[s.id]["response"]) for s in dataset if s.id in probe and not probe[s.id]["mastered"]]
    log = RecordLog(ctx.iter_dir / "judge.jsonl")
    use_llm = backend is not None or cfg.judge.kind == "llm"
    own_backend, undecided = False, []
    try:
        ctx.control.checkpoint()
        for s, resp in mismatched:
            if s.id in log:
                continue
            ruling = rule_verdict(s, resp, mode, list_as_set)
            if ruling.verdict is not None:
                log.add(_record(s, resp, mode, ruling.verdict, ruling.verdict, ruling.reason, "rule"))
            elif use_llm:
                undecided.append((s, resp, ruling))
            else:
                log.add(_record(s, resp, mode, ruling.fallback, UNDECIDED,
                                ruling.reason + f"; no LLM judge: {ruling.fallback}", "rule"))
        total = len(mismatched)
        ctx.progress("judge", total - len(undecided), total)
        if undecided and backend is None:
            backend, own_backend = build_judge_backend(cfg), True
        for start in range(0, len(undecided), LLM_CHUNK):
            ctx.control.checkpoint()
            part = undecided[start:start + LLM_CHUNK]
            results = llm_judge(backend, [(s, r) for s, r, _ in part], cfg.judge, mode, seed=cfg.run.seed)
            for (s, resp, ruling), res in zip(part, results):
                outcome = res["outcome"]
                verdict = outcome if outcome in VERDICTS or outcome == JUDGE_FAILED else ruling.fallback
                reason = res["analysis"] or ruling.reason
                if outcome == JUDGE_FAILED:
                    reason = f"no parsable verdict after a retry; reply began: {res['analysis'][:200]!r}"
                elif verdict != outcome:
                    reason = f"{outcome} -> {verdict} (rule fallback). {reason}"
                extra = {k: res[k] for k in ("votes", "votes_swapped") if k in res}
                log.add(_record(s, resp, mode, verdict, outcome, reason, "llm", **extra))
            ctx.progress("judge", total - len(undecided) + start + len(part), total)
    finally:
        log.close()
        if own_backend:
            backend.close()
    stats = summarize([log.records[s.id] for s, _ in mismatched if s.id in log.records])
    stats.update(mismatched=len(mismatched), wall_s=round(time.monotonic() - t0, 3))
    mark_done(ctx.iter_dir, "judge", stats)
    return stats


def summarize(records: list[dict]) -> dict:
    verdicts = Counter(r["verdict"] for r in records)
    return {
        "judged": len(records),
        "verdicts": {v: verdicts.get(v, 0) for v in (*VERDICTS, JUDGE_FAILED)},
        "outcomes": dict(Counter(r.get("outcome", r["verdict"]) for r in records)),
        "by": dict(Counter(r.get("by", "rule") for r in records)),
        "no_consensus": sum(1 for r in records if r.get("outcome") == NO_CONSENSUS),
        "position_inconsistent": sum(1 for r in records if r.get("outcome") == POSITION_INCONSISTENT),
        "judge_failed": verdicts.get(JUDGE_FAILED, 0),
        "label_corrections": verdicts.get("LABEL_WRONG", 0),
        "error_seeds": verdicts.get("PRED_WRONG", 0) + verdicts.get("LABEL_WRONG", 0),
    }
