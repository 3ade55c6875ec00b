"""The simulated user of ``agent_multi_turn`` (reference/acebench.md §6).

The simulator sees its instruction (the entry's ``question``) in a phone or travel system prompt, then a
fixed greeting from the agent, and writes the user's first line; after that every agent message that is
not a call reaches it and it answers with one line. Upstream keeps the simulator's own turns under role
"system" and the agent's under "user"; here they are "assistant" and "user", so any chat template renders
them. Upstream's default simulator is gpt-4o (temperature ~0); scores are comparable with the leaderboard
only with a simulator of that class, so the simulator is recorded with every result.

Any backend can play the user: the evaluated model itself (the default), another local model on hf/vllm,
an OpenAI-compatible ``/v1/completions`` server (``openai``), or a ``/v1/chat/completions`` server
(``openai-chat``, e.g. gpt-4o).
"""
from __future__ import annotations

from core.backends import GenParams
from core.errors import UserError
from evals.acebench import prompts

USER_BACKENDS = ("hf", "vllm", "openai", "openai-chat")


def _drop_prefix(text: str) -> str:
    for p in ("user:", "agent:"):
        if text.startswith(p):
            return text[len(p):]
    return text


class UserConversation:
    def __init__(self, instruction: str, involved_classes: list[str]):
        self.messages = [{"role": "system", "content": prompts.simulator_system(instruction, involved_classes)},
                         {"role": "user", "content": prompts.GREETING}]

    def add_own(self, text: str) -> None:
        self.messages.append({"role": "assistant", "content": text})

    def add_agent(self, text: str) -> None:
        self.messages.append({"role": "user", "content": _drop_prefix(text)})


def sim_params(max_new_tokens: int, seed: int) -> GenParams:
    return GenParams(max_new_tokens=max_new_tokens, temperature=0.0, seed=seed)


def build(cfg, agent_backend):
    """-> (generator for simulator turns, backend to close or None, description for the records)."""
    from evals.acebench.gen import ChatCompletions, Generator

    params = sim_params(cfg.user_max_new_tokens, cfg.seed)
    if cfg.user_model is None:
        desc = {"model": cfg.model, "backend": cfg.backend, "same_as_agent": True}
        return Generator(agent_backend, params, adapter=cfg.adapter), None, desc
    backend = cfg.user_backend or "hf"
    if backend not in USER_BACKENDS:
        raise UserError(f"--user-backend: unknown backend {backend!r}; choose {', '.join(USER_BACKENDS)}")
    desc = {"model": cfg.user_model, "backend": backend, "base_url": cfg.user_base_url, "same_as_agent": False}
    if backend in ("openai", "openai-chat") and not cfg.user_base_url:
        raise UserError(f"--user-backend {backend} needs --user-base-url (e.g. http://127.0.0.1:8000/v1)")
    if backend == "openai-chat":
        return ChatCompletions(cfg.user_model, cfg.user_base_url, params), None, desc
    from core.backends import load_backend
    from core.models import resolve

    if backend == "openai":
        try:
            tok = resolve(cfg.user_model).path
        except UserError:
            tok = cfg.user_model
        engine = load_backend("openai", cfg.user_model, base_url=cfg.user_base_url, tokenizer=tok)
    else:
        engine = load_backend(backend, resolve(cfg.user_model).path)
    return Generator(engine, params), engine, desc
