"""`looptool export`: one iteration's policy out of a run, as a standalone Hugging Face checkpoint.

What lands in the output directory: config.json, model.safetensors (sharded past 50 GB, with its index),
generation_config.json, the tokenizer's files with its chat template (chat_template.jinja), and README.md,
a model card (core/export_card.py). A LoRA policy is merged into its base model (peft
`merge_and_unload`); a full fine-tune (train.lora = false) is saved as is; `adapter_only` keeps the peft
adapter (adapter_config.json, adapter_model.safetensors) beside the tokenizer and the card instead.

Which iteration: the one asked for, else the trained iteration with the best held-out score
(core.run_scores.best_iteration). When the base model (iteration 0) scores better than every trained
iteration the export is refused with the numbers, rather than handing out a policy worse than what it
started from; `iteration=0` exports the base model itself.

The dtype is the base model's (its config.json's `dtype`): a LoRA delta is merged in float32 and the
merged weights cast once to that dtype, so a bf16 model stays bf16 and a float32 one float32.

Everything is written into a temporary directory beside the output and renamed into place at the end, so
a failure leaves no half-written checkpoint; an existing non-empty output directory is refused unless
`force`, and then replaced only once the new one is complete.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from core.config import RunConfig, parse
from core.errors import UserError
from core.run_scores import IterationScore, best_iteration, iteration_scores
from core.stages.base import is_done
from core.user_input import read_text

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


@dataclass(frozen=True)
class ExportPlan:
    """What an export will write, settled before any model is loaded."""
    run_id: str
    run_dir: Path
    cfg: RunConfig
    iteration: int
    chosen: str  # why this iteration: "asked for" or "best held-out score"
    scores: list[IterationScore]
    trained: frozenset[int]  # iterations whose training finished with a policy

    @property
    def policy_dir(self) -> Path:
        return self.run_dir / f"iter-{self.iteration}" / "policy"

    @property
    def kind(self) -> str:
        """base (iteration 0) | lora (a peft adapter on the base model) | full (a whole checkpoint)."""
        return "base" if self.iteration == 0 else policy_kind(self.policy_dir) or "full"


def policy_kind(policy_dir: Path) -> str | None:
    """lora | full | None (no policy there): what core.weights.left_by tells apart."""
    if (policy_dir / "adapter_config.json").is_file():
        return "lora"
    return "full" if (policy_dir / "config.json").is_file() else None


def trained_iterations(run_dir: Path, iterations: int) -> frozenset[int]:
    """The iterations whose train stage finished and left a policy."""
    return frozenset(j for j in range(1, iterations + 1)
                     if is_done(run_dir / f"iter-{j}", "train") is not None
                     and policy_kind(run_dir / f"iter-{j}" / "policy") is not None)


def _pct(score: IterationScore) -> str:
    correct, total = score.counts
    return f"{correct}/{total} ({100 * score.accuracy:.1f} %)"


def plan_export(run_id: str, iteration: int | None = None, adapter_only: bool = False) -> ExportPlan:
    """Find the run, read its config and scores, choose the iteration; UserError for anything that stops
    the export (unknown run, an iteration without a policy, no adapter to keep, the base scoring best)."""
    from core.store import ResultStore

    with ResultStore(read_only=True) as store:  # a snapshot: a running core never blocks it
        runs = store.get_docs("runs", run_id=run_id)
        evals = store.list_evals() if runs else []
    if not runs:
        raise UserError(f"no run {run_id!r} in the store (see `looptool runs list`)")
    run_dir = Path(runs[0].get("run_dir") or "")
    cfg_file = run_dir / "config.toml"
    if not cfg_file.is_file():
        raise UserError(f"run {run_id}: {cfg_file}: no run config there (was the run directory moved?)")
    cfg = parse(read_text(cfg_file, "run config"), str(cfg_file))
    n = cfg.run.iterations
    scores = iteration_scores(run_id, run_dir, n, evals)
    trained = trained_iterations(run_dir, n)
    if iteration is not None:
        if not 0 <= iteration <= n:
            raise UserError(f"--iteration {iteration}: run {run_id} has iterations 0..{n} (0 is the base model)")
        if iteration > 0 and iteration not in trained:
            raise UserError(f"--iteration {iteration}: run {run_id} has no trained policy for it "
                            f"({run_dir / f'iter-{iteration}'}: its train stage has not finished); "
                            f"trained: {', '.join(map(str, sorted(trained))) or 'none'}")
        chosen = "asked for"
    else:
        best = best_iteration(scores, trained)
        if best is None:
            raise UserError(f"run {run_id}: no trained iteration has a held-out score to choose by "
                            f"(trained: {', '.join(map(str, sorted(trained))) or 'none'}); "
                            "name one with --iteration J")
        base = scores[0]
        if base.accuracy is not None and base.accuracy > best.accuracy:
            raise UserError(f"run {run_id}: the base model (iteration 0) scores best on the held-out subset, "
                            f"{_pct(base)} against iteration {best.iteration}'s {_pct(best)}; no trained policy "
                            "beats it. Export one anyway with --iteration J, or the base itself with --iteration 0")
        iteration, chosen = best.iteration, "best held-out score"
    plan = ExportPlan(run_id, run_dir, cfg, iteration, chosen, scores, trained)
    if adapter_only and plan.kind != "lora":
        what = "the base model" if plan.kind == "base" else "a full checkpoint (train.lora = false)"
        raise UserError(f"--adapter-only: iteration {iteration} of run {run_id} is {what}, not a LoRA adapter; "
                        "export it without --adapter-only")
    return plan


def check_out(out: Path, force: bool) -> None:
    """An output directory that is absent or empty, or (force) one to be replaced."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise UserError(f"--out {out}: directory is not empty (pass --force to replace it)")


