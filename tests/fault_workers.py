"""Stand-ins for core.worker.run_stage, for engine tests on a machine without a model: spawned by the
real Engine in place of the stage worker, they write what a finished stage leaves (its done marker) and
report it as the real worker does."""
from __future__ import annotations

import json
from pathlib import Path

from core.stages.base import mark_done


def stage_stand_in(cfg_text, run_dir, stage, iteration, queue, pause, stop) -> None:
    """A stage that finishes at once. The eval stage's stats carry the summary the test left in
    run_dir/summary-for-stand-in.json (a real one, scored from a responses file)."""
    run_dir = Path(run_dir)
    d = run_dir if stage == "seed" else run_dir / f"iter-{iteration}"
    d.mkdir(parents=True, exist_ok=True)
    stats = {"stand_in": True}
    if stage == "eval":
        summary = json.loads((run_dir / "summary-for-stand-in.json").read_text())
        summary = {**summary, "eval_id": f"{summary['eval_id']}-it{iteration}", "iteration": iteration}
        stats = {"iteration": iteration, "run_dir": str(run_dir), "summaries": {"bfcl": summary}, "skipped": {}}
    mark_done(d, stage, stats)
    queue.put(("done", stats))
