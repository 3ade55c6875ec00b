"""Render chat messages (and tool schemas) into prompt strings with the model's own chat template.

Every backend receives these already-rendered strings, so hf, vllm and openai (``/v1/completions``)
see byte-identical prompts.
"""
from __future__ import annotations


def render(
    tokenizer,
    messages: list[dict],
    tools: list[dict] | None = None,
    add_generation_prompt: bool = True,
) -> str:
    """Render `messages` into one prompt string via ``tokenizer.apply_chat_template``.

    `tools` (JSON-schema function definitions) are handed to the template when given. A template
    that does not reference tools silently ignores them; check `supports_tools` first when the
    tool list must appear in the prompt.
    """
    kwargs = {"tokenize": False, "add_generation_prompt": add_generation_prompt}
    if tools:
        kwargs["tools"] = tools
    text = tokenizer.apply_chat_template(messages, **kwargs)
    if not isinstance(text, str):  # pragma: no cover - defensive: tokenize=False returns str
        raise TypeError(f"apply_chat_template returned {type(text).__name__}, expected str")
    return text


def supports_tools(tokenizer) -> bool:
    """True when the tokenizer's chat template references a tool list.

    Templates may be one string or a dict of named templates (e.g. ``{"default": ..., "tool_use":
    ...}``); any of them mentioning ``tools`` counts. SmolLM2's plain ChatML template -> False.
    """
    template = getattr(tokenizer, "chat_template", None)
    if not template:
        return False
    sources = template.values() if isinstance(template, dict) else [template]
    return any("tools" in src for src in sources if isinstance(src, str))
