"""BFCL-v3 evaluation: generate with any backend, score with bfcl-eval's checkers, store the results.

    run_eval(EvalConfig(...), backend)   evaluate a model (resumes from its JSONL)
    score_file(path, ...)                 score pre-generated responses, no model loaded

Single-turn entries are generated in batches; multi-turn entries advance as a batch of sessions, one
model step each round. Every finished sample is appended to records.jsonl at once, so an interrupted
run loses at most the batch in flight.
"""
from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Callable
from datetime import datetime, timezone

from tqdm import tqdm

from core import prompt_format
from core.backends import GenParams
from core.prompting import render
from core.records import RecordLog, write_json_atomic
from evals import bfcl_data, bfcl_prompt, bfcl_score
from evals.bfcl_data import Entry
from evals.bfcl_metrics import v3_scores
from evals.results import Progress, eval_dir, eval_id, git_revision


@dataclass
class EvalConfig:
    model: str
    backend: str = "hf"
    adapter: str | None = None
    mode: str = "auto"  # resolved to prompt | fc before the id is computed
    categories: list[str] = field(default_factory=lambda: list(bfcl_data.CATEGORIES))
    per_category: int | None = None
    ids: list[str] | None = None
    seed: int = 0
    max_new_tokens: int = 256
    temperature: float = 0.0
    max_prompt_tokens: int | None = None  # default: the model's context minus max_new_tokens
    decoding: str = "official"  # official (bfcl-eval's own decoding) | lenient (recovering); both are scored

    def identity(self) -> dict:
        return asdict(self)


def run_eval(cfg: EvalConfig, backend, store=None, progress: bool = True,
             on_progress: Callable[..., None] | None = None,
             checkpoint: Callable[[], None] | None = None) -> dict:
    """`on_progress(done, total, tokens)` after every record (tokens: generated so far); `checkpoint()` between records (the loop's
    pause/stop control: it may block, or raise to stop; records already written are kept)."""
    cfg.mode = bfcl_prompt.resolve_mode(cfg.mode, backend.tokenizer)
    entries = bfcl_data.select(cfg.categories, cfg.per_category, cfg.ids, cfg.seed)
    eid = eval_id("bfcl", cfg.identity())
    d = eval_dir(eid)
    write_json_atomic(d / "config.json", cfg.identity())
    log = RecordLog(d / "records.jsonl")
    todo = [e for e in entries if e.id not in log]
    started = time.time()
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    gen = _Generator(backend, cfg)
    bar = Progress(tqdm(total=len(entries), initial=len(entries) - len(todo), desc=f"bfcl {eid}",
                         unit="sample", disable=not progress, file=sys.stderr),
                    len(entries), len(entries) - len(todo), on_progress, checkpoint, tokens=lambda: gen.tokens)
    try:
        _run_single([e for e in todo if e.kind != "multi_turn"], gen, cfg, log, bar)
        _run_multi([e for e in todo if e.kind == "multi_turn"], gen, cfg, log, bar)
    finally:
        bar.close()
        log.close()
    summary = summarize(eid, cfg.identity(), entries, log.records, started_at)
    summary.update(wall_s=round(time.time() - started, 2), generated_tokens=gen.tokens,
                   tokens_per_s=round(gen.tokens / gen.seconds, 2) if gen.seconds else None,
                   resumed=len(entries) - len(todo), records=str(d / "records.jsonl"))
    write_json_atomic(d / "summary.json", summary)
    if store is not None:
        store.add_eval(summary)
    return summary


class _Generator:
    """Renders chat messages through the model's template and generates, timing the model calls."""

    def __init__(self, backend, cfg: EvalConfig):
        self.backend, self.cfg = backend, cfg
        self.params = GenParams(max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature,
                                seed=cfg.seed)
        self.tokens, self.seconds = 0, 0.0
        self.limit = _context_limit(backend) - cfg.max_new_tokens
        if cfg.max_prompt_tokens is not None:
            self.limit = min(self.limit, cfg.max_prompt_tokens)

    def __call__(self, conversations: list[tuple[list[dict], list | None]]) -> list[str | None]:
        """One reply per conversation; None where the prompt does not fit the model's context."""
        prompts = [render(self.backend.tokenizer, msgs, tools) for msgs, tools in conversations]
        fits = [len(self.backend.tokenizer(p, add_special_tokens=False)["input_ids"]) <= self.limit
                for p in prompts]
        todo = [p for p, ok in zip(prompts, fits) if ok]
        t = time.perf_counter()
        outs = iter(self.backend.generate(todo, self.params, adapter=self.cfg.adapter) if todo else [])
        self.seconds += time.perf_counter() - t
        texts: list[str | None] = []
        for ok in fits:
            if ok:
                g = next(outs)
                self.tokens += g.num_tokens
                texts.append(g.text)
            else:
                texts.append(None)
        return texts


