"""Next-dataset assembly (method reference sections 7 and 12 #5):

    D_{j+1} = ES  U  EE  U  HPPL  U  fresh        under a fixed budget (cfg.assemble.budget)

Fill order, each step taking at most what is left of the budget:
  1. ES, all of it: PRED_WRONG samples with their label, LABEL_WRONG samples relabelled (judge.jsonl
     `verdict`). If ES alone exceeds the budget (or cfg.assemble.max_error_seeds, when set: small
     budgets use it to leave room for the expansions) it is subsampled uniformly at random to it.
  2. fresh seeds: cfg.assemble.fresh_for(j+1) drawn uniformly from the unused pool (never trained on).
  3. EE: expansions grouped by `parent` (their seed), at most cfg.expand.k per seed (uniform within a
     seed). If they still exceed what is left, per-seed uniform trimming: the largest per-seed cap c
     with sum(min(n_s, c)) <= left, the remainder given +1 to randomly chosen seeds that had more,
     then a uniform subsample within each seed.
  4. HPPL fills the rest: the highest-PPL mastered samples (probe.high_ppl, cfg.probe.hppl_rule).
     Mastered = probe `mastered` plus judge BOTH_CORRECT (reference 12 #1), label kept.
  5. Still short: random mastered samples not taken yet (these only exist when some have no PPL or
     the rule is "none"), then more fresh seeds from the pool. Whatever is still missing is reported
     as `shortfall` (the set is then smaller than the budget).
  6. cfg.assemble.keep_text_share (off in the paper): when the set holds fewer text labels (refuse /
     clarify) than seeds.text_fraction of it, text samples left out above replace call samples. Text
     in: mastered samples not taken (HPPL order: retention), then expansions, then unused pool seeds;
     with cfg.assemble.text_fill = "fresh", unused pool seeds first (new refusals, not repeats of
     D_j's), then expansions, then mastered ones; calls out:
     fresh seeds, top-up, HPPL, then expansions, never error seeds. An error-driven set otherwise
     follows the failures, which are mostly calls once refusals are mastered, and the policy
     forgets to refuse (cpu-demo: 38 refusals in D_1, 26 in D_2, BFCL irrelevance 27 -> 10/50).
Static mode (cfg.assemble.static, the paper's static baseline): D_{j+1} = `budget` fresh seeds; if
the unused pool runs out, the rest is re-drawn from D_j (the static run only ever trains on seeds).

Every sample is tagged meta["set"] = ES | EE | HPPL | fresh | topup. Samples keep group order
(ES, fresh, EE, HPPL, top-up); the trainer shuffles. Ids are unique (a repeated id is dropped and
counted in `duplicates_dropped`).
"""
from __future__ import annotations

import json
import random
from pathlib import Path

from pydantic import ValidationError

from core.schema import Sample, load_samples, write_samples
from core.stages.base import StageContext, mark_done
from core.stages.judge import error_seeds
from core.stages.probe import high_ppl
from core.records import read_records, write_json_atomic

TABLE = ("error_seeds", "expansions", "high_ppl", "fresh_seeds", "topped_up")


def schedule(budget: int, es: int, fresh: int, ee: int, hppl: int, mastered_other: int = 0,
             pool: int | None = None) -> dict:
    """The counts of each part, given what is available (pure arithmetic, the fill order above).

    es / ee / hppl: available ES, EE (already capped at k per seed), rankable mastered samples;
    fresh: the scheduled fresh-seed count; mastered_other: mastered samples outside the HPPL ranking;
    pool: unused pool size (None = unlimited).
    """
    pool = fresh + budget if pool is None else pool
    left = budget
    counts = {}
    for key, avail in (("error_seeds", es), ("fresh_seeds", min(fresh, pool)), ("expansions", ee),
                       ("high_ppl", hppl), ("topped_up_mastered", mastered_other)):
        counts[key] = min(avail, left)
        left -= counts[key]
    counts["topped_up_fresh"] = min(pool - counts["fresh_seeds"], left)
    left -= counts["topped_up_fresh"]
    counts["topped_up"] = counts["topped_up_mastered"] + counts["topped_up_fresh"]
    counts["shortfall"] = left
    return counts


def ee_quota(counts: dict[str, int], k: int, room: int, rng: random.Random) -> dict[str, int]:
    """How many expansions to keep per seed: at most k each, trimmed per seed to fit `room`."""
    capped = {p: min(n, k) for p, n in counts.items()}
    if sum(capped.values()) <= room:
        return capped
    lo, hi = 0, max(capped.values())  # largest c with sum(min(n, c)) <= room
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if sum(min(n, mid) for n in capped.values()) <= room:
            lo = mid
        else:
            hi = mid - 1
    quota = {p: min(n, lo) for p, n in capped.items()}
    more = sorted(p for p, n in capped.items() if n > lo)
    for p in rng.sample(more, room - sum(quota.values())):
        quota[p] += 1
    return quota


