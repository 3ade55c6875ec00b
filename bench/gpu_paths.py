"""The CUDA paths on one GPU, measured in one run: hf backend generate, trl SFT and GRPO through the train
stage, and the probe stage on the trained adapter.

The model is SmolLM2-135M's architecture and tokenizer with random weights (seeded), built from a config
directory: the real weights do not fit what can be carried to a lent GPU machine, and throughput does not
depend on the weights. Prints one line per check and writes a JSON summary to --out.

    python bench/gpu_paths.py --config-dir DIR [--pool pool.jsonl] [--out results.json]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("LOOPTOOL_HOME", tempfile.mkdtemp(prefix="looptool-gpu-"))


def random_model(config_dir: str, out: Path) -> str:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(config_dir))
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(config_dir).save_pretrained(out)
    return str(out)


def samples(n: int, pool: str | None):
    """cpu-demo procedural seeds: read from --pool (written where bfcl-eval's data is, for the
    contamination guard) or built here with the guard off."""
    from core import config as config_mod
    from core.schema import load_samples
    from core.seeds.pool import build_pool

    if pool:
        return load_samples(Path(pool))[:n]
    cfg = config_mod.load("cpu-demo")
    cfg.seeds.pool_size = n
    cfg.seeds.contamination_guard = False
    path = Path(tempfile.mkdtemp()) / "pool.jsonl"
    build_pool(cfg, path)
    return load_samples(path)


def check_generate(model_path: str, data, results: dict) -> None:
    from core.backends import GenParams
    from core.backends.hf import HFBackend
    from core.prompting import render
    from core.prompt_format import prompt_messages

    params = GenParams(max_new_tokens=64, temperature=0.0, seed=0)
    for bs in (1, 16):
        backend = HFBackend(model_path, device="cuda", batch_size=bs)
        prompts = [render(backend.tokenizer, *prompt_messages(s, "prompt")) for s in data]
        backend.generate(prompts[:bs], params)  # warm-up
        import torch

        torch.cuda.synchronize()
        t0 = time.perf_counter()
        gens = backend.generate(prompts, params)
        torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        tok = sum(g.num_tokens for g in gens)
        results[f"generate_bs{bs}_tok_s"] = round(tok / dt, 1)
        print(f"hf generate cuda {backend.dtype} batch {bs}: {len(prompts)} prompts, {tok} tokens, "
              f"{dt:.2f} s, {tok / dt:.0f} tok/s", flush=True)
        backend.close()
    results["generate_batch_speedup"] = round(results["generate_bs16_tok_s"] / results["generate_bs1_tok_s"], 2)


def check_train(model_path: str, data, method: str, steps: int, results: dict) -> str:
    import torch
    from core import config as config_mod
    from core.stages import train
    from core.stages.base import StageContext

    cfg = config_mod.load("cpu-demo")
    cfg.model.device = "cuda"
    cfg.train.methods = [method]
    cfg.train.epochs = 1
    run_dir = Path(tempfile.mkdtemp(prefix=f"gpu-{method}-"))
    events = []
    ctx = StageContext(cfg=cfg, run_dir=run_dir, iteration=1, model_path=model_path,
                       emit=lambda kind, d: events.append((kind, d)))
    torch.cuda.reset_peak_memory_stats()
    stats = train.run(ctx, data[: steps * cfg.train.batch_size])
    peak = torch.cuda.max_memory_allocated() / 2**30
    per_step = stats["train_s"] / max(1, stats["steps"])
    metrics = [d for k, d in events if k == "metrics"]
    results[method] = {"steps": stats["steps"], "s_per_step": round(per_step, 2),
                       "tokens_per_s": stats["tokens_per_s"], "final_loss": stats["final_loss"],
                       "reward_mean": stats.get("reward_mean"), "peak_gib": round(peak, 2),
                       "telemetry_metrics": len(metrics), "bf16": True}
    print(f"train {method} cuda: {stats['steps']} steps, {per_step:.2f} s/step, {stats['tokens_per_s']} tok/s, "
          f"loss {stats['final_loss']}, reward {stats.get('reward_mean')}, peak {peak:.2f} GiB, "
          f"{len(metrics)} metrics events", flush=True)
    return str(run_dir / "iter-1" / train.POLICY_DIR)


def check_probe(model_path: str, adapter: str, data, results: dict) -> None:
    from core import config as config_mod
    from core.stages import probe
    from core.stages.base import StageContext

    cfg = config_mod.load("cpu-demo")
    cfg.model.device = "cuda"
    cfg.probe.batch_size = 16
    run_dir = Path(tempfile.mkdtemp(prefix="gpu-probe-"))
    ctx = StageContext(cfg=cfg, run_dir=run_dir, iteration=1, model_path=model_path, adapter=adapter)
    stats = probe.run(ctx, data)
    results["probe"] = {k: stats.get(k) for k in ("probed_now", "tokens_per_s", "samples_per_s", "wall_s")}
    print(f"probe cuda with adapter: {stats.get('probed_now')} samples, {stats.get('tokens_per_s')} tok/s, "
          f"{stats.get('wall_s')} s", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config-dir", required=True, help="SmolLM2 config.json + tokenizer files")
    ap.add_argument("--pool", help="a seed pool JSONL to use instead of building one")
    ap.add_argument("--out", default="gpu_paths.json")
    ap.add_argument("--sft-steps", type=int, default=8)
    ap.add_argument("--grpo-steps", type=int, default=4)
    args = ap.parse_args()

    import torch

    results: dict = {"torch": torch.__version__, "gpu": torch.cuda.get_device_name(0)}
    print(f"torch {torch.__version__} on {results['gpu']}", flush=True)
    model_path = random_model(args.config_dir, Path(tempfile.mkdtemp(prefix="smollm2-random-")))
    data = samples(max(64, args.sft_steps * 8), args.pool)
    steps = [("generate", lambda: check_generate(model_path, data[:64], results))]
    adapter: dict = {}
    steps.append(("sft", lambda: adapter.setdefault("sft", check_train(model_path, data, "sft", args.sft_steps,
                                                                          results))))
    steps.append(("grpo", lambda: check_train(model_path, data, "grpo", args.grpo_steps, results)))
    steps.append(("probe", lambda: check_probe(model_path, adapter["sft"], data[:64], results)))
    for name, fn in steps:
        t0 = time.monotonic()
        try:
            fn()
        except Exception as exc:  # report every check, not just the first failure
            import traceback

            traceback.print_exc()
            results[f"{name}_error"] = f"{type(exc).__name__}: {exc}"
        results[f"{name}_wall_s"] = round(time.monotonic() - t0, 1)
        Path(args.out).write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    sys.exit(1 if any(k.endswith("_error") for k in results) else 0)


if __name__ == "__main__":
    main()
