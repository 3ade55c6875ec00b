"""The vllm backend: the offline ``vllm.LLM`` engine, LoRA adapters via ``LoRARequest`` (no merging).

vllm is an optional GPU dependency (``pip install 'looptool[gpu]'``, pinned to SUPPORTED_VLLM: the range
trl 1.16 supports, the one its GRPO rollouts and this backend were checked against) and is imported
lazily, inside `VLLMBackend.__init__`. What the backend hands vllm is built by pure functions over plain
values, unit-tested on machines without it: `engine_kwargs` (``vllm.LLM``), `sampling_kwargs`
(``vllm.SamplingParams``), `to_generation` (``RequestOutput`` -> `Generation`), `shutdown_engine`.

The API used, as vLLM documents it for those releases:
* ``LLM(model, tensor_parallel_size, gpu_memory_utilization, max_model_len, enable_prefix_caching,
  enable_lora, max_lora_rank, max_loras, logprobs_mode, seed)``; the engine's tokenizer through
  ``get_tokenizer()``, its limits through ``llm_engine.vllm_config``.
* Prefix caching on: BFCL's multi-turn steps resend their whole history, the probe's prompts share the
  system prompt and tool list; vLLM reuses the KV cache of a shared prefix across requests.
* ``SamplingParams(max_tokens, temperature, top_p, seed, stop, logprobs)``: temperature 0 is greedy;
  ``logprobs=N`` returns the N most likely tokens per position and always the sampled one ("up to
  logprobs+1 elements"), so the sampled token's logprob is always there; ``logprobs_mode =
  "raw_logprobs"`` reports the model's distribution before temperature and top-p, the quantity the hf
  backend reports and perplexity needs.
* ``LLM.generate(prompts, sampling_params, lora_request=LoRARequest(name, int_id, path),
  use_tqdm=False)``: one ``LoRARequest`` per adapter directory, ``lora_int_id`` > 0 and unique per
  adapter (vLLM tells adapters apart by name and id), so switching the adapter between calls hot-swaps
  it (at most `max_loras` resident at once) without rebuilding the engine.
* Freeing the engine between stages: vLLM's engine core runs in its own process; shutting it down ends
  that process and its GPU memory with it (`shutdown_engine`), after which the caller's references are
  dropped and CUDA's cache is emptied.

Token ids: a trailing eos token that vllm keeps in ``token_ids`` is dropped (with its logprob), so
the three backends count the same generated tokens.
"""
from __future__ import annotations

import gc
import logging
import os
from collections.abc import Iterable

from core.backends.base import GenParams, Generation
from core.errors import UserError

log = logging.getLogger("looptool.vllm")

SUPPORTED_VLLM = ">=0.22.0,<=0.31.0"  # pyproject.toml's gpu extra says the same (tests check it)
MISSING_VLLM = "the vllm backend needs the gpu extra: pip install 'looptool[gpu]'"


def sampling_kwargs(params: GenParams) -> dict:
    """Keyword arguments for ``vllm.SamplingParams`` equivalent to `params`.

    temperature 0 is vllm's greedy mode; ``logprobs=1`` returns the top-1 token and always the sampled
    one (0 would return the sampled one alone; the top-1 costs nothing and shows what greedy would pick).
    """
    kwargs = {
        "max_tokens": params.max_new_tokens,
        "temperature": max(0.0, params.temperature),
        "top_p": params.top_p if not params.greedy else 1.0,
    }
    if params.seed is not None:
        kwargs["seed"] = params.seed
    if params.stop:
        kwargs["stop"] = list(params.stop)
    if params.logprobs:
        kwargs["logprobs"] = 1
    return kwargs


