"""ACEBench evaluation: generate with any backend, score with the compat and strict scorers, store results.

    run_acebench(AceConfig(...), backend)   evaluate a model (resumes from its records.jsonl)

Normal and special entries are single prompts generated in batches; agent entries are rollouts advanced
together, one model (or simulator) turn per round. Every finished sample is appended to records.jsonl
at once, and the eval id is derived from the configuration, so rerunning resumes (evals/results.py).
"""
from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

from tqdm import tqdm

from core.backends import GenParams
from core.records import RecordLog, write_json_atomic
from evals.acebench import data, fetch, metrics, prompts
from evals.acebench.agent import AgentSession
from evals.leaderboard_ast import other_decoding
from evals.acebench.data import Entry
from evals.acebench.gen import Generator
from evals.acebench.score import score_agent, score_text
from evals.results import Progress, eval_dir, eval_id, git_revision

TOO_LONG = "inference_error:prompt_too_long"


@dataclass
class AceConfig:
    model: str
    backend: str = "hf"
    adapter: str | None = None
    mode: str = "auto"  # resolved to prompt | fc before the id is computed
    categories: list[str] = field(default_factory=lambda: list(data.CATEGORIES))
    per_category: int | None = None
    ids: list[str] | None = None
    seed: int = 0
    max_new_tokens: int = 512
    temperature: float = 0.0
    max_prompt_tokens: int | None = None
    strict_arg_set: bool = False  # strict scorer: the model's argument names must equal the ground truth's
    decoding: str = "official"  # compat verdict: official (leaderboard) | lenient decoding; both are scored
    max_dialog_turns: int = 40  # agent rollouts: messages per task
    user_model: str | None = None  # agent_multi_turn simulator; None = the evaluated model itself
    user_backend: str | None = None  # hf | vllm | openai | openai-chat
    user_base_url: str | None = None
    user_max_new_tokens: int = 256
    data_dir: str | None = None  # not part of the identity: the data is checked against checksums.json

    def identity(self) -> dict:
        ident = asdict(self)
        ident.pop("data_dir")
        ident["data_commit"] = fetch.commit()
        return ident


def run_acebench(cfg: AceConfig, backend, store=None, progress: bool = True,
                 on_progress: Callable[..., None] | None = None,
                 checkpoint: Callable[[], None] | None = None, user_backend=None) -> dict:
    """Evaluate ``backend`` on the configured ACEBench selection; returns (and stores) the summary.

    ``on_progress(done, total, tokens)`` after every record (tokens: generated so far); ``checkpoint()`` between records (the loop's
    pause/stop control: it may block, or raise to stop; records already written are kept).
    ``user_backend``: a ready simulator generator for agent_multi_turn (default: built from cfg)."""
    cfg.mode = prompts.resolve_mode(cfg.mode, backend.tokenizer)
    root = fetch.resolve_data_dir(cfg.data_dir)
    entries = data.select(root, cfg.categories, cfg.per_category, cfg.ids, cfg.seed)
    eid = eval_id("acebench", cfg.identity())
    d = eval_dir(eid)
    write_json_atomic(d / "config.json", cfg.identity())
    log = RecordLog(d / "records.jsonl")
    todo = [e for e in entries if e.id not in log]
    started, started_at = time.time(), datetime.now(timezone.utc).isoformat(timespec="seconds")
    gen = Generator(backend, GenParams(max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature,
                                       seed=cfg.seed), cfg.adapter, cfg.max_prompt_tokens)
    sim, sim_engine, sim_desc = None, None, None
    if any(e.category == "agent_multi_turn" for e in entries):
        from evals.acebench import user_sim

        if user_backend is not None:
            sim, sim_desc = user_backend, {"model": cfg.user_model, "backend": cfg.user_backend,
                                           "base_url": cfg.user_base_url, "same_as_agent": False}
        else:
            sim, sim_engine, sim_desc = user_sim.build(cfg, backend)
    bar = Progress(tqdm(total=len(entries), initial=len(entries) - len(todo), desc=f"acebench {eid}",
                         unit="sample", disable=not progress, file=sys.stderr),
                    len(entries), len(entries) - len(todo), on_progress, checkpoint, tokens=lambda: gen.tokens)
    try:
        _run_single([e for e in todo if e.kind != "agent"], gen, cfg, log, bar)
        _run_agents([e for e in todo if e.kind == "agent"], gen, sim, sim_desc, cfg, log, bar)
    finally:
        bar.close()
        log.close()
        if sim_engine is not None:
            sim_engine.close()
    summary = summarize(eid, cfg.identity(), entries, log.records, started_at)
    summary.update(wall_s=round(time.time() - started, 2), generated_tokens=gen.tokens,
                   tokens_per_s=round(gen.tokens / gen.seconds, 2) if gen.seconds else None,
                   resumed=len(entries) - len(todo), records=str(d / "records.jsonl"), data_dir=str(root))
    if sim_desc is not None:
        summary["simulator"] = sim_desc
    write_json_atomic(d / "summary.json", summary)
    if store is not None:
        store.add_eval(summary)
    return summary