def _pick(items: list, n: int, rng: random.Random) -> list:
    """A uniform random subset of size min(n, len), in the original order."""
    if n >= len(items):
        return list(items)
    if n <= 0:
        return []
    keep = sorted(rng.sample(range(len(items)), n))
    return [items[i] for i in keep]


def keep_text_share(parts: dict[str, list[Sample]], share: float, sources: dict[str, list[Sample]],
                    rng: random.Random) -> dict:
    """Rebalance `parts` in place to at least `share` text labels (fill rule 6): returns the counts.

    sources: candidate samples per part they join ("HPPL", "EE", "fresh"), in that order of use, each
    taken from its front (the caller orders them); non-text samples and those in `parts` are skipped."""
    total = sum(len(v) for v in parts.values())
    have = sum(s.label.is_text for v in parts.values() for s in v)
    need = max(0, round(share * total) - have)
    taken = {s.id for v in parts.values() for s in v}
    added: dict[str, int] = {}
    removable = [(p, i) for p in ("fresh", "topup_fresh", "topup_mastered", "HPPL", "EE")
                 for i in rng.sample(range(len(parts.get(p, []))), len(parts.get(p, [])))
                 if not parts[p][i].label.is_text]
    drop: dict[str, set[int]] = {}
    for part, cands in sources.items():
        cands = [s for s in cands if s.label.is_text and s.id not in taken]
        for s in cands[:min(need, len(removable))]:
            p, i = removable.pop(0)
            drop.setdefault(p, set()).add(i)
            parts.setdefault(part, []).append(s)
            taken.add(s.id)
            added[part] = added.get(part, 0) + 1
            need -= 1
    for p, idx in drop.items():
        parts[p] = [s for i, s in enumerate(parts[p]) if i not in idx]
    return {"text_share_target": share, "text_before": have, "text_added": added,
            "calls_removed": {p: len(idx) for p, idx in drop.items()}, "text_shortfall": need}


def assemble(cfg, iteration_next: int, pool_unused: list[Sample], dataset_j: list[Sample],
             probe_records: list[dict], judge_records: list[dict], expansions: list[Sample],
             rng: random.Random) -> tuple[list[Sample], dict]:
    """(D_{j+1}, composition) for iteration `iteration_next` = j + 1."""
    a, budget = cfg.assemble, cfg.assemble.budget
    in_d = {s.id for s in dataset_j}
    pool = [s for s in pool_unused if s.id not in in_d]
    parts: dict[str, list[Sample]] = {}
    extra: dict = {}
    if a.static:
        parts["fresh"] = _pick(pool, budget, rng)
        parts["topup_reused"] = _pick(dataset_j, budget - len(parts["fresh"]), rng)
    else:
        found = error_seeds(dataset_j, judge_records)
        es, pw, lw = found.samples, found.pred_wrong, found.label_wrong
        es_ids = {s.id for s in es}
        groups: dict[str, list[Sample]] = {}
        for s in expansions:
            groups.setdefault(s.parent or s.id, []).append(s)
        k = cfg.expand.k
        done = {r["id"] for r in probe_records if r.get("mastered")}
        done |= {r["id"] for r in judge_records if r.get("verdict") == "BOTH_CORRECT"}
        mastered = [s.id for s in dataset_j if s.id in done and s.id not in es_ids]
        ranked = high_ppl(probe_records, mastered, len(mastered), rule=cfg.probe.hppl_rule)
        es_avail = len(es) if a.max_error_seeds is None else min(len(es), a.max_error_seeds)
        counts = schedule(budget, es_avail, a.fresh_for(iteration_next),
                          sum(min(len(g), k) for g in groups.values()), len(ranked),
                          len(mastered) - len(ranked), len(pool))
        parts["ES"] = _pick(es, counts["error_seeds"], rng)
        draw = rng.sample(range(len(pool)), counts["fresh_seeds"] + counts["topped_up_fresh"])
        parts["fresh"] = [pool[i] for i in sorted(draw[:counts["fresh_seeds"]])]
        quota = ee_quota({p: len(g) for p, g in groups.items()}, k, counts["expansions"], rng)
        parts["EE"] = [s for p in groups for s in _pick(groups[p], quota[p], rng)]
        by_id = {s.id: s for s in dataset_j}
        hp = ranked[:counts["high_ppl"]]
        parts["HPPL"] = [by_id[i] for i in hp]
        hp_set = set(hp)
        rest = [by_id[i] for i in mastered if i not in hp_set]
        parts["topup_mastered"] = _pick(rest, counts["topped_up_mastered"], rng)
        parts["topup_fresh"] = [pool[i] for i in sorted(draw[counts["fresh_seeds"]:])]
        if a.keep_text_share:
            sources = {"HPPL": [by_id[i] for i in ranked] + rest,
                       "EE": rng.sample(expansions, len(expansions)),
                       "fresh": rng.sample(pool, len(pool))}
            if a.text_fill == "fresh":
                sources = {key: sources[key] for key in ("fresh", "EE", "HPPL")}
            extra["text_share"] = keep_text_share(parts, cfg.seeds.text_fraction, sources, rng)
        extra |= {"error_seeds_available": len(es), "error_seeds_pred_wrong_available": pw,
                 "error_seeds_label_wrong_available": lw,
                 "error_seeds_label_wrong": sum(1 for s in parts["ES"] if s.source == "relabel"),
                 "expansion_candidates": len(expansions), "expansion_seeds": len(groups),
                 "mastered_available": len(mastered), "fresh_scheduled": a.fresh_for(iteration_next),
                 "expand_k": k}
    samples, seen, kept, dups = [], set(), {}, 0
    for part in ("ES", "fresh", "EE", "HPPL", "topup_mastered", "topup_fresh", "topup_reused"):
        tag = "topup" if part.startswith("topup") else part
        kept[part] = 0
        for s in parts.get(part, []):
            if s.id in seen:
                dups += 1
                continue
            seen.add(s.id)
            kept[part] += 1
            samples.append(s.model_copy(update={"meta": {**s.meta, "set": tag}}))
    total = len(samples)
    table = {"error_seeds": kept["ES"], "expansions": kept["EE"], "high_ppl": kept["HPPL"],
             "fresh_seeds": kept["fresh"],
             "topped_up": kept["topup_mastered"] + kept["topup_fresh"] + kept["topup_reused"]}
    comp = {"iteration": iteration_next, "budget": budget, "total": total, **table,
            "topped_up_mastered": kept["topup_mastered"], "topped_up_fresh": kept["topup_fresh"],
            "topped_up_reused": kept["topup_reused"], "shortfall": budget - total,
            "duplicates_dropped": dups, "static": a.static, "hppl_rule": cfg.probe.hppl_rule,
            "pool_unused": len(pool), **extra,
            "pct": {key: round(100.0 * n / total, 2) if total else 0.0 for key, n in table.items()}}
    return samples, comp


