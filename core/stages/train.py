"""Train the policy on D_j: SFT or GRPO (trl), LoRA or full fine-tune, pausable and resumable.

    run(ctx, dataset) -> stats      trains on `dataset`, writes `iter_dir/policy/` and `train.done`

* Start weights: ``ctx.model_path`` (the base model, or the previous full checkpoint), plus
  ``ctx.adapter`` (the previous iteration's LoRA adapter) which is trained further. Every iteration
  builds a new trainer, so the optimizer is reset (the paper's schedule).
* SFT: prompt-completion rows (prompt = the rendered chat prompt, completion = the label + eos); trl
  computes the loss on the completion only (its first token weighted by train.sft_decision_weight:
  core/stages/train_sft_loss.py).
* GRPO: the paper's binary exact-match reward (core.prompt_format.reward), G rollouts per prompt, clip
  epsilon low/high, beta = 0 (no KL, no reference model), token-mean loss ("dapo" in trl).
* One optimizer step sees `train.batch_size` prompts (capped at the dataset size, since trl's GRPO
  sampler drops incomplete generation batches); `train.micro_batch` rows (SFT samples, GRPO completions)
  go through one forward/backward.
* Pause/stop: after each optimizer step (once the step's metrics are logged) the pause/stop flags are
  checked; a trainer checkpoint is written to `iter_dir/train-ckpt/` before pausing or stopping
  (StageStopped then propagates). Checkpoints are also written every train.save_every_s seconds, so a killed
  process loses at most that much work; a rerun resumes from the newest complete checkpoint.
* launcher = "accelerate": `run` starts `accelerate launch ... -m core.stages.train_entry` (see
  core/stages/train_launch.py) and relays pause/stop and telemetry through files.
* train.report_to: trl's own tracker callbacks (tensorboard, wandb) log the training, at the run's step
  (earlier iterations' steps added) into run_dir/tracker/ (core/trackers.py).
* train.use_vllm: GRPO's rollouts through trl's vLLM integration, colocated or on a server that `run`
  starts for the stage (core/stages/train_vllm.py).
"""
from __future__ import annotations

import contextlib
import math
import os
import shutil
import time
from pathlib import Path

from core.errors import UserError
from core.hardware import cpu_native_bf16
from core.schema import Sample, load_samples
from core.stages.base import StageContext, is_done, mark_done
from core.stages.train_callback import LoopCallback, continue_run_steps, latest_checkpoint
from core.stages.train_launch import LAUNCHED_ENV, accelerate_command, run_launched  # noqa: F401
from core.stages.train_vllm import SERVER_URL_ENV, grpo_vllm_kwargs, rollout_server
from core.trackers import set_train_env, step_offset

CKPT_DIR = "train-ckpt"
POLICY_DIR = "policy"
SAVE_TOTAL_LIMIT = 2  # keep the newest two checkpoints (the newest may be half-written when killed)
COMPACT_LM_HEAD = True  # on CPU, score only the positions that have labels (see compact_lm_head)


def run(ctx: StageContext, dataset: list[Sample] | None = None) -> dict:
    """Train the policy on D_j (the iteration's dataset.jsonl when not given); returns the stats."""
    if (done := is_done(ctx.iter_dir, "train")) is not None:
        return done
    if dataset is None:
        dataset = load_samples(ctx.iter_dir / "dataset.jsonl")
    if os.environ.get(LAUNCHED_ENV):  # one rank of an accelerate job; the stage that launched it runs any server
        return train_inprocess(ctx, dataset)
    with rollout_server(ctx) as rollouts:  # server mode's vLLM server, for this stage (core.stages.train_vllm)
        if ctx.cfg.train.launcher == "accelerate":
            gpus = rollouts.training_gpus  # the server's GPUs are hidden: one process per GPU left
            return run_launched(ctx, dataset, accelerate_command(ctx, num_processes=len(gpus)) if gpus else None)
        return train_inprocess(ctx, dataset)


# -- in-process training ----------------------------------------------------------------------------

