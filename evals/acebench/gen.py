"""Generating replies for ACEBench: the model under test, and the user simulator.

:class:`Generator` renders chat messages through the backend's own chat template
(:func:`core.prompting.render`) and generates in one batch; prompts longer than the model's context
(minus the reply budget, or ``max_prompt_tokens``) are not sent and come back as None.
:class:`ChatCompletions` is a simulator for an OpenAI-compatible ``/v1/chat/completions`` endpoint
(e.g. gpt-4o, the upstream default), where the server applies its own template.
"""
from __future__ import annotations

import os
import time

from core.backends import GenParams
from core.errors import UserError
from core.prompting import render


def context_limit(backend) -> int:
    model = getattr(backend, "model_obj", None)
    n = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    if n is None:
        n = getattr(backend, "max_context", None) or getattr(backend.tokenizer, "model_max_length", 0)
    return int(n) if n and n < 10**7 else 32768


class Generator:
    def __init__(self, backend, params: GenParams, adapter: str | None = None,
                 max_prompt_tokens: int | None = None):
        self.backend, self.params, self.adapter = backend, params, adapter
        self.tokens, self.seconds = 0, 0.0
        self.limit = context_limit(backend) - params.max_new_tokens
        if max_prompt_tokens is not None:
            self.limit = min(self.limit, max_prompt_tokens)

    def __call__(self, conversations: list[tuple[list[dict], list | None]]) -> list[str | None]:
        prompts = [render(self.backend.tokenizer, msgs, tools) for msgs, tools in conversations]
        fits = [len(self.backend.tokenizer(p, add_special_tokens=False)["input_ids"]) <= self.limit for p in prompts]
        todo = [p for p, ok in zip(prompts, fits) if ok]
        t = time.perf_counter()
        outs = iter(self.backend.generate(todo, self.params, adapter=self.adapter) if todo else [])
        self.seconds += time.perf_counter() - t
        texts: list[str | None] = []
        for ok in fits:
            if ok:
                g = next(outs)
                self.tokens += g.num_tokens
                texts.append(g.text)
            else:
                texts.append(None)
        return texts


class ChatCompletions:
    """A user simulator behind an OpenAI-compatible chat endpoint; the key comes from $OPENAI_API_KEY
    when the server needs one."""

    def __init__(self, model: str, base_url: str, params: GenParams, timeout: float = 120.0, retries: int = 3):
        import httpx

        headers = {}
        key = os.environ.get("OPENAI_API_KEY")
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self.model, self.params, self.retries = model, params, retries
        self.client = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout, headers=headers)
        self.tokens, self.seconds = 0, 0.0

    def __call__(self, conversations: list[tuple[list[dict], list | None]]) -> list[str | None]:
        return [self._one(msgs) for msgs, _ in conversations]

    def _one(self, messages: list[dict]) -> str:
        import httpx

        body = {"model": self.model, "messages": messages, "max_tokens": self.params.max_new_tokens,
                "temperature": self.params.temperature, "top_p": self.params.top_p}
        if self.params.seed is not None:
            body["seed"] = self.params.seed
        err = None
        for attempt in range(self.retries):
            t = time.perf_counter()
            try:
                r = self.client.post("/chat/completions", json=body)
                self.seconds += time.perf_counter() - t
                if r.status_code == 200:
                    data = r.json()
                    self.tokens += (data.get("usage") or {}).get("completion_tokens", 0)
                    return data["choices"][0]["message"]["content"] or ""
                err = f"HTTP {r.status_code}: {r.text[:200]}"
                if r.status_code < 500 and r.status_code != 429:
                    break
            except (httpx.HTTPError, ValueError, KeyError, IndexError) as e:
                err = f"{type(e).__name__}: {e}"
            time.sleep(min(2 ** attempt, 10))
        raise UserError(f"user simulator {self.model} at {self.client.base_url}: {err}")

    def close(self) -> None:
        self.client.close()