def _context_limit(backend) -> int:
    model = getattr(backend, "model_obj", None)
    n = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    if n is None:
        n = getattr(backend, "max_context", None) or getattr(backend.tokenizer, "model_max_length", 0)
    return int(n) if n and n < 10**7 else 32768


TOO_LONG = "inference_error:prompt_too_long"


def _run_single(entries: list[Entry], gen: _Generator, cfg: EvalConfig, log: RecordLog, bar) -> None:
    chunk = max(1, getattr(gen.backend, "batch_size", 8)) * 4
    for i in range(0, len(entries), chunk):
        batch = entries[i:i + chunk]
        convs = [(prompt_format.first_messages(e.question[0], e.functions, cfg.mode),
                  prompt_format.as_tools(e.functions) if cfg.mode == "fc" and e.functions else None)
                 for e in batch]
        for e, text in zip(batch, gen(convs)):
            if text is None:
                res = {"valid": False, "error_type": TOO_LONG, "error": f"prompt longer than {gen.limit} tokens",
                       "decoded": None}
            else:
                res = bfcl_score.score_single(e, text, cfg.mode, cfg.decoding)
            log.add(_record(e, text, res))
            bar.update(1)


def _run_multi(entries: list[Entry], gen: _Generator, cfg: EvalConfig, log: RecordLog, bar) -> None:
    from evals.bfcl_multiturn import Session

    lanes = max(1, getattr(gen.backend, "batch_size", 8))
    pending = list(entries)
    active: list[Session] = []
    while pending or active:
        while pending and len(active) < lanes:
            active.append(Session(pending.pop(0), cfg.mode, cfg.decoding))
        replies = gen([s.prompt() for s in active])
        still = []
        for s, text in zip(active, replies):
            if text is None:
                log.add(_record(s.entry, s.steps, {"valid": False, "error_type": TOO_LONG,
                                                   "error": f"turn {s.turn}: prompt longer than {gen.limit} tokens",
                                                   "decoded": None}))
                bar.update(1)
                continue
            s.feed(text)
            if s.done:
                log.add(_record(s.entry, s.steps, bfcl_score.score_multi_turn(s.entry, s.steps, cfg.mode,
                                                                            cfg.decoding)))
                bar.update(1)
            else:
                still.append(s)
        active = still


def _record(e: Entry, raw, res: dict) -> dict:
    return {"id": e.id, "category": e.category, "raw": raw, **res}


def summarize(eid: str, config: dict, entries: list[Entry], records: dict[str, dict],
              started_at: str | None = None) -> dict:
    per_cat: dict[str, dict] = {}
    for e in entries:
        c = per_cat.setdefault(e.category, {"correct": 0, "total": 0, "error_types": {},
                                            "by_decoding": dict.fromkeys(bfcl_prompt.DECODINGS, 0)})
        rec = records.get(e.id, {})
        c["total"] += 1
        c["correct"] += bool(rec.get("valid"))
        et = rec.get("error_type")
        if et and not rec.get("valid"):  # bfcl-eval's error_type string of a failing record, as recorded
            c["error_types"][et] = c["error_types"].get(et, 0) + 1
        # the same reply under each decoding; a record without one (prompt too long, not yet scored,
        # written before both were scored) counts its verdict under both
        for name, ok in (rec.get("by_decoding") or dict.fromkeys(bfcl_prompt.DECODINGS, rec.get("valid"))).items():
            c["by_decoding"][name] += bool(ok)
    for c in per_cat.values():
        c["accuracy"] = c["correct"] / c["total"] if c["total"] else 0.0
    scores = v3_scores({k: v["accuracy"] for k, v in per_cat.items()}, bfcl_data.full_sizes())
    decoding = config.get("decoding", "official")
    by_decoding = {}
    for name in bfcl_prompt.DECODINGS:
        acc = {k: c["by_decoding"][name] / c["total"] for k, c in per_cat.items()}
        by_decoding[name] = {"correct": sum(c["by_decoding"][name] for c in per_cat.values()),
                             "scores": v3_scores(acc, bfcl_data.full_sizes())}
    errors: dict[str, int] = {}
    for e in entries:
        et = records.get(e.id, {}).get("error_type")
        if et:
            errors[et] = errors.get(et, 0) + 1
    return {
        "eval_id": eid, "benchmark": "bfcl-v3",
        "started_at": started_at or datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": config.get("model"), "backend": config.get("backend"), "adapter": config.get("adapter"),
        "mode": config.get("mode"), "config": config,
        "categories": {k: v["total"] for k, v in per_cat.items()},
        "per_category": per_cat, "scores": scores, "error_types": errors,
        "decoding": decoding, "by_decoding": by_decoding,
        "complete": all(e.id in records for e in entries),
        "git_revision": git_revision(),
    }
