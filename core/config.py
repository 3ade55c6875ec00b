"""Run configuration: one TOML file per run, validated with pydantic.

Unknown keys and bad values are rejected with their key path (`train.lr: Input should be ...`), as one
UserError line: values are taken as TOML types them (strict: no `true` for a number, no 2.0 for an
integer), numbers must be finite (no inf, no nan) and within range, integers within TOML's 64 bits; a
file that is no UTF-8 text, a directory, over MAX_CONFIG_BYTES or nested past tomllib's recursion is
rejected the same way. What the config names on this machine (models, the seed file, benchmark
categories, devices) is checked by core.preflight before a run writes anything.
Presets ship with the package (core/presets/*.toml); `looptool config show PRESET` prints one.
"""
from __future__ import annotations

import json
import re
import tomllib
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator,
                      model_validator)

from core.backends.base import PREFIX_CACHE_MB
from core.errors import UserError
from core.user_input import key_path, read_text

MAX_CONFIG_BYTES = 1 << 20  # a run config is a few KB; a bigger file is not one
_INT64 = (-(1 << 63), (1 << 63) - 1)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


def _device(value: str) -> str:
    if not re.fullmatch(r"auto|cpu|cuda(:[0-9]+)?", value):
        raise ValueError(f"{value!r:.40} is not a device: use auto, cpu, cuda or cuda:N")
    return value


def _server_root_url(value: str) -> str:
    if not re.fullmatch(r"https?://[^/\s]+/?", value):
        raise ValueError(f"{value!r:.60} is not a server's root URL: give http://HOST:PORT, no path (trl "
                         "adds /health and its other routes itself, so no /v1)")
    return value.rstrip("/")


class RunSection(_Strict):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$",
                      description="names the run directory (with a timestamp)")
    iterations: int = Field(2, ge=1, le=50)
    seed: int = Field(0, ge=0, le=2**31 - 1, description="training seeds numpy with seed + iteration, "
                      "which must stay below 2**32")
    threads: int | None = Field(None, ge=1, le=1024, description="torch CPU threads in stage workers")


