"""The one interface every inference engine implements.

Prompts are already-rendered strings (core/prompting.py renders chat messages and tools through the
model's own chat template), so hf, vllm and openai see byte-identical prompts and return the same
`Generation` records.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


# hf backend: memory for earlier sequences' keys/values kept for reuse (core/backends/hf_prefix.py). 4 GiB
# hold 180k tokens of SmolLM2-135M in bf16 (23 KiB a token), 90k in fp32: 8 multi-turn lanes of 10k tokens
PREFIX_CACHE_MB = 4096


@dataclass(frozen=True)
class GenParams:
    max_new_tokens: int = 256
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    seed: int | None = None
    logprobs: bool = False  # per-token logprobs of the sampled tokens
    stop: tuple[str, ...] = ()

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0


@dataclass
class Generation:
    text: str
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[float] | None = None  # one per generated token, when GenParams.logprobs
    finish_reason: str = "stop"  # stop | length
    prompt_tokens: int = 0

    @property
    def num_tokens(self) -> int:
        return len(self.token_ids)

    @property
    def perplexity(self) -> float | None:
        """exp(-mean token logprob) over the generated tokens (the LoopTool GCP definition)."""
        if not self.logprobs:
            return None
        return math.exp(-sum(self.logprobs) / len(self.logprobs))


@runtime_checkable
class Backend(Protocol):
    name: str  # hf | vllm | openai
    model: str  # model path or id

    def generate(
        self, prompts: list[str], params: GenParams, adapter: str | None = None
    ) -> list[Generation]:
        """One Generation per prompt, in order. `adapter` is a LoRA adapter directory."""
        ...

    @property
    def tokenizer(self):
        """The Hugging Face tokenizer whose chat template renders the prompts."""
        ...

    def close(self) -> None:
        ...