def export(plan: ExportPlan, out: Path, adapter_only: bool = False, force: bool = False,
           say: Callable[[str], None] = print) -> Path:
    """Write the plan's checkpoint to `out` (see the module docstring); returns `out`."""
    from core import weights as weights_mod
    from core.export_card import model_card

    out = Path(out).expanduser().absolute()
    check_out(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    w = weights_mod.of_iteration(plan.cfg, plan.run_dir, plan.iteration)
    base = weights_mod.base(plan.cfg)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.export-"))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp's 0700 would follow the rename
    try:
        if adapter_only:
            say(f"copying the LoRA adapter of iteration {plan.iteration} ({w.adapter})")
            for name in ADAPTER_FILES:
                shutil.copy2(Path(w.adapter) / name, tmp / name)
            dtype = None
        else:
            dtype = _save_model(w, base.model, tmp, say)
        _save_tokenizer(w.model, tmp)
        (tmp / "README.md").write_text(model_card(plan, base.model, dtype, adapter_only), encoding="utf-8")
        say(f"writing {out}")
        _install(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def checkpoint_dtype(model_path: str):
    """The torch dtype a checkpoint's config.json declares (float32 when it names none, as transformers
    then loads it)."""
    import torch
    from transformers import AutoConfig

    conf = AutoConfig.from_pretrained(model_path)
    declared = getattr(conf, "dtype", None) or getattr(conf, "torch_dtype", None)
    if isinstance(declared, str):
        declared = getattr(torch, declared, None)
    return declared if isinstance(declared, torch.dtype) else torch.float32


def _save_model(w, base_model: str, dest: Path, say: Callable[[str], None]) -> str:
    """The policy's weights as a plain checkpoint in the base model's dtype; returns that dtype's name."""
    import torch
    from transformers import AutoModelForCausalLM

    dtype = checkpoint_dtype(base_model)
    say(f"loading {w.model}")
    model = AutoModelForCausalLM.from_pretrained(w.model, dtype=torch.float32 if w.adapter else dtype)
    if w.adapter:
        from peft import PeftModel

        say(f"merging the LoRA adapter {w.adapter} (float32)")
        model = PeftModel.from_pretrained(model, w.adapter).merge_and_unload()
    model = model.to(dtype)
    name = str(dtype).removeprefix("torch.")
    say(f"saving the model ({name})")
    model.save_pretrained(str(dest))
    return name


def _save_tokenizer(model_path: str, dest: Path) -> None:
    """The tokenizer the run used (the base model's, or a full fine-tune's own copy) with its chat
    template (chat_template.jinja), which a serving engine needs to render chat requests as the run did."""
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(model_path).save_pretrained(str(dest))


def _install(tmp: Path, out: Path) -> None:
    """Rename the finished `tmp` to `out`; an existing `out` (empty, or replaced under --force) is moved
    aside first and removed only once the new one is in place."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.replaced-{os.getpid()}")
        os.replace(out, old)
    try:
        os.replace(tmp, out)
    except BaseException:
        if old is not None:
            with contextlib.suppress(OSError):
                os.replace(old, out)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