class ModelSection(_Strict):
    name: str = "embedded"  # see core.models.resolve
    backend: Literal["hf", "vllm", "openai"] = "hf"
    mode: Literal["prompt", "fc"] = "prompt"
    device: Annotated[str, AfterValidator(_device)] = Field("auto", description="auto | cpu | cuda | cuda:N "
                                                             "(core.backends.hf)")
    base_url: str | None = None  # openai backend
    # the vllm backend's engine (probe and eval on vllm; core/backends/vllm.py engine_kwargs)
    tensor_parallel_size: int = Field(1, ge=1, le=64, description="vllm backend: GPUs one engine spans")
    gpu_memory_utilization: float = Field(0.85, gt=0, le=1, description="vllm backend: share of each "
                                          "GPU's memory the engine takes (weights, activations, KV cache)")
    max_model_len: int | None = Field(None, ge=256, description="vllm backend: context length of the engine "
                                      "(None: the model's own; a shorter one leaves more KV-cache room)")
    prefix_cache_mb: int = Field(PREFIX_CACHE_MB, ge=0, le=2**20, description="hf backend: MiB of earlier "
                                 "sequences' keys and values kept for reuse (multi-turn history, shared system prompts; "
                                     "core/backends/hf_prefix.py); 0 turns reuse off")


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
    sft_decision_weight: float = Field(1.0, ge=1, le=100, description="SFT loss weight of each label's "
                                       "first token, the call-or-text decision (core/stages/train_sft_loss.py); "
                                       "1 = trl's plain token mean")
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
    # trl's vLLM rollouts for GRPO (CUDA GPUs and the gpu extra); core/stages/train_vllm.py turns these
    # into GRPOConfig's vllm_* fields and runs the server of server mode
    use_vllm: bool = Field(False, description="GRPO rollouts through vLLM instead of model.generate")
    vllm_mode: Literal["colocate", "server"] = Field("colocate", description="colocate: vLLM runs inside "
                                                     "every training process, on the training GPUs; server: "
                                                     "a separate `trl vllm-serve` on GPUs of its own")
    vllm_gpu_memory_utilization: float | None = Field(None, gt=0, le=1, description="share of each GPU's "
                                                      "memory vLLM takes: the training GPUs' (colocate, next "
                                                      "to the policy's ZeRO-3 shards) or the server's GPUs' "
                                                      "(server); None = trl's defaults, 0.3 and 0.9")
    vllm_tensor_parallel_size: int = Field(1, ge=1, le=64, description="GPUs per vLLM engine: colocate, "
                                           "a group of training processes (must divide their number); "
                                           "server, the server's GPUs (= len(vllm_server_gpus))")
    vllm_enable_sleep_mode: bool = Field(False, description="colocate: vLLM hands its weights and KV "
                                         "cache back during the optimizer step (memory, at some latency)")
    vllm_server_gpus: list[Annotated[int, Field(ge=0, le=1023)]] = Field(
        default_factory=list, description="server mode: the GPUs (numbered as this process sees them) the "
        "engine starts `trl vllm-serve` on, for the stage; training runs on the other GPUs")
    vllm_server_url: Annotated[str, AfterValidator(_server_root_url)] | None = Field(None, description="server mode: a "
                                        "running `trl vllm-serve` (http://HOST:PORT, no path: trl adds "
                                        "/health and its other routes) instead of one the engine starts")
    vllm_server_port: int = Field(8000, ge=1, le=65535, description="the port of the server the engine starts")
    vllm_server_timeout_s: float = Field(900.0, gt=0, description="how long a server may take to become "
                                         "healthy (loading an 8B model, compiling its CUDA graphs)")
    report_to: list[Literal["none", "tensorboard", "wandb"]] = Field(
        default_factory=lambda: ["none"], min_length=1, description="experiment trackers trl logs training "
        "to, and the eval stage each iteration's results (core/trackers.py; files in <run dir>/tracker/): "
        "[\"none\"], or one or both of \"tensorboard\" (the trackers extra) and \"wandb\" (offline unless "
        "WANDB_MODE or WANDB_API_KEY is set)")

    def method_for(self, iteration: int) -> str:
        return self.methods[min(iteration, len(self.methods)) - 1]

    @property
    def trackers(self) -> list[str]:
        """report_to without "none": the trackers this run logs to."""
        return [t for t in self.report_to if t != "none"]

    @field_validator("report_to", mode="before")
    @classmethod
    def _report_to_list(cls, value):
        if isinstance(value, str):  # transformers takes a bare string; a run config says it one way
            raise ValueError(f"give a list, e.g. report_to = [{json.dumps(value)[:40]}]")
        return value

    @field_validator("report_to")
    @classmethod
    def _report_to_distinct(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError(f"{value}: a tracker is named twice")
        if "none" in value and len(value) > 1:
            raise ValueError(f"{value}: \"none\" means no tracker; give it alone or leave it out")
        return value

    @model_validator(mode="after")
    def _vllm_server(self):
        if self.vllm_mode != "server":
            return self
        gpus, url = self.vllm_server_gpus, self.vllm_server_url
        if not gpus and not url:
            raise ValueError("vllm_mode = 'server' needs vllm_server_gpus (the GPUs the engine starts trl "
                             "vllm-serve on) or vllm_server_url (a server already running)")
        if gpus and url:
            raise ValueError("vllm_server_gpus starts a server and vllm_server_url names a running one: "
                             "give one of them")
        if len(set(gpus)) != len(gpus):
            raise ValueError(f"vllm_server_gpus: {gpus} names a GPU twice")
        if gpus and len(gpus) != self.vllm_tensor_parallel_size:
            raise ValueError(f"vllm_server_gpus names {len(gpus)} GPUs but vllm_tensor_parallel_size = "
                             f"{self.vllm_tensor_parallel_size}: the server runs one engine over all of its "
                             "GPUs (trl vllm-serve's data parallelism is not for dense models), so make them equal")
        return self


class ProbeSection(_Strict):
    max_new_tokens: int = Field(1024, ge=1)
    batch_size: int = Field(8, ge=1)
    label_margin_tokens: int | None = Field(None, ge=0, description="stop each batch this many tokens past "
                                            "its longest label: a longer reply cannot match it exactly. "
                                            "None = max_new_tokens only (models that think first)")
    hppl_rule: Literal["top_ppl_fill", "none"] = "top_ppl_fill"


# A served model's command (`serve = true`): vllm's OpenAI-compatible server on the host and port of
# base_url, one tensor-parallel rank per GPU it is given. core/servers.py fills in the placeholders.
DEFAULT_SERVE_COMMAND = ("vllm", "serve", "{model}", "--host", "{host}", "--port", "{port}",
                         "--tensor-parallel-size", "{gpu_count}")
SERVE_PLACEHOLDERS = frozenset({"model", "host", "port", "gpu_count"})
DEFAULT_SERVE_URL = "http://127.0.0.1:8001/v1"
_LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def _serve_command(argv: list[str]) -> list[str]:
    import string

    for arg in argv:
        try:
            names = {field for _, field, _, _ in string.Formatter().parse(arg) if field is not None}
        except ValueError as e:  # a lone { or }
            raise ValueError(f"{arg!r:.60}: {e} (write {{{{ and }}}} for literal braces)") from None
        if unknown := names - SERVE_PLACEHOLDERS:
            raise ValueError(f"{arg!r:.60}: unknown placeholder {{{sorted(unknown)[0]}}}; use "
                             f"{', '.join('{' + n + '}' for n in sorted(SERVE_PLACEHOLDERS))}")
    return argv


def _distinct(gpus: list[int]) -> list[int]:
    if len(set(gpus)) != len(gpus):
        raise ValueError("a GPU is named twice")
    return gpus


class LLMRef(_Strict):
    """A judge or generator model ([judge.llm], [expand.llm]). With `serve = true` the engine runs its
    server itself (core/servers.py): started for the stages that use it, shared by those that name the
    same server, stopped before the policy's stages need the GPUs."""
    model: str
    backend: Literal["hf", "vllm", "openai"] = "openai"
    base_url: str | None = None
    serve: bool = Field(False, description="the engine starts serve_command for the stages that use this "
                        "model and stops it before train, eval and probe; needs backend = 'openai' and a "
                        f"local base_url (default {DEFAULT_SERVE_URL})")
    serve_command: Annotated[list[str], AfterValidator(_serve_command)] = Field(
        default_factory=lambda: list(DEFAULT_SERVE_COMMAND), min_length=1,
        description="the server's argv; {model}, {host} and {port} (of base_url) and {gpu_count} "
                    "(len(serve_gpus), 1 without) are filled in")
    serve_gpus: Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1), AfterValidator(_distinct)] \
        | None = Field(None, description="the server's CUDA_VISIBLE_DEVICES; None = the core's own")
    serve_timeout_s: float = Field(900.0, gt=0, le=86400, description="how long the server may take to "
                                   "answer its health check (vllm loading a 32B model takes minutes)")

    @model_validator(mode="after")
    def _served(self):
        if not self.serve:
            return self
        if self.backend != "openai":
            raise ValueError(f"serve = true needs backend = 'openai' (the stages reach the server over "
                             f"HTTP), not {self.backend!r}")
        if self.base_url is None:
            self.base_url = DEFAULT_SERVE_URL
        from urllib.parse import urlsplit

        try:
            url = urlsplit(self.base_url)
            port = url.port
        except ValueError as e:
            raise ValueError(f"base_url: {e}") from None
        if url.scheme != "http" or url.hostname not in _LOCAL_HOSTS or not port:
            raise ValueError(f"base_url: {self.base_url!r:.80}: a served model needs http://HOST:PORT "
                             f"with HOST one of this machine's ({', '.join(sorted(_LOCAL_HOSTS))})")
        return self


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
    redraw_tools: bool = Field(False, description="procedural generator: each expansion offers its seed's "
                               "tools re-drawn from their catalog leaves (new names, parameter choices, types "
                               "and descriptions; same functions and kind) instead of the seed's docs "
                               "verbatim (off in the paper, whose generator keeps the seed's tools)")


