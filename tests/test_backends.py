"""Backends on real parts: the HF backend on the embedded model, the openai backend against a real
local HTTP server (tests/openai_compat_server.py) serving that model, prompt rendering.

vllm cannot be installed on this CPU-only machine, so the vllm backend is tested through its pure
conversion functions on stand-in objects shaped like vllm's RequestOutput / CompletionOutput.
"""
from __future__ import annotations

import asyncio
import importlib.util
import math
import socket
from types import SimpleNamespace

import pytest
import torch

from core.backends import Backend, GenParams, load_backend
from core.backends.openai import OpenAIBackend, OpenAIServerError
from core.backends.vllm import AdapterIds, VLLMBackend, sampling_kwargs, to_generation
from core.errors import UserError
from core.prompting import render, supports_tools
from openai_compat_server import CompletionServer

QUESTIONS = ["Hi", "What is 2+2?", "Write a short poem about the sea, the sky and the birds above them."]
GREEDY = GenParams(max_new_tokens=12, logprobs=True)


@pytest.fixture(scope="module")
def prompts(hf_backend) -> list[str]:
    return [render(hf_backend.tokenizer, [{"role": "user", "content": q}]) for q in QUESTIONS]


def assert_same(a, b, tol=1e-4):
    """Same text, tokens and finish reason; logprobs equal up to float noise."""
    assert (a.text, a.token_ids, a.finish_reason) == (b.text, b.token_ids, b.finish_reason)
    assert (a.logprobs is None) == (b.logprobs is None)
    if a.logprobs is not None:
        assert a.logprobs == pytest.approx(b.logprobs, abs=tol)


# -- hf ---------------------------------------------------------------------------------------

@pytest.mark.slow
def test_hf_batched_equals_unbatched(hf_backend, prompts):
    tok = hf_backend.tokenizer
    lengths = [len(tok(p)["input_ids"]) for p in prompts]
    assert len(set(lengths)) == 3, "prompts must differ in length to exercise left padding"
    batched = hf_backend.generate(prompts, GREEDY)
    for prompt, length, gen in zip(prompts, lengths, batched):
        assert gen.prompt_tokens == length  # order restored after sorting, padding not counted
        assert_same(gen, hf_backend.generate([prompt], GREEDY)[0])
    assert isinstance(hf_backend, Backend)


@pytest.mark.slow
def test_hf_logprobs_are_the_models_own_distribution(hf_backend, prompts):
    before = hf_backend.tokens_generated
    gens = hf_backend.generate(prompts, GREEDY)
    assert hf_backend.tokens_generated - before == sum(g.num_tokens for g in gens)
    eos = hf_backend.tokenizer.eos_token_id
    for prompt, gen in zip(prompts, gens):
        assert len(gen.logprobs) == gen.num_tokens > 0
        assert eos not in gen.token_ids and all(lp <= 0 for lp in gen.logprobs)
        assert math.isfinite(gen.perplexity) and gen.perplexity >= 1
        assert gen.finish_reason == ("length" if gen.num_tokens == GREEDY.max_new_tokens else "stop")
        # one plain forward pass over prompt + output gives the same per-token logprobs
        ids = hf_backend.tokenizer(prompt)["input_ids"] + gen.token_ids
        with torch.inference_mode(), hf_backend._adapter(None):
            logits = hf_backend.model_obj(torch.tensor([ids])).logits[0].float()
        start = gen.prompt_tokens
        expected = torch.log_softmax(logits[start - 1:-1], -1).gather(1, torch.tensor(gen.token_ids)[:, None])
        assert gen.logprobs == pytest.approx(expected.squeeze(1).tolist(), abs=1e-3)


@pytest.mark.slow
def test_hf_sampling_is_reproducible_with_a_seed(hf_backend, prompts):
    params = GenParams(max_new_tokens=12, temperature=1.0, top_p=0.95, seed=1234, logprobs=True)
    first, again = hf_backend.generate(prompts, params), hf_backend.generate(prompts, params)
    for a, b in zip(first, again):
        assert_same(a, b)
    other = hf_backend.generate(prompts, GenParams(max_new_tokens=12, temperature=1.0, seed=99))
    assert [g.token_ids for g in other] != [g.token_ids for g in first]


