"""`looptool export RUN --out DIR`: one iteration's policy as a standalone Hugging Face checkpoint
(core/export.py)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def export_cmd(
    run_id: str = typer.Argument(..., help="Run id (see `looptool runs list`)."),
    out: Path = typer.Option(..., "--out", help="Directory to write; absent or empty (see --force)."),
    iteration: Optional[int] = typer.Option(None, "--iteration", min=0, help="The iteration whose policy to "
                                            "export; 0 is the base model. Default: the trained iteration with "
                                            "the best held-out score (the latest of equal ones)."),
    adapter_only: bool = typer.Option(False, "--adapter-only", help="Keep the peft LoRA adapter as is "
                                      "instead of merging it into the base model."),
    force: bool = typer.Option(False, "--force", help="Replace a non-empty --out (only once the new "
                               "checkpoint is complete)."),
):
    """Export a run's policy as a standalone Hugging Face checkpoint: the LoRA adapter merged into the base
    model (or a full fine-tune as is) in the base model's dtype, the tokenizer with its chat template,
    generation_config.json, and a model card (README.md) with the run's config, the held-out score of
    every iteration and the data each one trained on. Loads with transformers' AutoModelForCausalLM;
    `vllm serve DIR` takes the same layout.

    If the base model beats every trained iteration, --iteration must name one.
    Merging holds the model in float32 in memory (4 bytes a parameter).
    DIR is written beside itself and renamed into place: a failure leaves nothing."""
    from core.export import check_out, export, plan_export

    check_out(out, force)  # before the store or any model is read
    plan = plan_export(run_id, iteration, adapter_only)
    typer.echo(f"run {plan.run_id}: iteration {plan.iteration} ({plan.chosen}, {plan.kind} weights)", err=True)
    done = export(plan, out, adapter_only=adapter_only, force=force,
                  say=lambda line: typer.echo(f"  {line}", err=True))
    typer.echo(str(done))
