"""What one optimizer step costs with SFT and with GRPO, side by side in one run (cpu-demo settings).

Both train the embedded model through the real train stage on the same procedural cpu-demo samples
(prompt mode, 8 prompts per step; GRPO: 4 rollouts per prompt, up to train.max_new_tokens each) and
print seconds per step of each and their ratio: the reason the cpu-demo trains with SFT on 2 cores.

    .venv/bin/python bench/train_step_cost.py [--steps 2] [--device cpu|cuda]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
_home = Path(os.environ.get("LOOPTOOL_HOME") or Path.home() / ".cache" / "looptool")
os.environ.setdefault("LOOPTOOL_MODELS", str(_home / "models"))
os.environ["LOOPTOOL_HOME"] = tempfile.mkdtemp(prefix="looptool-bench-")


def step_cost(method: str, samples, model_path: str, device: str) -> dict:
    from core import config as config_mod
    from core.stages import train
    from core.stages.base import StageContext

    cfg = config_mod.load("cpu-demo")
    cfg.model.device = device
    cfg.train.methods = [method]
    cfg.train.epochs = 1
    ctx = StageContext(cfg=cfg, run_dir=Path(tempfile.mkdtemp(prefix=f"cost-{method}-")), iteration=1,
                       model_path=model_path)
    stats = train.train_inprocess(ctx, samples)
    return {"s_per_step": stats["train_s"] / max(1, stats["steps"]), "steps": stats["steps"],
            "reward": stats.get("reward_mean")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=2, help="optimizer steps per method (8 prompts each)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    from core import config as config_mod
    from core.models import resolve
    from core.schema import load_samples
    from core.seeds.pool import build_pool

    cfg = config_mod.load("cpu-demo")
    cfg.seeds.pool_size = args.steps * cfg.train.batch_size
    pool = Path(tempfile.mkdtemp(prefix="cost-pool-")) / "pool.jsonl"
    build_pool(cfg, pool)
    samples = load_samples(pool)
    model_path = resolve("embedded").path
    sft = step_cost("sft", samples, model_path, args.device)
    grpo = step_cost("grpo", samples, model_path, args.device)
    print(f"\nSFT  {sft['s_per_step']:.1f} s/step ({sft['steps']} steps)")
    print(f"GRPO {grpo['s_per_step']:.1f} s/step ({grpo['steps']} steps, {cfg.train.num_generations} rollouts "
          f"per prompt, up to {cfg.train.max_new_tokens} tokens, mean reward {grpo['reward']})")
    print(f"GRPO / SFT step cost: x{grpo['s_per_step'] / sft['s_per_step']:.2f}")


if __name__ == "__main__":
    main()