@pytest.mark.slow
def test_hf_stop_string_truncates(hf_backend, prompts):
    full = hf_backend.generate([prompts[2]], GenParams(max_new_tokens=16))[0]
    mid = len(full.text) // 2
    stop = full.text[mid:mid + 3]
    expected = full.text[:full.text.find(stop)]
    gen = hf_backend.generate([prompts[2]], GenParams(max_new_tokens=16, stop=("@@never@@", stop)))[0]
    assert gen.text == expected and gen.finish_reason == "stop"
    assert gen.token_ids == full.token_ids[:gen.num_tokens]  # keeps the token completing the stop
    assert stop in hf_backend.tokenizer.decode(gen.token_ids)
    assert stop not in hf_backend.tokenizer.decode(gen.token_ids[:-1])


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing:FutureWarning")  # peft -> transformers
def test_hf_lora_adapter_switches_weights(hf_backend, embedded_path, prompts, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = get_peft_model(AutoModelForCausalLM.from_pretrained(embedded_path),
                           LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:  # zero at init (a no-op adapter); make it matter
                param.copy_(torch.randn(param.shape, generator=gen) * 0.05)
    model.save_pretrained(tmp_path)
    del model

    base = hf_backend.generate(prompts, GREEDY)
    tuned = hf_backend.generate(prompts, GREEDY, adapter=str(tmp_path))
    assert any(a.text != b.text for a, b in zip(base, tuned))
    assert max(abs(x - y) for a, b in zip(base, tuned) for x, y in zip(a.logprobs, b.logprobs)) > 1e-2
    for a, b in zip(base, hf_backend.generate(prompts, GREEDY, adapter=None)):
        assert_same(a, b)  # adapter=None is the untouched base model again
    for a, b in zip(tuned, hf_backend.generate(prompts, GREEDY, adapter=str(tmp_path) + "/")):
        assert_same(a, b)  # cached by real path: loaded once
    assert len(hf_backend._adapters) == 1
    with pytest.raises(UserError, match="no adapter_config.json"):
        hf_backend.generate(prompts[:1], GREEDY, adapter=str(tmp_path / "missing"))


# -- openai, against a real local server --------------------------------------------------------

@pytest.fixture(scope="module")
def server(hf_backend):
    with CompletionServer(hf_backend, model_name="embedded") as srv:
        yield srv


def client(server, embedded_path, **kw) -> OpenAIBackend:
    kw = {"tokenizer": embedded_path, "backoff": 0.01, **kw}
    return OpenAIBackend("embedded", server.base_url, **kw)


@pytest.mark.slow
def test_openai_matches_hf(server, hf_backend, embedded_path, prompts):
    remote = client(server, embedded_path, concurrency=3)
    for a, b in zip(remote.generate(prompts, GREEDY), hf_backend.generate(prompts, GREEDY)):
        assert_same(a, b)
        assert a.prompt_tokens == b.prompt_tokens
    assert remote.tokens_generated > 0
    # stop strings: same text; exact ids need the server's token ids (vllm's return_token_ids)
    stop = GenParams(max_new_tokens=12, logprobs=True, stop=(" the",))
    exact = client(server, embedded_path, extra_body={"return_token_ids": True})
    for a, b in zip(exact.generate(prompts, stop), hf_backend.generate(prompts, stop)):
        assert_same(a, b)


@pytest.mark.slow
def test_openai_sync_generate_inside_running_loop(server, embedded_path, prompts):
    remote = client(server, embedded_path)
    params = GenParams(max_new_tokens=6)

    async def main():
        return remote.generate(prompts[:2], params), await remote.agenerate(prompts[:2], params)

    inside, awaited = asyncio.run(main())
    assert [g.text for g in inside] == [g.text for g in awaited]


@pytest.mark.slow
def test_openai_retries_503_then_succeeds(server, embedded_path, prompts):
    server.fail_next(2, status=503)
    before = server.requests
    gen = client(server, embedded_path, max_retries=4).generate(prompts[:1], GenParams(max_new_tokens=4))[0]
    assert server.requests - before == 3 and gen.num_tokens > 0
    server.fail_next(2, status=503, message="still warming up")
    with pytest.raises(OpenAIServerError, match="gave up after 2 attempts.*503.*still warming up"):
        client(server, embedded_path, max_retries=1).generate(prompts[:1], GenParams(max_new_tokens=4))


@pytest.mark.slow
def test_openai_client_errors_are_not_retried(server, embedded_path, prompts):
    before = server.requests
    with pytest.raises(OpenAIServerError, match="HTTP 400: max_tokens must be at least 1") as err:
        client(server, embedded_path).generate(prompts[:1], GenParams(max_new_tokens=0))
    assert err.value.status == 400 and server.requests - before == 1
    with pytest.raises(OpenAIServerError, match="HTTP 404: The model `nope` does not exist"):
        client(server, embedded_path).generate(prompts[:1], GenParams(max_new_tokens=2), adapter="nope")


@pytest.mark.slow
def test_openai_timeout_is_honoured(server, embedded_path, prompts):
    server.stall_next(2, seconds=1.0)
    before = server.requests
    remote = client(server, embedded_path, timeout=0.2, max_retries=1)
    with pytest.raises(OpenAIServerError, match=r"gave up after 2 attempts; last: no response within 0.2 s"):
        remote.generate(prompts[:1], GenParams(max_new_tokens=2))
    assert server.requests - before == 2


@pytest.mark.slow
def test_openai_connect_error_is_retried_then_reported(embedded_path, prompts):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    remote = OpenAIBackend("embedded", f"http://127.0.0.1:{port}", tokenizer=embedded_path,
                           max_retries=2, backoff=0.01)
    assert remote.base_url.endswith("/v1")
    with pytest.raises(OpenAIServerError, match="gave up after 3 attempts; last: ConnectError"):
        remote.generate(prompts[:1], GenParams(max_new_tokens=2))


def test_load_backend_openai_and_unknown():
    backend = load_backend("openai", "m", base_url="http://127.0.0.1:1/v1/", api_key="k")
    assert (backend.name, backend.base_url, backend.api_key) == ("openai", "http://127.0.0.1:1/v1", "k")
    with pytest.raises(UserError, match="unknown backend"):
        load_backend("tgi", "m")


# -- vllm (not installable here: CPU-only machine) ----------------------------------------------

@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed")
def test_vllm_missing_is_a_user_error():
    with pytest.raises(UserError, match=r"pip install 'looptool\[gpu\]'"):
        VLLMBackend("embedded")
    with pytest.raises(UserError, match="gpu extra"):
        load_backend("vllm", "embedded")


def test_vllm_sampling_kwargs():
    assert sampling_kwargs(GenParams(max_new_tokens=8)) == {"max_tokens": 8, "temperature": 0.0, "top_p": 1.0}
    sampled = GenParams(max_new_tokens=5, temperature=0.7, top_p=0.9, seed=3, logprobs=True, stop=("\n",))
    assert sampling_kwargs(sampled) == {"max_tokens": 5, "temperature": 0.7, "top_p": 0.9, "seed": 3,
                                        "stop": ["\n"], "logprobs": 1}


def _request_output(token_ids, finish_reason, logprobs=True):
    """Stand-in for vllm's RequestOutput with one CompletionOutput (logprobs=1: top-1 + sampled)."""
    per_pos = None
    if logprobs:
        per_pos = [{t: SimpleNamespace(logprob=-0.1 * (i + 1), rank=2, decoded_token="x"),
                    999: SimpleNamespace(logprob=-0.01, rank=1, decoded_token="y")}
                   for i, t in enumerate(token_ids)]
    out = SimpleNamespace(index=0, text="hello", token_ids=list(token_ids), logprobs=per_pos,
                          finish_reason=finish_reason, stop_reason=None, cumulative_logprob=None)
    return SimpleNamespace(request_id="0", prompt="p", prompt_token_ids=[1, 2, 3, 4], outputs=[out],
                           finished=True)


def test_vllm_output_conversion():
    gen = to_generation(_request_output([10, 11, 2], "stop"), eos_token_ids={2})
    assert (gen.text, gen.token_ids, gen.finish_reason, gen.prompt_tokens) == ("hello", [10, 11], "stop", 4)
    assert gen.logprobs == pytest.approx([-0.1, -0.2])  # the chosen token's, eos dropped
    gen = to_generation(_request_output([10, 11, 12], "length", logprobs=False), eos_token_ids={2})
    assert (gen.token_ids, gen.finish_reason, gen.logprobs) == ([10, 11, 12], "length", None)


def test_vllm_adapter_ids_are_stable(tmp_path):
    ids = AdapterIds()
    a, b = ids.get(str(tmp_path / "a")), ids.get(str(tmp_path / "b"))
    assert a == ids.get(str(tmp_path / "a") + "/") and a != b and min(a[1], b[1]) > 0


# -- prompting --------------------------------------------------------------------------------

TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
TOOL_TEMPLATE = ("{% if tools %}<tools>{% for t in tools %}{{ t['function']['name'] }};{% endfor %}</tools>"
                 "{% endif %}{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}"
                 "{% if add_generation_prompt %}<assistant>{% endif %}")


@pytest.mark.slow
def test_render_smollm2(hf_backend):
    tok, msgs = hf_backend.tokenizer, [{"role": "user", "content": "Hi"}]
    text = render(tok, msgs)
    assert "<|im_start|>user\nHi<|im_end|>" in text and text.endswith("<|im_start|>assistant\n")
    assert not render(tok, msgs, add_generation_prompt=False).endswith("assistant\n")
    assert supports_tools(tok) is False
    assert render(tok, msgs, tools=TOOLS) == text  # a ChatML template without tools ignores them


@pytest.mark.slow
def test_render_with_tools(embedded_path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(embedded_path)
    tok.chat_template = TOOL_TEMPLATE
    msgs = [{"role": "user", "content": "Weather in Paris?"}]
    assert supports_tools(tok) is True
    assert render(tok, msgs, tools=TOOLS) == "<tools>get_weather;</tools><user>Weather in Paris?<assistant>"
    assert render(tok, msgs) == "<user>Weather in Paris?<assistant>"
    assert supports_tools(SimpleNamespace(chat_template={"default": "x", "tool_use": "{{ tools }}"}))
    assert not supports_tools(SimpleNamespace(chat_template=None))