class AssembleSection(_Strict):
    budget: int = Field(18304, ge=1)
    fresh_seeds: list[Annotated[int, Field(ge=0)]] = Field(default_factory=lambda: [5632, 2816, 1408],
                                                           description="fresh seeds in D_2, D_3, ...; "
                                                           "the last repeats")
    static: bool = False  # ablation: every D_j is fresh seed data only (same budget, same steps)
    max_error_seeds: int | None = Field(None, ge=0, description="cap on error seeds in D_{j+1}, drawn "
                                        "uniformly; None = all of them (the paper)")
    keep_text_share: bool = Field(False, description="D_{j+1} keeps at least seeds.text_fraction of text "
                                  "labels (refuse/clarify): text samples the error-driven parts left out "
                                  "replace call samples (off in the paper)")
    text_fill: Literal["mastered", "fresh"] = Field("mastered", description="keep_text_share: where the "
                                                    "text labels come from first: mastered ones of D_j "
                                                    "(highest PPL first) or unused pool seeds")

    def fresh_for(self, next_iteration: int) -> int:
        i = next_iteration - 2
        return self.fresh_seeds[min(i, len(self.fresh_seeds) - 1)] if self.fresh_seeds else 0


class EvalSection(_Strict):
    bfcl_categories: str = "non_live"
    bfcl_per_category: int | None = Field(None, ge=1, description="seeded subset per category; None = all")
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
        if self.seeds.source == "hub" and not self.seeds.hub_id:
            raise ValueError("seeds.hub_id is required when seeds.source = 'hub'")
        if self.seeds.source == "llm" and self.expand.llm is None and self.judge.llm is None:
            raise ValueError("seeds.source = 'llm' needs a generator model: set [expand.llm] (or [judge.llm])")
        if self.model.backend == "openai" and not self.model.base_url:
            raise ValueError("model.base_url is required for the openai backend")
        judge, expand = self.judge.llm, self.expand.llm
        if self.judge.kind == "llm" and judge.backend == "openai" and not (judge.base_url or self.model.base_url):
            raise ValueError("judge.llm.base_url (or model.base_url) is required for the openai backend")
        if self.expand.generator == "llm" and expand.backend == "openai" and not expand.base_url:
            raise ValueError("expand.llm.base_url is required for the openai backend")
        generator = expand or judge  # LLM seeding's (core.seeds.pool), opened like expansion's
        if self.seeds.source == "llm" and generator.backend == "openai" and not generator.base_url:
            raise ValueError("seeds.source = 'llm': the generator's base_url is required for the openai backend")
        ev = self.eval
        if ev.acebench_user_model and ev.acebench_user_backend in ("openai", "openai-chat") \
                and not ev.acebench_user_base_url:
            raise ValueError(f"eval.acebench_user_base_url is required for acebench_user_backend = "
                             f"{ev.acebench_user_backend!r}")
        return self


