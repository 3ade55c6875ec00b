r"""Prefix reuse for the hf backend: the KV cache of earlier sequences, kept and reused.

A multi-turn entry's next step is its previous prompt, the model's reply and the tool results, so all but
the newest few hundred tokens of a 4-10k-token prompt were already encoded one step earlier. Prompts of
one category also share their system prompt's opening. `PrefixCache` keeps, per adapter, the key/value
tensors of recently generated sequences (prompt + reply) and finds, for a new prompt, the cached sequence
sharing the longest token prefix with it. Only the rest of the prompt is then prefilled.

Rows of one batch reuse prefixes of different lengths. `batched_past` lays them out as

    [pad .. pad | cached prefix_i | pad .. pad | new suffix_i]
     \__ P - n_i                  / \__ S - s_i             /

with attention-mask zeros on the pads: transformers derives position ids from the mask's cumulative sum,
so every real token keeps the position it has in its own sequence, and the cached keys (rotary embedding
already applied at those positions) stay valid. Under greedy decoding in float32 the replies equal the
uncached path's (tests/test_prefix_cache.py).

Memory: SmolLM2-135M holds 46 KiB of keys and values per token in float32 (23 KiB in bf16); the cache keeps
at most `max_tokens` tokens in all (the backend derives it from `prefix_cache_mb`), least recently used
first out.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch

MIN_REUSE = 32  # a shorter shared prefix is re-encoded: not worth a padded cache
MIN_SHARED = 256  # prompts of one call sharing at least this many tokens encode them once (shared_openings)


@dataclass
class Hit:
    """A prompt's reusable prefix: `n` tokens whose keys/values are `layers[l] = (k, v)`, [1, h, n, d]."""
    n: int
    layers: list[tuple[torch.Tensor, torch.Tensor]] | None


class PrefixCache:
    def __init__(self, max_tokens: int):
        self.max_tokens = max(0, int(max_tokens))
        self._entries: OrderedDict[int, tuple[str | None, torch.Tensor, list]] = OrderedDict()
        self._next = 0
        self.size = 0  # tokens held
        self.reused = 0  # prompt tokens served from the cache, in all
        self.prefilled = 0  # prompt tokens encoded, in all

    @property
    def enabled(self) -> bool:
        return self.max_tokens > 0

    def clear(self) -> None:
        self._entries.clear()
        self.size = 0

    def lookup(self, ids: list[int], adapter: str | None) -> Hit:
        """The longest cached prefix of `ids` (always leaving one token to encode), or Hit(0, None)."""
        best, best_key = 0, None
        if self.enabled and len(ids) > MIN_REUSE:
            new = torch.tensor(ids, dtype=torch.long)
            for key, (owner, seq, _) in self._entries.items():
                if owner != adapter:
                    continue
                m = min(len(seq), len(ids) - 1)
                if m <= best:
                    continue
                diff = (seq[:m] != new[:m]).nonzero()
                n = m if len(diff) == 0 else int(diff[0])
                if n > best:
                    best, best_key = n, key
        if best < MIN_REUSE:
            return Hit(0, None)
        self._entries.move_to_end(best_key)
        layers = self._entries[best_key][2]
        return Hit(best, [(k[:, :, :best], v[:, :, :best]) for k, v in layers])

    def store(self, ids: list[int], layers: list[tuple[torch.Tensor, torch.Tensor]], adapter: str | None) -> None:
        """Keep `layers` (each [1, h, len(ids), d], owned copies) as the cache of `ids`."""
        n = len(ids)
        if not self.enabled or n <= MIN_REUSE or n > self.max_tokens:
            return
        for key, (owner, seq, _) in list(self._entries.items()):  # a stored prefix of ids is now redundant
            if owner == adapter and len(seq) <= n and seq.tolist() == ids[:len(seq)]:
                self._drop(key)
        while self._entries and self.size + n > self.max_tokens:
            self._drop(next(iter(self._entries)))
        self._entries[self._next] = (adapter, torch.tensor(ids, dtype=torch.long), layers)
        self._next += 1
        self.size += n

    def _drop(self, key: int) -> None:
        _, seq, _ = self._entries.pop(key)
        self.size -= len(seq)


def shared_openings(encoded: list[list[int]]) -> list[list[int]]:
    """The long openings prompts of one call share with each other, shortest first: for each prompt, its
    longest common prefix with any other (after a lexicographic sort, a prompt's best partner is a
    neighbour), kept when at least MIN_SHARED tokens and leaving each sharer a token of its own."""
    order = sorted(range(len(encoded)), key=lambda i: encoded[i])
    found: dict[tuple[int, ...], None] = {}
    for a, b in zip(order, order[1:]):
        x, y = encoded[a], encoded[b]
        m = min(len(x), len(y)) - 1
        n = 0
        while n < m and x[n] == y[n]:
            n += 1
        if n >= MIN_SHARED:
            found[tuple(x[:n])] = None
    return [list(p) for p in sorted(found, key=len)]


def batched_past(hits: list[Hit], suffixes: list[list[int]], pad_id: int):
    """Input ids, attention mask and the per-layer (keys, values) of a batch whose rows reuse `hits`.

    Returns (input_ids [B, P+S], attention [B, P+S], layers or None when no row reuses anything). The
    first P columns of input_ids are never encoded (the cache covers them); they hold `pad_id`.
    """
    P = max(h.n for h in hits)
    S = max(len(s) for s in suffixes)
    B = len(hits)
    input_ids = torch.full((B, P + S), pad_id, dtype=torch.long)
    attention = torch.zeros((B, P + S), dtype=torch.long)
    for row, (h, s) in enumerate(zip(hits, suffixes)):
        attention[row, P - h.n:P] = 1
        input_ids[row, P + S - len(s):] = torch.tensor(s, dtype=torch.long)
        attention[row, P + S - len(s):] = 1
    if P == 0:
        return input_ids, attention, None
    ref = next(h.layers for h in hits if h.layers is not None)
    layers = []
    for li, (k0, v0) in enumerate(ref):
        shape = (B, k0.shape[1], P, k0.shape[3])
        keys, values = k0.new_zeros(shape), v0.new_zeros(shape)
        for row, h in enumerate(hits):
            if h.n:
                k, v = h.layers[li]
                keys[row, :, P - h.n:] = k[0]
                values[row, :, P - h.n:] = v[0]
        layers.append((keys, values))
    return input_ids, attention, layers


def row_layers(past, row: int, columns: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Copies of one row's keys/values at `columns` (the row's real tokens), from a generate() cache."""
    out = []
    for layer in past.layers:
        out.append((layer.keys[row:row + 1, :, columns].clone(), layer.values[row:row + 1, :, columns].clone()))
    return out
