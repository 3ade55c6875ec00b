"""Inference backends behind one interface (base.Backend): hf, vllm, openai."""
from __future__ import annotations

from core.backends.base import Backend, GenParams, Generation
from core.errors import UserError

BACKENDS = ("hf", "vllm", "openai")


def load_backend(kind: str, model: str, **options) -> Backend:
    """Build a backend by name. `model` is a resolved path/hub id (core.models.resolve)."""
    if kind == "hf":
        from core.backends.hf import HFBackend

        return HFBackend(model, **options)
    if kind == "vllm":
        from core.backends.vllm import VLLMBackend

        return VLLMBackend(model, **options)
    if kind == "openai":
        from core.backends.openai import OpenAIBackend

        return OpenAIBackend(model, **options)
    raise UserError(f"unknown backend {kind!r}: choose one of {', '.join(BACKENDS)}")


def for_run(cfg, weights) -> Backend:
    """The run's backend (cfg.model) on `weights` (core.weights.Weights), with the options every loop
    stage and the loop's evaluations use: the one place a run config becomes backend options."""
    model_cfg = cfg.model
    options = {"hf": {"device": model_cfg.device, "batch_size": cfg.probe.batch_size,
                      "prefix_cache_mb": model_cfg.prefix_cache_mb},
               "vllm": {"enable_lora": weights.adapter is not None, "max_lora_rank": cfg.train.lora_r,
                        "tensor_parallel_size": model_cfg.tensor_parallel_size,
                        "gpu_memory_utilization": model_cfg.gpu_memory_utilization,
                        "max_model_len": model_cfg.max_model_len},
               "openai": {"base_url": model_cfg.base_url}}[model_cfg.backend]
    return load_backend(model_cfg.backend, weights.model, **options)


__all__ = ["Backend", "GenParams", "Generation", "load_backend", "for_run", "BACKENDS"]
