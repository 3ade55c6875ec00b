"""Prefix reuse in the hf backend (core/backends/hf_prefix.py): the cache's bookkeeping on plain tensors,
and on the embedded model, replies with reuse equal to replies without it under greedy decoding."""
from __future__ import annotations

import pytest
import torch

from core.backends import GenParams
from core.backends.hf_prefix import MIN_REUSE, Hit, PrefixCache, batched_past, shared_openings


def kv(ids: list[int], heads=2, dim=4, layers=2):
    """Keys/values whose every entry is its token id, so a slice shows which tokens it holds."""
    t = torch.tensor(ids, dtype=torch.float32).view(1, 1, -1, 1).expand(1, heads, len(ids), dim).clone()
    return [(t, t.clone()) for _ in range(layers)]


def seq(n: int, start: int = 0) -> list[int]:
    return list(range(start, start + n))


def test_lookup_finds_the_longest_shared_prefix_and_leaves_a_token_to_encode():
    c = PrefixCache(10_000)
    a, b = seq(100), seq(60) + seq(40, start=1000)
    c.store(a, kv(a), None)
    c.store(b, kv(b), None)
    hit = c.lookup(seq(80) + [7, 7], None)  # shares 80 with a, 60 with b
    assert hit.n == 80 and hit.layers[0][0].shape == (1, 2, 80, 4)
    assert hit.layers[1][1][0, 0, :, 0].tolist() == seq(80)
    assert c.lookup(a, None).n == 99  # the whole prompt cached: its last token is still encoded
    assert c.lookup(seq(MIN_REUSE - 1) + [5000] * 50, None).n == 0  # too short a match to pay


def test_cache_is_per_adapter():
    c = PrefixCache(10_000)
    a = seq(100)
    c.store(a, kv(a), "/adapters/one")
    assert c.lookup(a + [1], None).n == 0
    assert c.lookup(a + [1], "/adapters/two").n == 0
    assert c.lookup(a + [1], "/adapters/one").n == 100


def test_budget_evicts_least_recently_used_and_a_grown_sequence_replaces_its_prefix():
    c = PrefixCache(250)
    a, b = seq(100), seq(100, start=500)
    c.store(a, kv(a), None)
    c.store(b, kv(b), None)
    c.lookup(a + [1], None)  # a is now the most recently used
    d = seq(100, start=2000)
    c.store(d, kv(d), None)
    assert c.size == 200 and c.lookup(b + [1], None).n == 0 and c.lookup(a + [1], None).n == 100
    longer = a + seq(50, start=9000)  # the next step of a's conversation
    c.store(longer, kv(longer), None)
    assert c.size == 250 and len(c._entries) == 2
    assert c.lookup(longer + [1], None).n == 150
    c.store(seq(300), kv(seq(300)), None)  # larger than the whole budget: not kept
    assert c.size == 250
    assert PrefixCache(0).lookup(a + [1], None).n == 0 and not PrefixCache(0).enabled


def test_batched_past_pads_each_row_before_its_prefix_and_before_its_suffix():
    hits = [Hit(3, [(torch.ones(1, 1, 3, 1), torch.ones(1, 1, 3, 1))]), Hit(0, None)]
    ids, mask, layers = batched_past(hits, [[7, 8], [5, 6, 9]], pad_id=0)
    assert mask.tolist() == [[1, 1, 1, 0, 1, 1], [0, 0, 0, 1, 1, 1]]
    assert ids[:, 3:].tolist() == [[0, 7, 8], [5, 6, 9]]
    (k, v), = layers
    assert k.shape == (2, 1, 3, 1) and k[0].sum() == 3 and k[1].sum() == 0
    # positions transformers derives from the mask: each real token keeps its place in its own sequence
    pos = mask.cumsum(-1) - 1
    assert pos[0, 4:].tolist() == [3, 4] and pos[1, 3:].tolist() == [0, 1, 2]
    _, _, none = batched_past([Hit(0, None)] * 2, [[1], [2, 3]], pad_id=0)
    assert none is None


# -- on the embedded model -------------------------------------------------------------------

@pytest.mark.slow
def test_replies_with_reuse_equal_replies_without(embedded_path):
    """Three steps of four conversations (the multi-turn shape: each step re-sends the history plus a
    new message) that share a long system prompt, greedy, float32: same texts and tokens, logprobs equal
    up to float noise, and the cached backend encodes far fewer prompt tokens."""
    from core.backends.hf import HFBackend

    # long enough (> MIN_SHARED tokens) that the first step encodes the shared opening once
    system = {"role": "system", "content": "You call tools to answer. Reply with a JSON call or with text. " * 25}
    arms = {}
    for cached in (False, True):
        b = HFBackend(embedded_path, device="cpu", dtype="float32", batch_size=4,
                      prefix_cache_mb=1024 if cached else 0)
        convs = [[system, {"role": "user", "content": f"Book table {i} for {i + 2} people at {i + 7} pm."}]
                 for i in range(4)]
        steps = []
        for step in range(3):
            prompts = [b.tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True)
                       for c in convs]
            gens = b.generate(prompts, GenParams(max_new_tokens=12, logprobs=True))
            steps.append(gens)
            for c, g in zip(convs, gens):
                c += [{"role": "assistant", "content": g.text},
                      {"role": "user", "content": f"Result of step {step}: ok. What next?"}]
        arms[cached] = (steps, b.tokens_prefilled, b.tokens_reused)
        b.close()
    (plain, pre0, re0), (cached, pre1, re1) = arms[False], arms[True]
    for a_step, b_step in zip(plain, cached):
        for a, b in zip(a_step, b_step):
            assert (a.text, a.token_ids, a.finish_reason, a.prompt_tokens) == \
                (b.text, b.token_ids, b.finish_reason, b.prompt_tokens)
            assert a.logprobs == pytest.approx(b.logprobs, abs=1e-4)
    assert re0 == 0 and re1 + pre1 >= pre0  # every prompt token either encoded or reused
    assert pre1 * 3 < pre0, (pre0, pre1)


def test_shared_openings_are_each_prompts_longest_prefix_shared_with_another():
    base = seq(300)
    prompts = [base + [1, 2], base + [1, 3], seq(400, start=5000) + [9], seq(400, start=5000) + [8], [4] * 500]
    assert shared_openings(prompts) == [base + [1], seq(400, start=5000)]
    assert shared_openings([seq(200) + [1], seq(200) + [2]]) == []  # shorter than MIN_SHARED
    assert shared_openings([seq(300), seq(300)]) == [seq(299)]  # each sharer keeps a token of its own
