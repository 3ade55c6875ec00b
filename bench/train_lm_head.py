"""SFT step cost on CPU with and without scoring only the labelled positions, side by side in one run.

trl's fused LM head scores every position's logits off Triton devices. `core.stages.train.compact_lm_head`
makes it score only the positions that carry a label (the completion), which gives the same loss. This
runs the cpu-demo's SFT (prompt mode, batch 8 = 2 x 4) on the same procedural samples twice, A/B/A/B,
and prints seconds per optimizer step of each, their ratio and the two final losses.

    .venv/bin/python bench/train_lm_head.py [--steps 2] [--rounds 2]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
_home = Path(os.environ.get("LOOPTOOL_HOME") or Path.home() / ".cache" / "looptool")
os.environ.setdefault("LOOPTOOL_MODELS", str(_home / "models"))
os.environ["LOOPTOOL_HOME"] = tempfile.mkdtemp(prefix="looptool-bench-")


def one_run(compact: bool, samples, steps: int, model_path: str) -> tuple[float, float]:
    from core import config as config_mod
    from core.stages import train
    from core.stages.base import StageContext

    cfg = config_mod.load("cpu-demo")
    cfg.train.methods = ["sft"]
    cfg.train.epochs = 1
    train.COMPACT_LM_HEAD = compact
    run_dir = Path(tempfile.mkdtemp(prefix="lmhead-"))
    ctx = StageContext(cfg=cfg, run_dir=run_dir, iteration=1, model_path=model_path)
    stats = train.train_inprocess(ctx, samples[: steps * cfg.train.batch_size])
    return stats["train_s"] / max(1, stats["steps"]), stats["final_loss"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=2, help="optimizer steps per run (8 samples each)")
    ap.add_argument("--rounds", type=int, default=2, help="A/B pairs")
    args = ap.parse_args()

    from core import config as config_mod
    from core.models import resolve
    from core.schema import load_samples
    from core.seeds.pool import build_pool

    cfg = config_mod.load("cpu-demo")
    cfg.seeds.pool_size = args.steps * cfg.train.batch_size
    pool_path = Path(tempfile.mkdtemp(prefix="lmhead-pool-")) / "pool.jsonl"
    build_pool(cfg, pool_path)
    samples = load_samples(pool_path)
    model_path = resolve("embedded").path

    per_step = {True: [], False: []}
    losses = {}
    for _ in range(args.rounds):
        for compact in (False, True):
            t0 = time.monotonic()
            s, loss = one_run(compact, samples, args.steps, model_path)
            per_step[compact].append(s)
            losses[compact] = loss
            print(f"compact={compact}: {s:.1f} s/step (run {time.monotonic() - t0:.0f} s), loss {loss:.4f}",
                  flush=True)
    full, compact = min(per_step[False]), min(per_step[True])
    print(f"\nall positions: {full:.1f} s/step   labelled only: {compact:.1f} s/step   "
          f"speed-up x{full / compact:.2f}   final loss {losses[False]:.4f} vs {losses[True]:.4f}")


if __name__ == "__main__":
    main()
