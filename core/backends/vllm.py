"""The vllm backend: the offline ``vllm.LLM`` engine, LoRA adapters via ``LoRARequest`` (no merging).

vllm is an optional GPU dependency (``pip install 'looptool[gpu]'``) and is imported lazily, inside
`VLLMBackend.__init__`. The conversions GenParams -> SamplingParams keyword arguments and vllm
``RequestOutput`` -> `Generation` are small pure functions over plain objects, so they are unit-tested
on machines without vllm.

Logprobs: ``logprobs=1`` makes vllm report, per position, the top-1 token and always the sampled
token (``logprobs=0`` returned nothing in some older vllm releases). vllm's default
``raw_logprobs`` mode is the model's distribution before temperature / top-p, like the hf backend.
Token ids: a trailing eos token that vllm keeps in ``token_ids`` is dropped (with its logprob), so
the three backends count the same generated tokens.
"""
from __future__ import annotations

import gc
import os
from collections.abc import Iterable

from core.backends.base import GenParams, Generation
from core.errors import UserError

MISSING_VLLM = "the vllm backend needs the gpu extra: pip install 'looptool[gpu]'"


def sampling_kwargs(params: GenParams) -> dict:
    """Keyword arguments for ``vllm.SamplingParams`` equivalent to `params`.

    temperature 0 is vllm's greedy mode; ``logprobs=1`` always includes the sampled token's logprob.
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
    """``vllm.LLM`` behind the `Backend` interface. `engine_kwargs` go to ``vllm.LLM`` unchanged."""

    name = "vllm"

    def __init__(self, model: str, tensor_parallel_size: int = 1, gpu_memory_utilization: float = 0.85,
                 max_model_len: int | None = None, enable_lora: bool = False, max_lora_rank: int = 64,
                 **engine_kwargs):
        try:
            import vllm
        except ImportError:
            raise UserError(MISSING_VLLM) from None
        self._vllm = vllm
        self.model = model
        self.enable_lora = enable_lora
        self.tokens_generated = 0
        self._adapter_ids = AdapterIds()
        kwargs = dict(model=model, tensor_parallel_size=tensor_parallel_size,
                      gpu_memory_utilization=gpu_memory_utilization, enable_lora=enable_lora, **engine_kwargs)
        if max_model_len is not None:
            kwargs["max_model_len"] = max_model_len
        if enable_lora:
            kwargs["max_lora_rank"] = max_lora_rank
        self.llm = vllm.LLM(**kwargs)
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
        """Shut the engine down and release GPU memory (best effort across vllm versions)."""
        self.llm = None
        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:  # pragma: no cover
            pass
