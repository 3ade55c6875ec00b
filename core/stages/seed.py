"""Seeding: build the run's seed pool and D_1 (method reference section 7: the first `budget` samples).

The pool (run_dir/pool.jsonl) comes from cfg.seeds.source through rule validation, the contamination
guard (every registered benchmark's functions and queries, core.seeds.contamination.guard_for) and
deduplication; D_1 is written to run_dir/iter-1/dataset.jsonl. A benchmark the guard could not cover
(its data is not here) is named in the stats (`guard`) and in a warning.
"""
from __future__ import annotations

from core.schema import load_samples, write_samples
from core.stages.base import StageContext, is_done, mark_done


def run(ctx: StageContext) -> dict:
    from core.seeds.pool import build_pool

    if (done := is_done(ctx.run_dir, "seed")) is not None:
        return done
    pool_path = ctx.run_dir / "pool.jsonl"
    stats = build_pool(ctx.cfg, pool_path)
    for name, state in stats.get("guard", {}).items():
        if state != "guarded":
            ctx.emit("event", {"event": "warning", "stage": "seed", "iteration": 1, "benchmark": name,
                               "message": f"contamination guard, {name}: {state}"})
    d1 = load_samples(pool_path)[:ctx.cfg.assemble.budget]
    it1 = ctx.run_dir / "iter-1"
    it1.mkdir(parents=True, exist_ok=True)
    write_samples(it1 / "dataset.jsonl", d1)
    stats = {**stats, "d1": len(d1)}
    mark_done(ctx.run_dir, "seed", stats)
    return stats