def train_inprocess(ctx: StageContext, dataset: list[Sample]) -> dict:
    import torch
    import transformers
    from transformers import AutoTokenizer

    t0 = time.monotonic()
    tcfg = ctx.cfg.train
    method = tcfg.method_for(ctx.iteration)
    mode = ctx.cfg.model.mode
    if mode not in ("prompt", "fc"):
        raise UserError(f"model.mode: training needs prompt or fc, got {mode!r}")
    if not dataset:
        raise UserError(f"iteration {ctx.iteration}: the training set is empty")
    if ctx.cfg.run.threads and not torch.cuda.is_available():
        # run.threads is the machine's share for training: launched ranks on one machine split it
        torch.set_num_threads(max(1, ctx.cfg.run.threads // int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))

    tokenizer = AutoTokenizer.from_pretrained(ctx.model_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    rows, skipped = build_rows(tokenizer, dataset, mode, method, tcfg.max_prompt_tokens)
    if not rows:
        raise UserError(f"iteration {ctx.iteration}: every training prompt is longer than "
                        f"train.max_prompt_tokens = {tcfg.max_prompt_tokens}")

    ckpt_root = ctx.iter_dir / CKPT_DIR
    resume = latest_checkpoint(ckpt_root)
    args = training_args(ctx, method, len(rows), ckpt_root)  # before the model: ZeRO-3 init needs it
    # the Trainer seeds only once it is built; a fresh LoRA adapter's A matrices are drawn before that
    transformers.set_seed(args.seed)
    model = load_model(ctx, args)
    callback = LoopCallback(ctx, save_every_s=tcfg.save_every_s)
    set_train_env(ctx.cfg, ctx.run_dir)  # where trl's tracker callbacks (train.report_to) write
    if method == "sft":
        trainer = _sft_trainer(model, tokenizer, args, rows, callback, tcfg.sft_decision_weight)
    else:
        trainer = _grpo_trainer(model, tokenizer, args, rows, dataset, mode, tcfg.list_as_set, callback)
    callback.trainer = trainer
    continue_run_steps(trainer, step_offset(ctx.run_dir, ctx.iteration))
    ctx.emit("event", {"event": "train_started", "stage": "train", "iteration": ctx.iteration, "method": method,
                       "samples": len(rows), "resumed_from": resume.name if resume else None,
                       "precision": precision(args)})

    with compact_lm_head(COMPACT_LM_HEAD and args.use_cpu):
        trainer.train(resume_from_checkpoint=str(resume) if resume else None)

    save_policy(trainer, ctx.iter_dir / POLICY_DIR, full=not tcfg.lora)
    stats = _stats(trainer, callback, method, len(rows), skipped, tcfg, resume, t0)
    if trainer.accelerator.is_main_process:
        mark_done(ctx.iter_dir, "train", stats)
        shutil.rmtree(ckpt_root, ignore_errors=True)
    trainer.accelerator.wait_for_everyone()
    return stats


def build_rows(tokenizer, dataset: list[Sample], mode: str, method: str, max_prompt_tokens: int
               ) -> tuple[list[dict], int]:
    """Dataset rows: {prompt, completion} (SFT) or {prompt, sample_idx} (GRPO). Samples whose rendered
    prompt is longer than `max_prompt_tokens` are left out (truncating would cut the tool list or
    the question); the count comes back as `skipped`."""
    from core.prompting import render
    from core.prompt_format import label_text, prompt_messages

    rows, skipped = [], 0
    for i, s in enumerate(dataset):
        prompt = render(tokenizer, *prompt_messages(s, mode))
        if len(tokenizer(prompt)["input_ids"]) > max_prompt_tokens:
            skipped += 1
            continue
        if method == "sft":
            rows.append({"prompt": prompt, "completion": label_text(s, mode) + tokenizer.eos_token})
        else:
            rows.append({"prompt": prompt, "sample_idx": i})
    return rows, skipped


def batch_layout(batch_size: int, micro_batch: int, num_processes: int, per_prompt: int = 1
                 ) -> tuple[int, int]:
    """(per_device_train_batch_size, gradient_accumulation_steps) such that one optimizer step sees
    `batch_size` prompts (`batch_size * per_prompt` rows over all processes). The micro batch is
    lowered to divide a process's share evenly; when the rows cannot be split evenly over the
    processes, the prompt count is rounded down to the nearest count that can."""
    unit = num_processes // math.gcd(per_prompt, num_processes)  # prompt-count granularity
    prompts = max(unit, batch_size // unit * unit)
    share = prompts * per_prompt // num_processes  # rows per process per step
    per_device = max(1, min(micro_batch, share))
    while share % per_device:
        per_device -= 1
    return per_device, share // per_device


def training_args(ctx: StageContext, method: str, n_rows: int, output_dir: Path):
    import torch

    tcfg = ctx.cfg.train
    nproc = int(os.environ.get("WORLD_SIZE", "1"))
    on_cpu = ctx.cfg.model.device == "cpu" or not torch.cuda.is_available()
    # bf16 autocast where the hardware has it natively (CUDA, or a CPU with AVX512-BF16/AMX)
    bf16 = cpu_native_bf16() if on_cpu else torch.cuda.is_bf16_supported()
    common = dict(
        output_dir=str(output_dir), num_train_epochs=tcfg.epochs, weight_decay=0.01, max_grad_norm=1.0,
        logging_strategy="steps", logging_steps=1, save_strategy="no", save_total_limit=SAVE_TOTAL_LIMIT,
        report_to=tcfg.trackers or "none", run_name=ctx.run_dir.name,  # trackers: core/trackers.py
        disable_tqdm=True, seed=ctx.cfg.run.seed + ctx.iteration,
        use_cpu=on_cpu, bf16=bf16, dataloader_num_workers=0,
        activation_checkpointing=not on_cpu,  # GPU memory for 8B models; pointless for 135M on CPU
        ddp_find_unused_parameters=False,  # every trainable weight is used (LoRA all-linear, or all of them)
    )
    if method == "sft":
        from trl import SFTConfig

        per_device, accum = batch_layout(min(tcfg.batch_size, n_rows), tcfg.micro_batch, nproc)
        return SFTConfig(
            **common, learning_rate=tcfg.sft_lr, lr_scheduler_type="linear", warmup_steps=0,
            per_device_train_batch_size=per_device, gradient_accumulation_steps=accum,
            max_length=None, packing=False,  # prompts are capped by build_rows; labels are never cut
            completion_only_loss=True, include_num_input_tokens_seen="non_padding",
        )
    from trl import GRPOConfig

    G = tcfg.num_generations
    per_device, accum = batch_layout(min(tcfg.batch_size, n_rows), tcfg.micro_batch, nproc, per_prompt=G)
    return GRPOConfig(
        **common, learning_rate=tcfg.lr, lr_scheduler_type="constant", warmup_steps=0,
        per_device_train_batch_size=per_device, gradient_accumulation_steps=accum,
        num_generations=G, max_completion_length=tcfg.max_new_tokens, temperature=tcfg.temperature,
        top_p=1.0, top_k=0, beta=tcfg.beta, epsilon=tcfg.clip_low, epsilon_high=tcfg.clip_high,
        loss_type="dapo",  # token-mean over the whole step's tokens, verl's default aggregation
        scale_rewards="group", num_iterations=1, mask_truncated_completions=False,
        remove_unused_columns=False, log_completions=False,
        **grpo_vllm_kwargs(tcfg, os.environ.get(SERVER_URL_ENV)),
    )


def precision(args) -> str:
    """How the training computes (training_args chose it), for the train_started event and the stats."""
    if not args.bf16:
        return "float32"
    return "bf16 autocast, float32 weights" if args.use_cpu else "bf16 weights"


def load_model(ctx: StageContext, args):
    """The policy to train: base weights (+ the previous adapter, trainable) or a fresh LoRA adapter;
    the plain model for a full fine-tune (a previous adapter is merged into it first)."""
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM

    tcfg = ctx.cfg.train
    # bf16 weights on GPU; on CPU the weights (and LoRA's optimizer state) stay fp32 and bf16 comes
    # from autocast (args.bf16): master weights in bf16 lose LoRA's small updates to rounding.
    dtype = torch.bfloat16 if args.bf16 and not args.use_cpu else torch.float32
    model = AutoModelForCausalLM.from_pretrained(ctx.model_path, dtype=dtype)
    if not tcfg.lora:
        if ctx.adapter:
            model = PeftModel.from_pretrained(model, ctx.adapter).merge_and_unload()
        return model
    if ctx.adapter:
        return PeftModel.from_pretrained(model, ctx.adapter, is_trainable=True)
    lora = LoraConfig(r=tcfg.lora_r, lora_alpha=tcfg.lora_alpha, lora_dropout=tcfg.lora_dropout,
                      target_modules="all-linear", bias="none", task_type="CAUSAL_LM")
    return get_peft_model(model, lora)


def _sft_trainer(model, tokenizer, args, rows, callback, decision_weight: float):
    from datasets import Dataset

    from core.stages.train_sft_loss import DecisionWeightedSFTTrainer

    return DecisionWeightedSFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows),
                                      processing_class=tokenizer, callbacks=[callback],
                                      decision_weight=decision_weight)


def _grpo_trainer(model, tokenizer, args, rows, dataset, mode, list_as_set, callback):
    from datasets import Dataset
    from trl import GRPOTrainer

    return GRPOTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows),
                       processing_class=tokenizer, callbacks=[callback],
                       reward_funcs=[exact_match_reward(dataset, mode, list_as_set)])