PRESETS = ("cpu-demo", "cpu-demo-static", "qwen3-8b-paper")


def preset_text(name: str) -> str:
    if name not in PRESETS:
        raise UserError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    return resources.files("core.presets").joinpath(f"{name}.toml").read_text()


def _out_of_int64(data: dict) -> tuple | None:
    """The key path of the first integer TOML's 64 bits cannot hold (tomllib reads any size)."""
    stack: list[tuple[tuple, object]] = [((), data)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, dict):
            stack.extend((path + (k,), v) for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((path + (i,), v) for i, v in enumerate(node))
        elif isinstance(node, int) and not isinstance(node, bool) and not _INT64[0] <= node <= _INT64[1]:
            return path
    return None


def _first_problem(e: ValidationError) -> str:
    err = e.errors()[0]
    if err["type"] == "extra_forbidden":
        return f"{key_path(err['loc'])}: unknown key"
    return f"{key_path(err['loc']) or '(top level)'}: {err['msg'].removeprefix('Value error, ')}"


def parse(text: str, where: str) -> RunConfig:
    """The validated config of TOML `text`; UserError `WHERE: key.path: what` (the module docstring)."""
    if len(text) > MAX_CONFIG_BYTES:
        raise UserError(f"{where}: {len(text)} characters, over the limit of {MAX_CONFIG_BYTES} for a run config")
    try:
        data = tomllib.loads(text)
    except RecursionError:
        raise UserError(f"{where}: not valid TOML: arrays or tables nested too deeply") from None
    except ValueError as e:  # TOMLDecodeError, and int()'s own limit on a number's digits
        raise UserError(f"{where}: not valid TOML: {' '.join(str(e).split())}") from None
    if (path := _out_of_int64(data)) is not None:
        raise UserError(f"{where}: {key_path(path)}: integer outside TOML's 64-bit range")
    try:
        cfg = RunConfig.model_validate(data)
    except ValidationError as e:
        raise UserError(f"{where}: {_first_problem(e)}") from None
    cfg._text = text
    return cfg


def load(path_or_preset: str) -> RunConfig:
    """A TOML file path, or a preset name."""
    if path_or_preset in PRESETS:
        return parse(preset_text(path_or_preset), f"preset {path_or_preset}")
    p = Path(path_or_preset)
    text = read_text(p, "config", max_bytes=MAX_CONFIG_BYTES, missing_hint=f" (presets: {', '.join(PRESETS)})")
    return parse(text, str(p))
