"""The Hugging Face transformers backend: batched ``generate`` on CPU or CUDA, LoRA via peft.

Prompts are tokenized with the tokenizer's defaults (as vllm's ``LLM.generate`` and ``/v1/completions``
do), left-padded and sorted by length within batches; results come back in the caller's order.

Logprobs are computed from the **raw logits** (``output_logits=True``), before temperature / top-p
processing: ``log_softmax(logits)[chosen token]``. That is the model's own distribution, the right
quantity for perplexity, and it matches vllm's default ``raw_logprobs`` mode. For greedy decoding the
processed scores would be identical anyway.
"""
from __future__ import annotations

import contextlib
import gc
import os

import torch

from core.backends.base import PREFIX_CACHE_MB, GenParams, Generation
from core.backends.hf_prefix import MIN_SHARED, Hit, PrefixCache, batched_past, row_layers, shared_openings
from core.errors import UserError

_DTYPES = {
    "float32": torch.float32, "fp32": torch.float32,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
    "float16": torch.float16, "fp16": torch.float16,
}


def _pick_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _pick_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """``auto``: bfloat16 on CUDA when supported, else float16; on CPU bfloat16 where the CPU has it
    natively (core.hardware.cpu_native_bf16: 1.64x faster generation on the cpu-demo's held-out
    prompts, every BFCL verdict the same, bench/cpu_bf16.py), float32 elsewhere. bf16 rounding can
    make a greedy reply depend on its batch neighbours' padding; ask for float32 when bit-exact
    batch invariance matters."""
    if dtype == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        from core.hardware import cpu_native_bf16

        return torch.bfloat16 if cpu_native_bf16() else torch.float32
    try:
        return _DTYPES[dtype]
    except KeyError:
        raise ValueError(f"unknown dtype {dtype!r}: choose auto or one of {', '.join(_DTYPES)}") from None


def _kv_bytes_per_token(model) -> int:
    """Bytes of keys and values one token takes in `model`'s cache (all layers)."""
    cfg = model.config.get_text_config()
    heads = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    return max(1, cfg.num_hidden_layers * 2 * heads * head_dim * model.dtype.itemsize)


def adapter_dir(adapter: str) -> str:
    """The real path of a LoRA adapter directory, or UserError when it is not one."""
    path = os.path.realpath(os.path.expanduser(adapter))
    if not os.path.isfile(os.path.join(path, "adapter_config.json")):
        raise UserError(f"LoRA adapter {adapter}: no adapter_config.json there (not a peft adapter directory)")
    return path