def exact_match_reward(dataset: list[Sample], mode: str, list_as_set: bool = False):
    """trl reward function: the paper's binary exact-match reward against each row's label."""
    from core.prompt_format import reward

    def exact_match(prompts, completions, sample_idx, **_):
        return [reward(c if isinstance(c, str) else c[-1]["content"], dataset[i], mode, list_as_set)
                for c, i in zip(completions, sample_idx)]

    return exact_match


@contextlib.contextmanager
def compact_lm_head(enabled: bool = True):
    """trl's fused LM head scores the logits of every position unless Triton is available (fixed tile
    shapes avoid recompiling on Neuron). On CPU, scoring only the positions that carry a label gives the
    same loss and gradients at a fraction of the cost: SFT prompts are ~95% of the tokens, and the LM
    head (49k x 576 for SmolLM2) is a large share of a 135M model's compute. trl picks the path through
    `trl.trainer.utils._use_triton`; this patches that one name for the duration, and does nothing
    when a trl version no longer has it."""
    import trl.trainer.utils as trl_utils

    original = getattr(trl_utils, "_use_triton", None)
    if not enabled or not callable(original):
        yield
        return
    trl_utils._use_triton = lambda device: device.type == "cpu" or original(device)
    try:
        yield
    finally:
        trl_utils._use_triton = original


