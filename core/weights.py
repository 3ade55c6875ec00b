"""Which weights an iteration uses: one rule for training, probing and evaluation.

Iteration j trains on D_j starting from the weights iteration j-1 left (`start`) and leaves its policy in
run_dir/iter-j/policy: a peft LoRA adapter on the same model (the next iteration trains that adapter
further), or a full checkpoint (the next iteration starts from it). `trained` is what iteration j left;
while it has left nothing yet, the weights it started from. Iteration 0 is the base model.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Weights:
    model: str  # a resolved model path (core.models.resolve) or a full checkpoint directory
    adapter: str | None = None  # a peft LoRA adapter directory on `model`, None = the plain model


def base(cfg) -> Weights:
    from core.models import resolve

    return Weights(resolve(cfg.model.name).path)


def left_by(policy_dir: Path, started: Weights) -> Weights:
    """The weights after a training that started from `started` and wrote (or not) `policy_dir`."""
    if (policy_dir / "adapter_config.json").exists():
        return Weights(started.model, str(policy_dir))
    if (policy_dir / "config.json").exists():
        return Weights(str(policy_dir))
    return started


def start(cfg, run_dir: Path, iteration: int) -> Weights:
    """The weights iteration `iteration` starts training from (iteration 0 and 1: the base model)."""
    weights = base(cfg)
    for j in range(1, iteration):
        weights = left_by(Path(run_dir) / f"iter-{j}" / "policy", weights)
    return weights


def of_iteration(cfg, run_dir: Path, iteration: int) -> Weights:
    """The policy iteration `iteration` left (0: the base model), outside a stage context."""
    started = start(cfg, run_dir, iteration)
    return started if iteration == 0 else left_by(Path(run_dir) / f"iter-{iteration}" / "policy", started)


def trained(ctx) -> Weights:
    """The policy of the stage context's iteration (iteration 0: the base model)."""
    started = Weights(ctx.model_path, ctx.adapter)
    return started if ctx.iteration == 0 else left_by(ctx.iter_dir / "policy", started)