def engine_kwargs(model: str, tensor_parallel_size: int = 1, gpu_memory_utilization: float = 0.85,
                  max_model_len: int | None = None, enable_lora: bool = False, max_lora_rank: int = 64,
                  max_loras: int = 1, enable_prefix_caching: bool = True, **extra) -> dict:
    """Keyword arguments for ``vllm.LLM``: the engine on `tensor_parallel_size` GPUs taking
    `gpu_memory_utilization` of each (weights, activations, KV cache), a context of `max_model_len`
    tokens (None: the model's own, often far more than the KV cache holds), prefix caching on, logprobs
    of the raw distribution; LoRA slots for `max_loras` adapters of rank up to `max_lora_rank` when
    `enable_lora`. `extra` goes to ``vllm.LLM`` unchanged (any of vLLM's EngineArgs)."""
    if not 0 < gpu_memory_utilization <= 1:
        raise UserError(f"vllm: gpu_memory_utilization must be in (0, 1], got {gpu_memory_utilization}")
    if tensor_parallel_size < 1:
        raise UserError(f"vllm: tensor_parallel_size must be at least 1, got {tensor_parallel_size}")
    kwargs = dict(model=model, tensor_parallel_size=tensor_parallel_size,
                  gpu_memory_utilization=gpu_memory_utilization, enable_prefix_caching=enable_prefix_caching,
                  logprobs_mode="raw_logprobs", enable_lora=enable_lora)
    if max_model_len is not None:
        kwargs["max_model_len"] = max_model_len
    if enable_lora:
        kwargs.update(max_lora_rank=max_lora_rank, max_loras=max_loras)
    return {**kwargs, **extra}


def check_version(version: str) -> None:
    """Warn when the installed vllm is outside SUPPORTED_VLLM (it may still work; nothing here checked it)."""
    from packaging.specifiers import SpecifierSet
    from packaging.version import InvalidVersion, Version

    try:
        ok = Version(Version(version).base_version) in SpecifierSet(SUPPORTED_VLLM)  # "0.24.0+cu129" -> 0.24.0
    except InvalidVersion:
        ok = False
    if not ok:
        log.warning("vllm %s is outside the range this backend and trl's rollouts were checked against (%s)",
                    version, SUPPORTED_VLLM)


def shutdown_engine(llm) -> None:
    """End a ``vllm.LLM``'s engine and what holds its GPU memory. vLLM's engine core runs in a process of
    its own, which its client's ``shutdown()`` ends; a release with ``LLM.shutdown()`` does the same
    through it. The model-parallel groups of an in-process engine are torn down too."""
    shutdown = getattr(llm, "shutdown", None)
    if not callable(shutdown):
        engine = getattr(llm, "llm_engine", None)
        shutdown = getattr(engine, "shutdown", None) or getattr(getattr(engine, "engine_core", None), "shutdown", None)
    if callable(shutdown):
        shutdown()
    try:
        from vllm.distributed.parallel_state import destroy_distributed_environment, destroy_model_parallel
    except ImportError:
        return
    destroy_model_parallel()
    destroy_distributed_environment()


def to_generation(request_output, eos_token_ids: Iterable[int] = ()) -> Generation:
    """Turn one vllm ``RequestOutput`` (its first ``CompletionOutput``) into a `Generation`.

    Reads ``prompt_token_ids`` and ``outputs[0].{text, token_ids, logprobs, finish_reason}``, where
    ``logprobs`` is a list (one per position) of ``{token_id: Logprob(logprob=...)}`` dicts; the
    chosen token's entry is always present.
    """
    out = request_output.outputs[0]
    tokens = list(out.token_ids)
    logprobs = None
    if out.logprobs is not None:
        logprobs = [_logprob_value(pos[tok]) for pos, tok in zip(out.logprobs, tokens)]
    eos = set(eos_token_ids)
    if tokens and tokens[-1] in eos and out.finish_reason == "stop":
        tokens = tokens[:-1]
        logprobs = logprobs[:len(tokens)] if logprobs is not None else None
    return Generation(
        text=out.text,
        token_ids=tokens,
        logprobs=logprobs,
        finish_reason="length" if out.finish_reason == "length" else "stop",
        prompt_tokens=len(request_output.prompt_token_ids or []),
    )


