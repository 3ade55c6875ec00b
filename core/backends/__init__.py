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


__all__ = ["Backend", "GenParams", "Generation", "load_backend", "BACKENDS"]
