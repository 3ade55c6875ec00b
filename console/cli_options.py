"""The options `looptool eval bfcl` and `looptool eval acebench` share, defined once.

`@eval_options(...)` puts them on an eval command with the benchmark's own help texts where the two
differ, and hands them to the command as one `EvalOptions`, which also holds their validation and
the model backend's construction.
"""
from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, get_type_hints

import typer

from core.backends import BACKENDS
from core.errors import UserError
from evals.bfcl_prompt import MODES
DECODE_HELP = ("official (the benchmark's own decoding of prompt-mode replies: the leaderboard's verdicts) | "
               "lenient (recovers fenced, re-spaced and tuple replies, brackets inside strings; literals only). "
               "Both are scored; the other one is its own column.")


@dataclass
class EvalOptions:
    model: str
    backend: str
    adapter: Optional[Path]
    mode: str
    categories: str
    per_category: Optional[int]
    ids: Optional[str]
    seed: int
    max_new_tokens: int
    temperature: float
    max_prompt_tokens: Optional[int]
    batch_size: int
    device: str
    base_url: Optional[str]
    tensor_parallel: int
    responses: Optional[Path]
    decode: str
    json_out: bool
    progress: bool

    @property
    def id_list(self) -> list[str] | None:
        return [s.strip() for s in self.ids.split(",") if s.strip()] if self.ids else None

    def check_decode(self) -> None:
        from evals.leaderboard_ast import DECODINGS

        if self.decode not in DECODINGS:
            raise UserError(f"--decode: unknown decoding {self.decode!r}; choose {' or '.join(DECODINGS)}")

    def check_model_options(self) -> None:
        """Before any data or model is loaded: --adapter, --backend (with --base-url), --mode."""
        if self.adapter is not None and not (self.adapter / "adapter_config.json").exists():
            raise UserError(f"--adapter {self.adapter}: no adapter_config.json there (not a peft LoRA adapter)")
        if self.backend not in BACKENDS:
            raise UserError(f"--backend: unknown backend {self.backend!r}; choose hf, vllm or openai")
        if self.backend == "openai" and not self.base_url:
            raise UserError("--backend openai needs --base-url (e.g. http://127.0.0.1:8000/v1)")
        if self.mode not in MODES:
            raise UserError(f"--mode: unknown mode {self.mode!r}; choose from {', '.join(MODES)}")

    def config_fields(self, categories: list[str]) -> dict:
        """The fields the benchmarks' run configs (evals.bfcl.EvalConfig, AceConfig) share."""
        return dict(model=self.model, backend=self.backend,
                    adapter=str(self.adapter.resolve()) if self.adapter else None, mode=self.mode,
                    categories=categories, per_category=self.per_category, ids=self.id_list, seed=self.seed,
                    max_new_tokens=self.max_new_tokens, temperature=self.temperature,
                    max_prompt_tokens=self.max_prompt_tokens, decoding=self.decode)

    def score_responses(self, score_file: Callable[..., dict], **benchmark_args) -> dict:
        """--responses: score the file with the benchmark's `score_file`; no model is loaded."""
        from core.store import ResultStore

        with ResultStore() as store:
            return score_file(self.responses, mode=self.mode, store=store, progress=self.progress,
                              decoding=self.decode, **benchmark_args)

    def evaluate(self, run: Callable[..., dict], cfg) -> dict:
        """`run(cfg, backend, store=, progress=)` on the model's backend, closed afterwards."""
        from core.store import ResultStore

        backend = self.open_backend()
        try:
            with ResultStore() as store:
                return run(cfg, backend, store=store, progress=self.progress)
        finally:
            backend.close()

    def open_backend(self):
        from core.backends import load_backend
        from core.models import resolve

        options = {"hf": {"batch_size": self.batch_size, "device": self.device},
                   "vllm": {"tensor_parallel_size": self.tensor_parallel, "enable_lora": self.adapter is not None},
                   "openai": {"base_url": self.base_url}}[self.backend]
        if self.backend == "openai":
            # the server knows the model by the name given; prompts are rendered with its tokenizer
            ref = self.model
            options["tokenizer"] = local_tokenizer(self.model)
        else:
            ref = resolve(self.model).path
        return load_backend(self.backend, ref, **options)


def local_tokenizer(model: str) -> str:
    """The tokenizer for an openai-backend model: a local/embedded/configured model's files if the
    name resolves, else the name itself (a hub id in the local cache)."""
    from core.models import resolve

    try:
        return resolve(model).path
    except UserError:
        return model


# the options after which an eval command's own options are listed in --help
LISTED_LAST = ("responses", "decode", "json_out", "progress")


def eval_options(*, mode: str, categories: str, per_category: str, ids: str, max_new_tokens: tuple[int, str],
                 max_prompt_tokens: str, responses: str):
    """Decorates `command(opts: EvalOptions, **own_options)`; the arguments are the help texts that
    differ between benchmarks (`max_new_tokens`: the default and its help)."""
    new_tokens_default, new_tokens_help = max_new_tokens
    options = {
        "model": typer.Option("embedded", help="'embedded', a models.toml name, a local HF checkpoint "
                              "directory, or a hub id already in the local Hugging Face cache."),
        "backend": typer.Option("hf", help="hf (transformers, CPU/CUDA) | vllm (gpu extra) | openai "
                                "(any OpenAI-compatible /v1/completions endpoint; needs --base-url)."),
        "adapter": typer.Option(None, help="LoRA adapter directory to evaluate on top of the model."),
        "mode": typer.Option("auto", help=mode),
        "categories": typer.Option("all", help=categories),
        "per_category": typer.Option(None, min=1, help=per_category),
        "ids": typer.Option(None, help=ids),
        "seed": typer.Option(0, help="Seed for --per-category sampling and for sampling decoding."),
        "max_new_tokens": typer.Option(new_tokens_default, min=1, help=new_tokens_help),
        "temperature": typer.Option(0.0, min=0.0, help="0 = greedy."),
        "max_prompt_tokens": typer.Option(None, min=1, help=max_prompt_tokens),
        "batch_size": typer.Option(8, min=1, help="Prompts per generate call (hf)."),
        "device": typer.Option("auto", help="hf backend device: auto | cpu | cuda | cuda:N."),
        "base_url": typer.Option(None, help="openai backend: server URL, e.g. http://127.0.0.1:8000/v1."),
        "tensor_parallel": typer.Option(1, min=1, help="vllm backend: tensor parallel size."),
        "responses": typer.Option(None, help=responses),
        "decode": typer.Option("official", help=DECODE_HELP),
        "json_out": typer.Option(False, "--json", help="Print the summary as JSON."),
        "progress": typer.Option(True, help="Show a progress bar on stderr."),
    }
    types = get_type_hints(EvalOptions)

    def shared(name: str) -> inspect.Parameter:
        return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=options[name],
                                 annotation=types[name])

    def decorate(command):
        own = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
               for name, p in inspect.signature(command, eval_str=True).parameters.items() if name != "opts"]
        params = ([shared(n) for n in options if n not in LISTED_LAST] + own
                  + [shared(n) for n in LISTED_LAST])

        @functools.wraps(command)
        def with_options(**kwargs):
            opts = EvalOptions(**{name: kwargs.pop(name) for name in options})
            return command(opts, **kwargs)

        with_options.__signature__ = inspect.Signature(params)
        with_options.__annotations__ = {p.name: p.annotation for p in params}
        return with_options

    return decorate