def _logprob_value(entry) -> float:
    """vllm's ``Logprob`` object, or a bare float in older/other shapes."""
    return float(getattr(entry, "logprob", entry))


def _eos_ids(model: str, tokenizer) -> set[int]:
    """The tokenizer's eos id plus the generation config's (vllm stops on all of them)."""
    ids = {tokenizer.eos_token_id}
    try:
        from transformers import GenerationConfig

        eos = GenerationConfig.from_pretrained(model).eos_token_id
        ids |= set(eos if isinstance(eos, list) else [eos])
    except (OSError, ValueError):
        pass  # no generation_config.json
    return ids - {None}


class AdapterIds:
    """Stable (name, positive int id) per LoRA adapter path, as ``LoRARequest`` needs."""

    def __init__(self):
        self._ids: dict[str, int] = {}

    def get(self, path: str) -> tuple[str, int]:
        key = os.path.realpath(path)
        if key not in self._ids:
            self._ids[key] = len(self._ids) + 1  # vllm requires lora_int_id > 0
        return f"adapter{self._ids[key]}", self._ids[key]


class VLLMBackend:
    """``vllm.LLM`` behind the `Backend` interface; the engine's arguments are `engine_kwargs`'s."""

    name = "vllm"

    def __init__(self, model: str, tensor_parallel_size: int = 1, gpu_memory_utilization: float = 0.85,
                 max_model_len: int | None = None, enable_lora: bool = False, max_lora_rank: int = 64,
                 **engine_options):
        try:
            import vllm
        except ImportError:
            raise UserError(MISSING_VLLM) from None
        check_version(getattr(vllm, "__version__", "0"))
        self._vllm = vllm
        self.model = model
        self.enable_lora = enable_lora
        self.tokens_generated = 0
        self._adapter_ids = AdapterIds()
        self.llm = vllm.LLM(**engine_kwargs(model, tensor_parallel_size, gpu_memory_utilization, max_model_len,
                                            enable_lora, max_lora_rank, **engine_options))
        config = getattr(getattr(self.llm, "llm_engine", None), "vllm_config", None)
        # hints for callers that chunk work (evals/bfcl.py): context length and parallel lanes
        self.max_context = max_model_len or getattr(getattr(config, "model_config", None), "max_model_len", None)
        self.batch_size = getattr(getattr(config, "scheduler_config", None), "max_num_seqs", None) or 256
        tok = self.llm.get_tokenizer()
        self._tokenizer = tok
        self._eos_ids = _eos_ids(model, tok)

    @property
    def tokenizer(self):
        return self._tokenizer

    def generate(self, prompts: list[str], params: GenParams, adapter: str | None = None
                 ) -> list[Generation]:
        """One Generation per prompt, in order; `adapter` is a LoRA directory (None = base)."""
        if not prompts:
            return []
        sampling = self._vllm.SamplingParams(**sampling_kwargs(params))
        outputs = self.llm.generate(prompts, sampling, lora_request=self._lora_request(adapter),
                                    use_tqdm=False)
        gens = [to_generation(o, self._eos_ids) for o in outputs]
        self.tokens_generated += sum(g.num_tokens for g in gens)
        return gens

    def _lora_request(self, adapter: str | None):
        if adapter is None:
            return None
        if not self.enable_lora:
            raise UserError("LoRA adapters on the vllm backend need enable_lora=True")
        from vllm.lora.request import LoRARequest

        from core.backends.hf import adapter_dir

        path = adapter_dir(adapter)
        name, int_id = self._adapter_ids.get(path)
        return LoRARequest(name, int_id, path)

    def close(self) -> None:
        """Shut the engine down and release its GPU memory (`shutdown_engine`); safe to call twice."""
        llm, self.llm = self.llm, None
        if llm is None:
            return
        try:
            shutdown_engine(llm)
        finally:
            del llm
            gc.collect()
            try:
                import torch

                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
            except ImportError:  # pragma: no cover
                pass