def _record(e: Entry, raw, res: dict) -> dict:
    return {"id": e.id, "category": e.category, "raw": raw, **res}


def _too_long(limit: int, where: str = "") -> dict:
    verdict = {"valid": False, "error_type": TOO_LONG, "error": f"{where}prompt longer than {limit} tokens"}
    return {**verdict, "decoded": None, "strict": dict(verdict)}


def _run_single(entries: list[Entry], gen: Generator, cfg: AceConfig, log: RecordLog, bar) -> None:
    chunk = max(1, getattr(gen.backend, "batch_size", 8)) * 4
    for i in range(0, len(entries), chunk):
        batch = entries[i:i + chunk]
        convs = [(prompts.messages(e, cfg.mode), prompts.as_tools(e.functions) if cfg.mode == "fc" else None)
                 for e in batch]
        for e, text in zip(batch, gen(convs)):
            res = _too_long(gen.limit) if text is None else score_text(e, text, cfg.mode, cfg.strict_arg_set,
                                                                       cfg.decoding)
            log.add(_record(e, text, res))
            bar.update(1)


def _run_agents(entries: list[Entry], gen: Generator, sim, sim_desc, cfg: AceConfig, log: RecordLog,
                bar) -> None:
    lanes = max(1, getattr(gen.backend, "batch_size", 8))
    pending = list(entries)
    active: list[AgentSession] = []
    while pending or active:
        while pending and len(active) < lanes:
            active.append(AgentSession(pending.pop(0), cfg.mode, cfg.max_dialog_turns))
        for who, generate in (("agent", gen), ("user", sim)):
            group = [s for s in active if s.needs == who]
            if not group:
                continue
            replies = generate([s.agent_prompt() if who == "agent" else s.user_prompt() for s in group])
            for s, text in zip(group, replies):
                if text is None:
                    s.stop(f"{who} prompt longer than {getattr(generate, 'limit', '?')} tokens")
                elif who == "agent":
                    s.feed_agent(text)
                else:
                    s.feed_user(text)
        still = []
        for s in active:
            if s.needs is None:
                out = s.result()
                rec = {**out, **score_agent(s.entry, out["state"], out["process"])}
                if sim_desc is not None and s.multi_turn:
                    rec["simulator"] = sim_desc
                log.add(_record(s.entry, rec.pop("raw"), rec))
                bar.update(1)
            else:
                still.append(s)
        active = still


def summarize(eid: str, config: dict, entries: list[Entry], records: dict[str, dict],
              started_at: str | None = None) -> dict:
    per_cat = metrics.per_category(entries, records, "compat")
    per_strict = metrics.per_category(entries, records, "strict")
    decoding = config.get("decoding", "official")
    other = other_decoding(decoding)
    per_other = metrics.per_category(entries, records, other)  # the same replies decoded the other way
    for cat, c in per_cat.items():
        s = per_strict[cat]
        c["strict_correct"], c["strict_accuracy"] = s["correct"], s["accuracy"]
        c[f"{other}_correct"], c[f"{other}_accuracy"] = per_other[cat]["correct"], per_other[cat]["accuracy"]
        if "process_accuracy" in s:
            c["strict_process_accuracy"] = s["process_accuracy"]
    errors: dict[str, int] = {}
    for e in entries:
        et = (records.get(e.id) or {}).get("error_type")
        if et:
            errors[et] = errors.get(et, 0) + 1
    process = {c: per_cat[c]["process_accuracy"] for c in ("agent_multi_turn", "agent_multi_step",
                                                          *data.MULTI_TURN) if c in per_cat}
    return {
        "eval_id": eid, "benchmark": "acebench",
        "started_at": started_at or datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": config.get("model"), "backend": config.get("backend"), "adapter": config.get("adapter"),
        "mode": config.get("mode"), "config": config,
        "categories": {k: v["total"] for k, v in per_cat.items()},
        "per_category": per_cat,
        "scores": metrics.summary_scores({k: v["accuracy"] for k, v in per_cat.items()}),
        "scores_strict": metrics.summary_scores({k: v["strict_accuracy"] for k, v in per_cat.items()}),
        "decoding": decoding,
        f"scores_{other}": metrics.summary_scores({k: v[f"{other}_accuracy"] for k, v in per_cat.items()}),
        "process_accuracy": process,
        "error_types": errors,
        "complete": all(e.id in records for e in entries),
        "think_stripped": sum(bool((records.get(e.id) or {}).get("think_stripped")) for e in entries),
        "git_revision": git_revision(),
    }