class HFBackend:
    """transformers ``AutoModelForCausalLM`` behind the `Backend` interface.

    `device`: auto (cuda when available, else cpu) | cpu | cuda | cuda:N. `dtype`: auto (bfloat16 on a
    CPU with native bf16, else float32; bfloat16/float16 on CUDA) | float32 | bfloat16 | float16. `batch_size`: prompts per padded
    batch. `threads`: torch CPU threads (a process-wide setting; None leaves torch's default).
    `prefix_cache_mb`: MiB of earlier sequences' keys/values kept for reuse (core/backends/hf_prefix.py;
    0 turns reuse off).

    Attributes: ``model_obj`` (the torch model, a peft ``PeftModel`` once an adapter was loaded),
    ``tokenizer``, ``tokens_generated`` (running total of generated tokens, for throughput),
    ``tokens_prefilled`` (prompt tokens encoded, shared openings included), ``tokens_reused`` (prompt
    tokens served from the prefix cache).
    """

    name = "hf"

    def __init__(self, model: str, device: str = "auto", dtype: str = "auto", batch_size: int = 8,
                 threads: int | None = None, prefix_cache_mb: int = PREFIX_CACHE_MB):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if threads:
            torch.set_num_threads(threads)  # process-wide setting
        self.model = model
        self.device = _pick_device(device)
        self.dtype = _pick_dtype(dtype, self.device)
        self.batch_size = max(1, int(batch_size))
        self.tokens_generated = 0
        self.tokens_prefilled = 0
        self.tokens_reused = 0
        tok = AutoTokenizer.from_pretrained(model)
        tok.padding_side = "left"
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        self._tokenizer = tok
        self.model_obj = AutoModelForCausalLM.from_pretrained(model, dtype=self.dtype).to(self.device)
        self.model_obj.eval()
        self._adapters: dict[str, str] = {}  # real adapter path -> peft adapter name
        self._stop_strings_ok = True  # falls back to post-truncation if generate rejects them
        eos = self.model_obj.generation_config.eos_token_id
        eos = list(eos) if isinstance(eos, list) else [eos] if eos is not None else []
        if tok.eos_token_id is not None and tok.eos_token_id not in eos:
            eos.append(tok.eos_token_id)
        self._eos_ids = set(eos)
        self._pad_id = tok.pad_token_id
        self.prefix = PrefixCache(prefix_cache_mb * 2**20 // _kv_bytes_per_token(self.model_obj))

    @property
    def tokenizer(self):
        return self._tokenizer

    # -- public API ---------------------------------------------------------------------------

    def generate(self, prompts: list[str], params: GenParams, adapter: str | None = None
                 ) -> list[Generation]:
        """One Generation per prompt, in order; `adapter` is a LoRA directory (None = base)."""
        if not prompts:
            return []
        encoded = self._tokenizer(list(prompts))["input_ids"]
        key = adapter_dir(adapter) if adapter is not None else None
        results: list[Generation | None] = [None] * len(prompts)
        if params.seed is not None:
            torch.manual_seed(params.seed)
        with self._adapter(adapter), torch.inference_mode():
            if self.prefix.enabled:
                for opening in shared_openings(encoded):
                    self._encode_opening(opening, key)
            hits = [self.prefix.lookup(ids, key) for ids in encoded]
            # batch by what is left to encode, so rows of a batch pad little
            order = sorted(range(len(prompts)), key=lambda i: (len(encoded[i]) - hits[i].n, len(encoded[i])))
            for start in range(0, len(order), self.batch_size):
                idx = order[start:start + self.batch_size]
                # looked up again: an earlier batch of this call may have stored a longer prefix
                batch_hits = [self.prefix.lookup(encoded[i], key) for i in idx]
                gens = self._generate_batch([encoded[i] for i in idx], batch_hits, params, key)
                for i, gen in zip(idx, gens):
                    results[i] = gen
        self.tokens_generated += sum(g.num_tokens for g in results)
        return results

    def close(self) -> None:
        """Free the model (and its adapters); the backend is unusable afterwards."""
        self.model_obj = None
        self._adapters.clear()
        self.prefix.clear()
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    # -- adapters -----------------------------------------------------------------------------

    def _adapter(self, adapter: str | None):
        """Context manager that activates `adapter`, or the plain base weights for None."""
        from peft import PeftModel

        if adapter is None:
            if isinstance(self.model_obj, PeftModel):
                return self.model_obj.disable_adapter()
            return contextlib.nullcontext()
        path = adapter_dir(adapter)
        name = self._adapters.get(path)
        if name is None:
            name = f"adapter{len(self._adapters)}"
            if isinstance(self.model_obj, PeftModel):
                self.model_obj.load_adapter(path, adapter_name=name)
            else:
                self.model_obj = PeftModel.from_pretrained(self.model_obj, path, adapter_name=name)
            self.model_obj.eval()
            self._adapters[path] = name
        self.model_obj.set_adapter(name)
        return contextlib.nullcontext()

    # -- one padded batch ---------------------------------------------------------------------

    def _generate_batch(self, batch: list[list[int]], hits: list[Hit], params: GenParams,
                        adapter: str | None) -> list[Generation]:
        """One padded batch; rows with a `hit` encode only what follows their cached prefix."""
        suffixes = [ids[h.n:] for ids, h in zip(batch, hits)]
        input_ids, attention, past = batched_past(hits, suffixes, self._pad_id)
        width = input_ids.shape[1]
        self.tokens_prefilled += sum(map(len, suffixes))
        self.tokens_reused += sum(h.n for h in hits)
        kwargs = dict(
            input_ids=input_ids.to(self.device), attention_mask=attention.to(self.device),
            max_new_tokens=params.max_new_tokens, do_sample=not params.greedy,
            pad_token_id=self._pad_id, eos_token_id=sorted(self._eos_ids),
            return_dict_in_generate=True, output_logits=params.logprobs,
        )
        if past is not None:
            from transformers import DynamicCache

            kwargs["cache"] = DynamicCache(ddp_cache_data=past, config=self.model_obj.config)
        if params.greedy:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        else:  # top_k=0 disables transformers' default top-k, like vllm (top_k=-1)
            kwargs.update(temperature=params.temperature, top_p=params.top_p, top_k=0)
        out = self._run_generate(kwargs, params.stop)
        new = out.sequences[:, width:].tolist()
        logprobs = self._chosen_logprobs(out.logits, out.sequences[:, width:]) if params.logprobs else None
        if self.prefix.enabled:
            self._keep(out, batch, attention, new, adapter)
        return [
            self._finish(new[row], None if logprobs is None else logprobs[row], len(ids), params)
            for row, ids in enumerate(batch)
        ]

    def _encode_opening(self, ids: list[int], adapter: str | None) -> None:
        """Encode an opening several prompts of this call share (entries of one category: the system
        prompt and its tool docs) once, and keep it, unless the cache already holds most of it."""
        from transformers import DynamicCache

        hit = self.prefix.lookup(ids + [-1], adapter)  # the sentinel lets the whole opening match
        if len(ids) - hit.n < MIN_SHARED:
            return
        input_ids, attention, past = batched_past([hit], [ids[hit.n:]], self._pad_id)
        cache = DynamicCache(ddp_cache_data=past, config=self.model_obj.config) if past else \
            DynamicCache(config=self.model_obj.config)
        self.model_obj(input_ids=input_ids[:, hit.n:].to(self.device), attention_mask=attention.to(self.device),
                       cache=cache, use_cache=True, logits_to_keep=1)
        self.tokens_prefilled += len(ids) - hit.n
        self.prefix.store(ids, row_layers(cache, 0, torch.arange(len(ids), device=self.device)), adapter)

    def _keep(self, out, batch: list[list[int]], attention: torch.Tensor, new: list[list[int]],
              adapter: str | None) -> None:
        """Store each row's prompt and reply (through its eos; pads after it dropped) in the prefix cache.
        The reply's last token has no keys/values yet: generation stopped before encoding it."""
        past = out.cache
        width = attention.shape[1]
        encoded = past.get_seq_length() - width  # generated tokens whose keys/values exist
        for row, ids in enumerate(batch):
            tokens = new[row]
            cut = next((k + 1 for k, t in enumerate(tokens) if t in self._eos_ids), len(tokens))
            n = min(cut, encoded)
            columns = torch.cat([attention[row].nonzero().squeeze(1), torch.arange(width, width + n)])
            self.prefix.store(ids + tokens[:n], row_layers(past, row, columns.to(self.device)), adapter)

    def _run_generate(self, kwargs: dict, stop: tuple[str, ...]):
        if stop and self._stop_strings_ok:
            try:
                return self.model_obj.generate(**kwargs, stop_strings=list(stop), tokenizer=self._tokenizer)
            except (ValueError, TypeError, NotImplementedError):
                self._stop_strings_ok = False  # tokenizer unsupported: post-truncate instead
        return self.model_obj.generate(**kwargs)

    @staticmethod
    def _chosen_logprobs(logits: tuple[torch.Tensor, ...], chosen: torch.Tensor) -> list[list[float]]:
        """log_softmax of each step's raw logits, at the token actually generated."""
        steps = [
            torch.log_softmax(step.float(), dim=-1).gather(1, chosen[:, t:t + 1]).squeeze(1)
            for t, step in enumerate(logits)
        ]
        return torch.stack(steps, dim=1).tolist()

    def _finish(self, tokens: list[int], logprobs: list[float] | None, prompt_len: int,
                params: GenParams) -> Generation:
        """Strip eos/padding, apply stop strings, decide the finish reason."""
        finish = "length"
        cut = next((k for k, t in enumerate(tokens) if t in self._eos_ids), None)
        if cut is not None:
            tokens, finish = tokens[:cut], "stop"
        elif self._pad_id not in self._eos_ids:  # rows that stopped on a stop string get padded
            end = len(tokens)
            while end and tokens[end - 1] == self._pad_id:
                end -= 1
            tokens = tokens[:end]
        text = self._decode(tokens)
        hits = [text.find(s) for s in params.stop if s and s in text]
        if hits:
            text, finish = text[:min(hits)], "stop"
            tokens = tokens[:self._stop_prefix_len(tokens, params.stop)]
        elif finish == "length" and len(tokens) < params.max_new_tokens:
            finish = "stop"
        if logprobs is not None:
            logprobs = logprobs[:len(tokens)]
        return Generation(text=text, token_ids=tokens, logprobs=logprobs, finish_reason=finish,
                          prompt_tokens=prompt_len)

    def _stop_prefix_len(self, tokens: list[int], stop: tuple[str, ...]) -> int:
        """Fewest leading tokens whose text contains a stop string (vllm keeps those tokens)."""
        lo, hi = 1, len(tokens)
        while lo < hi:
            mid = (lo + hi) // 2
            if any(s and s in self._decode(tokens[:mid]) for s in stop):
                hi = mid
            else:
                lo = mid + 1
        return hi

    def _decode(self, tokens: list[int]) -> str:
        return self._tokenizer.decode(tokens, skip_special_tokens=True)