# -- files --------------------------------------------------------------------------------------

def unused_pool(run_dir: Path, iteration: int) -> list[Sample]:
    """run_dir/pool.jsonl minus every sample id of iter-1 .. iter-j datasets."""
    path = run_dir / "pool.jsonl"
    if not path.exists():
        return []
    used: set[str] = set()
    for i in range(1, iteration + 1):
        d = run_dir / f"iter-{i}" / "dataset.jsonl"
        if d.exists():
            used |= {s.id for s in load_samples(d)}
    return [s for s in load_samples(path) if s.id not in used]


def load_expansions(path: Path) -> tuple[list[Sample], int]:
    """expand.jsonl as Samples; lines that are not a Sample are skipped and counted."""
    if not path.exists():
        return [], 0
    out, bad = [], 0
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            out.append(Sample.model_validate(json.loads(line)))
        except (json.JSONDecodeError, ValidationError):
            bad += 1
    return out, bad


def run(ctx: StageContext, dataset: list[Sample] | None = None, pool_unused: list[Sample] | None = None,
        probe_records: list[dict] | None = None, judge_records: list[dict] | None = None,
        expansions: list[Sample] | None = None, rng: random.Random | None = None) -> dict:
    """Assemble D_{j+1} from iteration j's files (or the arguments given) and write it atomically to
    run_dir/iter-{j+1}/dataset.jsonl, with iter_dir/composition.json; returns the composition."""
    j, d = ctx.iteration, ctx.iter_dir
    ctx.control.checkpoint()
    dataset = load_samples(d / "dataset.jsonl") if dataset is None else dataset
    pool_unused = unused_pool(ctx.run_dir, j) if pool_unused is None else pool_unused
    probe_records = read_records(d / "probe.jsonl") if probe_records is None else probe_records
    judge_records = read_records(d / "judge.jsonl") if judge_records is None else judge_records
    unreadable = 0
    if expansions is None:
        expansions, unreadable = load_expansions(d / "expand.jsonl")
    rng = rng or random.Random(f"{ctx.cfg.run.seed}/assemble/{j}")
    samples, comp = assemble(ctx.cfg, j + 1, pool_unused, dataset, probe_records, judge_records,
                             expansions, rng)
    if unreadable:
        comp["expansions_unreadable"] = unreadable
    out = ctx.run_dir / f"iter-{j + 1}"
    out.mkdir(parents=True, exist_ok=True)
    write_samples(out / "dataset.jsonl", samples)
    write_json_atomic(d / "composition.json", comp)
    ctx.progress("assemble", 1, 1)
    ctx.emit("metrics", {"stage": "assemble", "iteration": j, **{key: comp[key] for key in ("total", *TABLE)}})
    mark_done(d, "assemble", comp)
    return comp
