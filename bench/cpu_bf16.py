"""bf16 on a CPU that has it natively (AVX512-BF16 / AMX), against fp32, side by side in one run.

(a) Generation: the hf backend with fp32 and with bf16 weights on the same held-out BFCL-v3 prompts of
    the cpu-demo (greedy, its token budget, its batch size): seconds, tokens/s, how many replies are
    byte-identical and how many BFCL verdicts agree.
(b) Training: the real train stage (SFT, cpu-demo settings) for a few optimizer steps with fp32 and
    with bf16 autocast (fp32 master weights): seconds per step and the per-step losses.

looptool picks bf16 by itself where core.hardware.cpu_native_bf16() is true; this script forces each
arm by patching that one function, so the two run on the same machine in one process.

    .venv/bin/python bench/cpu_bf16.py [--prompts 32] [--steps 3]
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


def generation(n: int, cfg) -> None:
    from core.backends import GenParams
    from core.backends.hf import HFBackend
    from core.models import resolve
    from core.prompting import render
    from core import prompt_format
    from evals import bfcl_data, bfcl_score

    cats = bfcl_data.parse_categories(cfg.eval.bfcl_categories)
    entries = bfcl_data.select(cats, -(-n // len(cats)), seed=cfg.eval.holdout_seed)[:n]
    params = GenParams(max_new_tokens=cfg.eval.bfcl_max_new_tokens, temperature=0.0, seed=0)
    out = {}
    for dtype in ("float32", "bfloat16"):
        b = HFBackend(resolve("embedded").path, dtype=dtype, batch_size=cfg.probe.batch_size)
        prompts = [render(b.tokenizer, prompt_format.first_messages(e.question[0], e.functions, "prompt"))
                   for e in entries]
        b.generate(prompts[:2], GenParams(max_new_tokens=4, temperature=0.0))  # warm-up
        t = time.perf_counter()
        gens = b.generate(prompts, params)
        s = time.perf_counter() - t
        toks = sum(g.num_tokens for g in gens)
        verdicts = [bfcl_score.score_single(e, g.text, "prompt")["valid"] for e, g in zip(entries, gens)]
        out[dtype] = (s, toks, gens, verdicts)
        print(f"(a) generate {dtype:8s}: {len(entries)} prompts, {toks} tokens in {s:6.1f} s = "
              f"{toks / s:5.1f} tok/s, {sum(verdicts)} valid", flush=True)
        b.close()
    (s32, t32, g32, v32), (s16, t16, g16, v16) = out["float32"], out["bfloat16"]
    same = sum(a.text == b.text for a, b in zip(g32, g16))
    agree = sum(a == b for a, b in zip(v32, v16))
    print(f"    bf16 / fp32 wall: x{s32 / s16:.2f} faster; identical replies {same}/{len(entries)}; "
          f"BFCL verdicts agree {agree}/{len(entries)}")


def training(steps: int) -> None:
    from core import config as config_mod
    from core.models import resolve
    from core.schema import load_samples
    from core.seeds.pool import build_pool
    from core.stages import train
    from core.stages.base import StageContext

    cfg = config_mod.load("cpu-demo")
    cfg.seeds.pool_size = steps * cfg.train.batch_size
    pool = Path(tempfile.mkdtemp(prefix="bf16-pool-")) / "pool.jsonl"
    build_pool(cfg, pool)
    samples = load_samples(pool)
    cfg.train.epochs = 1
    res = {}
    for name, native in (("fp32", False), ("bf16", True)):
        train.cpu_native_bf16 = lambda native=native: native
        ctx = StageContext(cfg=cfg, run_dir=Path(tempfile.mkdtemp(prefix=f"bf16-{name}-")), iteration=1,
                           model_path=resolve("embedded").path)
        stats = train.train_inprocess(ctx, samples)
        losses = [p["loss"] for p in stats["curve"] if p.get("loss") is not None]
        res[name] = (stats["train_s"] / max(1, stats["steps"]), losses)
        print(f"(b) SFT {name}: {res[name][0]:.1f} s/step over {stats['steps']} steps, losses "
              + " ".join(f"{x:.4f}" for x in losses), flush=True)
    print(f"    bf16 / fp32 step time: x{res['fp32'][0] / res['bf16'][0]:.2f} faster; max loss difference "
          f"{max(abs(a - b) for a, b in zip(res['fp32'][1], res['bf16'][1])):.4f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--steps", type=int, default=3)
    args = ap.parse_args()
    import torch

    from core import config as config_mod
    from core.hardware import cpu_native_bf16

    cfg = config_mod.load("cpu-demo")
    torch.set_num_threads(cfg.run.threads or torch.get_num_threads())
    print(f"cpu_native_bf16() = {cpu_native_bf16()}, torch threads = {torch.get_num_threads()}")
    generation(args.prompts, cfg)
    training(args.steps)


if __name__ == "__main__":
    main()
