"""The openai backend: any OpenAI-compatible server's **/v1/completions** endpoint (e.g. ``vllm serve``).

Raw, already-rendered prompt strings go to ``/v1/completions`` (not ``/chat/completions``), so the
server sees exactly the prompt the hf and vllm backends see. One request per prompt, at most
`concurrency` in flight (an ``asyncio.Semaphore``); connect errors, timeouts, 429 and 5xx are retried
with exponential backoff and jitter (``Retry-After`` honoured), any other 4xx fails at once with the
server's own message.

Token ids: the standard completions response carries none. When the server returns a ``token_ids``
list per choice (vllm's ``return_token_ids`` extension, enable it with
``extra_body={"return_token_ids": True}``) it is used as is; otherwise the returned text is re-encoded
with the tokenizer -- an approximation that can differ from the sampled ids and leaves out the tokens
of a stop string. Logprobs always come from the server (``choices[i].logprobs.token_logprobs``).
"""
from __future__ import annotations

import asyncio
import os
import random
from concurrent.futures import ThreadPoolExecutor

import httpx

from core.backends.base import GenParams, Generation
from core.errors import UserError

RETRY_STATUS = 429  # plus every 5xx
MAX_BACKOFF_S = 30.0


class OpenAIServerError(UserError):
    """The server refused a request (non-retryable 4xx) or kept failing after all retries."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class OpenAIBackend:
    """An OpenAI-compatible completions server behind the `Backend` interface.

    `model` is the served model name; `adapter` (in `generate`) is sent as the model name instead,
    so serve LoRA adapters under their path, e.g. ``vllm serve BASE --enable-lora --lora-modules
    /path/to/adapter=/path/to/adapter``. `tokenizer` names the Hugging Face tokenizer used to render
    prompts and re-encode outputs (defaults to `model`). `backoff` is the first retry delay in seconds.
    """

    name = "openai"

    def __init__(self, model: str, base_url: str, api_key: str | None = None, tokenizer: str | None = None,
                 concurrency: int = 8, timeout: float = 120, max_retries: int = 4, backoff: float = 0.5,
                 extra_body: dict | None = None):
        self.model = model
        url = base_url.rstrip("/")
        self.base_url = url if url.endswith("/v1") else url + "/v1"
        self.api_key = api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY"
        self.tokenizer_name = tokenizer or model
        self.concurrency = max(1, int(concurrency))
        self.batch_size = self.concurrency  # a hint for callers that chunk work (evals/bfcl.py)
        self.timeout = float(timeout)
        self.max_retries = max(0, int(max_retries))
        self.backoff = float(backoff)
        self.extra_body = dict(extra_body or {})
        self.tokens_generated = 0
        self._tokenizer = None

    @property
    def tokenizer(self):
        """The Hugging Face tokenizer, loaded on first use."""
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            try:
                self._tokenizer = AutoTokenizer.from_pretrained(self.tokenizer_name)
            except (OSError, ValueError) as e:
                raise UserError(
                    f"openai backend: cannot load tokenizer {self.tokenizer_name!r} ({e}); "
                    "pass tokenizer= a local Hugging Face checkpoint or cached hub id"
                ) from None
        return self._tokenizer

    # -- public API ---------------------------------------------------------------------------

    def generate(self, prompts: list[str], params: GenParams, adapter: str | None = None
                 ) -> list[Generation]:
        """Blocking wrapper around `agenerate` (uses a private loop in a thread inside a running loop)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.agenerate(prompts, params, adapter))
        with ThreadPoolExecutor(max_workers=1) as pool:
            return pool.submit(asyncio.run, self.agenerate(prompts, params, adapter)).result()

    async def agenerate(self, prompts: list[str], params: GenParams, adapter: str | None = None
                        ) -> list[Generation]:
        """One Generation per prompt, in order; requests run concurrently (up to `concurrency`)."""
        if not prompts:
            return []
        tok = self.tokenizer  # load before any request: a missing tokenizer fails fast
        semaphore = asyncio.Semaphore(self.concurrency)
        headers = {"Authorization": f"Bearer {self.api_key}"}
        limits = httpx.Limits(max_connections=self.concurrency)
        async with httpx.AsyncClient(timeout=self.timeout, headers=headers, limits=limits) as client:

            async def one(prompt: str) -> dict:
                async with semaphore:
                    return await self._post(client, self._payload(prompt, params, adapter))

            try:
                async with asyncio.TaskGroup() as group:  # first failure cancels the rest
                    tasks = [group.create_task(one(p)) for p in prompts]
            except BaseExceptionGroup as eg:
                raise eg.exceptions[0] from None
        gens = [self._to_generation(t.result(), p, tok) for t, p in zip(tasks, prompts)]
        self.tokens_generated += sum(g.num_tokens for g in gens)
        return gens

    def close(self) -> None:
        """Nothing to free: clients live only for the duration of one `agenerate` call."""
        self._tokenizer = None

    # -- requests -----------------------------------------------------------------------------

    def _payload(self, prompt: str, params: GenParams, adapter: str | None) -> dict:
        body = {
            "model": adapter or self.model,
            "prompt": prompt,
            "max_tokens": params.max_new_tokens,
            "temperature": max(0.0, params.temperature),
            "top_p": params.top_p if not params.greedy else 1.0,
            "n": 1,
            "stream": False,
        }
        if params.seed is not None:
            body["seed"] = params.seed
        if params.stop:
            body["stop"] = list(params.stop)
        if params.logprobs:
            body["logprobs"] = 1
        return {**body, **self.extra_body}

    async def _post(self, client: httpx.AsyncClient, payload: dict) -> dict:
        """POST with retries; returns the decoded JSON body or raises OpenAIServerError."""
        url = f"{self.base_url}/completions"
        for attempt in range(self.max_retries + 1):
            retry_after = None
            try:
                resp = await client.post(url, json=payload)
            except httpx.TimeoutException as e:
                problem = f"no response within {self.timeout:g} s ({type(e).__name__})"
            except httpx.TransportError as e:
                problem = f"{type(e).__name__}: {e}"
            else:
                if resp.status_code < 400:
                    try:
                        return resp.json()
                    except ValueError:
                        raise OpenAIServerError(f"{url}: response is not JSON: {resp.text[:200]!r}") from None
                problem = f"HTTP {resp.status_code}: {_server_message(resp)}"
                if resp.status_code != RETRY_STATUS and resp.status_code < 500:
                    raise OpenAIServerError(f"{url}: {problem}", status=resp.status_code)
                retry_after = _retry_after(resp)
            if attempt < self.max_retries:
                await asyncio.sleep(self._delay(attempt, retry_after))
        raise OpenAIServerError(f"{url}: gave up after {self.max_retries + 1} attempts; last: {problem}")

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        """Exponential backoff with equal jitter; a server's Retry-After is a lower bound."""
        base = min(MAX_BACKOFF_S, self.backoff * 2 ** attempt)
        delay = base / 2 + random.uniform(0, base / 2)
        return min(MAX_BACKOFF_S, max(delay, retry_after or 0.0))

    # -- responses ----------------------------------------------------------------------------

    def _to_generation(self, body: dict, prompt: str, tok) -> Generation:
        try:
            choice = body["choices"][0]
        except (KeyError, IndexError, TypeError):
            raise OpenAIServerError(f"{self.base_url}/completions: no choices in response: {body!r:.200}") from None
        text = choice.get("text") or ""
        finish = "length" if choice.get("finish_reason") == "length" else "stop"
        lp = choice.get("logprobs") or {}
        logprobs = [float(x) for x in lp["token_logprobs"]] if lp.get("token_logprobs") is not None else None
        server_ids = choice.get("token_ids")
        tokens = lp.get("tokens") or []
        # some servers keep the eos token in the ids / logprobs; the other backends drop it
        if finish == "stop" and ((server_ids and server_ids[-1] == tok.eos_token_id)
                                 or (tokens and tokens[-1] == tok.eos_token)):
            server_ids = server_ids[:-1] if server_ids else server_ids
            logprobs = logprobs[:-1] if logprobs else logprobs
        if server_ids is not None:
            ids = [int(i) for i in server_ids]
        else:
            ids = tok(text, add_special_tokens=False)["input_ids"]
        usage = body.get("usage") or {}
        prompt_tokens = usage.get("prompt_tokens")
        if prompt_tokens is None:
            prompt_tokens = len(tok(prompt)["input_ids"])
        return Generation(text=text, token_ids=ids, logprobs=logprobs, finish_reason=finish,
                          prompt_tokens=int(prompt_tokens))


def _server_message(resp: httpx.Response) -> str:
    """The error text an OpenAI-style server put in its body ({"error": {"message": ...}} etc.)."""
    try:
        data = resp.json()
    except ValueError:
        return resp.text.strip()[:500] or resp.reason_phrase
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict):
            msg = err.get("message") or err.get("detail") or data.get("detail")
            if msg:
                return str(msg)[:500]
        elif isinstance(err, str):
            return err[:500]
    return str(data)[:500]


def _retry_after(resp: httpx.Response) -> float | None:
    try:
        return float(resp.headers["retry-after"])
    except (KeyError, ValueError):
        return None