# -- results ----------------------------------------------------------------------------------------

def save_policy(trainer, target: Path, full: bool) -> None:
    """The adapter (LoRA) or the full model + tokenizer, written to policy.tmp and renamed."""
    tmp = target.with_name(target.name + ".tmp")
    main = trainer.accelerator.is_main_process
    if main:
        shutil.rmtree(tmp, ignore_errors=True)
    trainer.accelerator.wait_for_everyone()
    trainer.save_model(str(tmp))  # gathers ZeRO-3 / FSDP shards; a PeftModel saves only its adapter
    if main:
        if not full:  # the adapter alone: drop what Trainer.save_model adds next to it
            for f in tmp.iterdir():
                if not f.name.startswith(("adapter_", "README")):
                    f.unlink() if f.is_file() else shutil.rmtree(f)
        if target.exists():
            shutil.rmtree(target)
        tmp.replace(target)
    trainer.accelerator.wait_for_everyone()


def _stats(trainer, callback, method, n_rows, skipped, tcfg, resume, t0) -> dict:
    history = trainer.state.log_history
    losses = [h["loss"] for h in history if "loss" in h]
    rewards = [h["reward"] for h in history if h.get("reward") is not None]
    stats = {
        "method": method, "steps": trainer.state.global_step, "max_steps": trainer.state.max_steps,
        "samples": n_rows, "skipped_too_long": skipped, "epochs": tcfg.epochs,
        "final_loss": losses[-1] if losses else None,
        "wall_s": round(time.monotonic() - t0, 2), "train_s": round(callback.train_seconds(), 2),
        "tokens_per_s": callback.tokens_per_s(), "lora": tcfg.lora,
        "resumed_from": resume.name if resume else None, "precision": precision(trainer.args),
        "lr": tcfg.sft_lr if method == "sft" else tcfg.lr,
        "prompts_per_step": trainer.args.per_device_train_batch_size * trainer.args.gradient_accumulation_steps
        * trainer.args.world_size // (tcfg.num_generations if method == "grpo" else 1),
        "curve": callback.curve(),  # per logged step (train_callback: CURVE_KEYS), 5 significant digits
    }
    if method == "grpo":
        stats["reward_mean"] = sum(rewards) / len(rewards) if rewards else None
        stats["reward_first"] = rewards[0] if rewards else None
        stats["reward_last"] = rewards[-1] if rewards else None
        stats["num_generations"] = tcfg.num_generations
    return stats
