"""Run configuration: one TOML file per run, validated with pydantic.

Unknown keys and bad values are rejected with their key path (`train.lr: Input should be ...`).
Presets ship with the package (core/presets/*.toml); `looptool config show PRESET` prints one.
"""
from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from core.errors import UserError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RunSection(_Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    iterations: int = Field(2, ge=1, le=50)
    seed: int = 0
    threads: int | None = Field(None, ge=1, description="torch CPU threads in stage workers")


class ModelSection(_Strict):
    name: str = "embedded"  # see core.models.resolve
    backend: Literal["hf", "vllm", "openai"] = "hf"
    mode: Literal["prompt", "fc"] = "prompt"
    device: str = "auto"
    base_url: str | None = None  # openai backend


class SeedsSection(_Strict):
    source: Literal["procedural", "file", "hub", "llm"] = "procedural"
    path: str | None = None  # file source: JSON/JSONL in LoopTool-23k, ToolACE or xLAM shape
    format: Literal["auto", "looptool23k", "toolace", "xlam", "looptool"] = "auto"
    hub_id: str | None = None
    pool_size: int = Field(2000, ge=1)
    text_fraction: float = Field(0.15, ge=0, le=1, description="share of non-call (clarify/refuse) samples")
    multi_turn_fraction: float = Field(0.3, ge=0, le=1)
    refuse_share: float | None = Field(None, ge=0, le=1, description="share of the text samples that "
                                       "refuse (no tool fits) rather than ask for a missing parameter; "
                                       "None = equal odds")
    refuse_same_domain: float = Field(0.0, ge=0, le=1, description="share of the refusals whose offered "
                                      "tools come from the request's own domain (hard negatives: close "
                                      "but unfit) instead of other domains")
    contamination_guard: bool = True


class TrainSection(_Strict):
    methods: list[Literal["sft", "grpo"]] = Field(default_factory=lambda: ["grpo"], min_length=1,
                                                  description="per iteration; the last repeats")
    lora: bool = True
    lora_r: int = Field(16, ge=1)
    lora_alpha: int = Field(32, ge=1)
    lora_dropout: float = Field(0.0, ge=0, lt=1)
    lr: float = Field(1e-6, gt=0)
    sft_lr: float = Field(2e-4, gt=0)
    batch_size: int = Field(128, ge=1, description="prompts per optimizer step")
    micro_batch: int = Field(2, ge=1)
    epochs: float = Field(2, gt=0)
    num_generations: int = Field(16, ge=2, description="GRPO rollouts per prompt")
    clip_low: float = Field(0.2, ge=0)
    clip_high: float = Field(0.28, ge=0)
    beta: float = Field(0.0, ge=0, description="KL coefficient (paper: 0)")
    temperature: float = Field(1.0, gt=0)
    max_prompt_tokens: int = Field(4096, ge=16)
    max_new_tokens: int = Field(1024, ge=1)
    list_as_set: bool = False
    save_every_s: float = Field(300.0, ge=0, description="checkpoint at least this often; 0 = every step")
    launcher: Literal["inprocess", "accelerate"] = "inprocess"
    accelerate_config: str | None = None  # FSDP / DeepSpeed ZeRO-3 config shipped with the paper preset
    use_vllm: bool = False  # trl's vLLM rollouts (GPU)

    def method_for(self, iteration: int) -> str:
        return self.methods[min(iteration, len(self.methods)) - 1]


class ProbeSection(_Strict):
    max_new_tokens: int = Field(1024, ge=1)
    batch_size: int = Field(8, ge=1)
    label_margin_tokens: int | None = Field(None, ge=0, description="stop each batch this many tokens past "
                                            "its longest label: a longer reply cannot match it exactly. "
                                            "None = max_new_tokens only (models that think first)")
    hppl_rule: Literal["top_ppl_fill", "none"] = "top_ppl_fill"


class LLMRef(_Strict):
    model: str
    backend: Literal["hf", "vllm", "openai"] = "openai"
    base_url: str | None = None


class JudgeSection(_Strict):
    kind: Literal["rule", "llm"] = "rule"
    llm: LLMRef | None = None
    votes: int = Field(1, ge=1)
    consensus: float = Field(0.5, gt=0, le=1, description="share of votes the top verdict needs")
    swap_order: bool = False
    max_new_tokens: int = Field(1024, ge=16)


class ExpandSection(_Strict):
    k: int = Field(4, ge=0)
    generator: Literal["procedural", "llm"] = "procedural"
    llm: LLMRef | None = None


class AssembleSection(_Strict):
    budget: int = Field(18304, ge=1)
    fresh_seeds: list[int] = Field(default_factory=lambda: [5632, 2816, 1408],
                                   description="fresh seeds in D_2, D_3, ...; the last repeats")
    static: bool = False  # ablation: every D_j is fresh seed data only (same budget, same steps)
    max_error_seeds: int | None = Field(None, ge=0, description="cap on error seeds in D_{j+1}, drawn "
                                        "uniformly; None = all of them (the paper)")
    keep_text_share: bool = Field(False, description="D_{j+1} keeps at least seeds.text_fraction of text "
                                  "labels (refuse/clarify): text samples the error-driven parts left out "
                                  "replace call samples (off in the paper)")

    def fresh_for(self, next_iteration: int) -> int:
        i = next_iteration - 2
        return self.fresh_seeds[min(i, len(self.fresh_seeds) - 1)] if self.fresh_seeds else 0


class EvalSection(_Strict):
    bfcl_categories: str = "non_live"
    bfcl_per_category: int | None = None
    bfcl_max_new_tokens: int = Field(256, ge=1)
    holdout_seed: int = 1234
    acebench: bool = False  # also evaluate on ACEBench after each iteration
    acebench_categories: str = "all"  # all | normal | special | agent | comma list of categories
    acebench_per_category: int | None = Field(None, ge=1)  # seeded subset (holdout_seed); None = all
    acebench_max_new_tokens: int = Field(512, ge=1)
    # ACEBench's data_en folder (checked against its sha256 values); None = the checked download in
    # $LOOPTOOL_HOME. Neither available (offline): the eval stage skips ACEBench, says why in acebench_skipped
    acebench_data_dir: str | None = None
    acebench_user_model: str | None = None  # agent_multi_turn's simulated user; None = the policy
    acebench_user_backend: Literal["hf", "vllm", "openai", "openai-chat"] | None = None
    acebench_user_base_url: str | None = None
    after_each_iteration: bool = True


class RunConfig(_Strict):
    run: RunSection
    model: ModelSection = ModelSection()
    seeds: SeedsSection = SeedsSection()
    train: TrainSection = TrainSection()
    probe: ProbeSection = ProbeSection()
    judge: JudgeSection = JudgeSection()
    expand: ExpandSection = ExpandSection()
    assemble: AssembleSection = AssembleSection()
    eval: EvalSection = EvalSection()
    _text: str | None = PrivateAttr(None)

    @property
    def text(self) -> str:
        """The TOML text this config was parsed from (by `parse`): what crosses a process boundary and
        what a run directory keeps as config.toml. A config built otherwise has none."""
        if self._text is None:
            raise ValueError("this RunConfig was not parsed from TOML text (use core.config.parse)")
        return self._text

    @model_validator(mode="after")
    def _cross_checks(self):
        if self.judge.kind == "llm" and self.judge.llm is None:
            raise ValueError("judge.llm is required when judge.kind = 'llm'")
        if self.expand.generator == "llm" and self.expand.llm is None:
            raise ValueError("expand.llm is required when expand.generator = 'llm'")
        if self.seeds.source == "file" and not self.seeds.path:
            raise ValueError("seeds.path is required when seeds.source = 'file'")
        if self.model.backend == "openai" and not self.model.base_url:
            raise ValueError("model.base_url is required for the openai backend")
        return self


PRESETS = ("cpu-demo", "cpu-demo-static", "qwen3-8b-paper")


def preset_text(name: str) -> str:
    if name not in PRESETS:
        raise UserError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    return resources.files("core.presets").joinpath(f"{name}.toml").read_text()


def parse(text: str, where: str) -> RunConfig:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"{where}: not valid TOML: {e}") from None
    try:
        cfg = RunConfig.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        raise UserError(f"{where}: {loc or '(top level)'}: {msg}") from None
    cfg._text = text
    return cfg


def load(path_or_preset: str) -> RunConfig:
    """A TOML file path, or a preset name."""
    if path_or_preset in PRESETS:
        return parse(preset_text(path_or_preset), f"preset {path_or_preset}")
    p = Path(path_or_preset)
    if not p.exists():
        raise UserError(f"config {p}: no such file (presets: {', '.join(PRESETS)})")
    return parse(p.read_text(), str(p))
