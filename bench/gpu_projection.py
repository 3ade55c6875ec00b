"""The paper's iteration and its projection onto 8 GPUs: pure arithmetic, no torch at import, for
bench/gpu_check.py (part 6) and tested in tests/test_gpu_check.py."""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Recipe:
    """One iteration of the paper preset's training (core/presets/qwen3-8b-paper.toml)."""
    prompts: int = 18304  # assemble.budget: D_j's size
    rollouts: int = 16  # train.num_generations
    epochs: float = 2.0  # train.epochs
    batch_size: int = 128  # train.batch_size: prompts per optimizer step
    micro_batch: int = 2  # train.micro_batch: completions per forward/backward
    prompt_tokens: int = 4096  # train.max_prompt_tokens
    completion_tokens: int = 1024  # train.max_new_tokens
    probe_batch: int = 256  # probe.batch_size
    probe_new_tokens: int = 1024  # probe.max_new_tokens
    gpus: int = 8  # the accelerate config's num_processes
    lr: float = 1e-6
    clip_low: float = 0.2
    clip_high: float = 0.28
    lora: bool = False


def paper_recipe() -> Recipe:
    """The Recipe read from the shipped preset and its accelerate config."""
    import yaml

    from core import config as config_mod
    from core.stages.train_launch import accelerate_config_path

    cfg = config_mod.load("qwen3-8b-paper")
    t = cfg.train
    launch = yaml.safe_load(accelerate_config_path(t.accelerate_config).read_text())
    return Recipe(prompts=cfg.assemble.budget, rollouts=t.num_generations, epochs=float(t.epochs),
                  batch_size=t.batch_size, micro_batch=t.micro_batch, prompt_tokens=t.max_prompt_tokens,
                  completion_tokens=t.max_new_tokens, probe_batch=cfg.probe.batch_size,
                  probe_new_tokens=cfg.probe.max_new_tokens, gpus=int(launch.get("num_processes", 8)),
                  lr=t.lr, clip_low=t.clip_low, clip_high=t.clip_high, lora=t.lora)


PROJECTION_ASSUMPTIONS = (
    "data parallel with linear scaling: each of the GPUs generates and trains on 1/gpus of the completions "
    "(ZeRO-3's all-gathers and reduce-scatters, which add to this, are not simulated)",
    "every prompt and completion at the preset's maximum lengths (train.max_prompt_tokens, "
    "train.max_new_tokens): an upper bound; real replies end earlier",
    "rollouts with transformers' generate at the measured batch; every row prefills its own prompt "
    "(the 'shared prefill' line encodes each prompt once for its rollouts, as vLLM's prefix caching "
    "would); vLLM, the preset's rollout engine, was not measured here, so its speed-up is unknown",
    "a decode step's time as measured right after the prompt: later steps read a longer KV cache",
    "one forward and backward per completion (beta = 0 and one GRPO iteration per batch: no reference "
    "model, no second pass for old log-probabilities)",
    "each optimizer step updates 1/gpus of the weights (ZeRO-3 shards the optimizer state)",
    "judge, expand, assemble and the BFCL/ACEBench evaluation are not included",
)


def project_iteration(recipe: Recipe, train_tokens_per_s: float, optimizer_step_s: float,
                      prefill_tokens_per_s: float, decode_step_s: float, gen_batch: int) -> dict:
    """The wall time of one paper iteration's training on `recipe.gpus` GPUs, from one GPU's figures:
    `train_tokens_per_s` (forward + backward over prompt and completion tokens), `optimizer_step_s` (one
    step over the whole model), `prefill_tokens_per_s` and `decode_step_s` of generation at `gen_batch`
    rows. Seconds per phase, under PROJECTION_ASSUMPTIONS."""
    completions = round(recipe.prompts * recipe.rollouts * recipe.epochs)
    per_gpu = completions / recipe.gpus
    steps = math.ceil(recipe.prompts / recipe.batch_size) * recipe.epochs
    prefill_s = per_gpu * recipe.prompt_tokens / prefill_tokens_per_s
    decode_s = math.ceil(per_gpu / gen_batch) * recipe.completion_tokens * decode_step_s
    train_s = per_gpu * (recipe.prompt_tokens + recipe.completion_tokens) / train_tokens_per_s
    optimizer_s = steps * optimizer_step_s / recipe.gpus
    total = prefill_s + decode_s + train_s + optimizer_s
    return {"completions": completions, "completions_per_gpu": per_gpu, "optimizer_steps": steps,
            "rollout_prefill_s": prefill_s, "rollout_prefill_shared_s": prefill_s / recipe.rollouts,
            "rollout_decode_s": decode_s, "train_s": train_s, "optimizer_s": optimizer_s, "total_s": total,
            "total_shared_prefill_s": total - prefill_s + prefill_s / recipe.rollouts}


def project_probe(recipe: Recipe, prefill_tokens_per_s: float, decode_step_s: float, gen_batch: int) -> dict:
    """The probe of D_j on `recipe.gpus` GPUs: one greedy reply per sample, up to probe.max_new_tokens."""
    per_gpu = recipe.prompts / recipe.gpus
    prefill_s = per_gpu * recipe.prompt_tokens / prefill_tokens_per_s
    decode_s = math.ceil(per_gpu / gen_batch) * recipe.probe_new_tokens * decode_step_s
    return {"samples": recipe.prompts, "prefill_s": prefill_s, "decode_s": decode_s, "total_s": prefill_s + decode_s}


def fit_batch(free_bytes: float, kv_bytes_per_token: float, prefill_bytes_per_token: float, prompt_tokens: int,
              new_tokens: int, cap: int, headroom: float = 0.8) -> int:
    """The largest power of two <= `cap` whose generation fits `headroom` of `free_bytes`: its KV cache
    (prompt + new tokens) and the prefill's transient activations (prompt tokens)."""
    per_row = (prompt_tokens + new_tokens) * kv_bytes_per_token + prompt_tokens * prefill_bytes_per_token
    fit = int(free_bytes * headroom // per_row)
    batch = 1
    while batch * 2 <= min(cap, fit):
        batch *= 2
    return batch


def group_advantages(rewards, group: int):
    """GRPO's advantages with scale_rewards = "group": (r - mean) / (std + 1e-4) within each group of
    `group` rollouts of one prompt (trl's formula)."""
    import torch

    r = rewards.float().view(-1, group)
    return ((r - r.mean(1, keepdim=True)) / (r.std(1, keepdim=True) + 1e-4)).view(-1)


def model_flops_per_token(n_params: int) -> int:
    """Forward + backward with activation checkpointing: 2N (forward) + 4N (backward) + 2N (the forward
    recomputed), attention's own FLOPs left out."""
    return 8 * n_params
