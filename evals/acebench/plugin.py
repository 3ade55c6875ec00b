"""ACEBench as a looptool benchmark (the core.benchmarks interface): a seeded subset of the run's
categories on an iteration's weights, and every function name and user query for the contamination guard.

The run config's ``eval`` section says what: ``acebench`` (part of the per-iteration eval),
``acebench_categories``, ``acebench_per_category`` (None = all), ``acebench_max_new_tokens``,
``acebench_user_model``/``_backend``/``_base_url`` (None = the policy plays agent_multi_turn's user);
samples are drawn with the run's ``holdout_seed``.

Data: ``eval.acebench_data_dir`` (checked against checksums.json; a wrong folder fails loudly), else the
checked copy in $LOOPTOOL_HOME, downloaded when incomplete. When neither can be had (offline, no data
dir) `evaluate` raises BenchmarkUnavailable before any model is loaded, saying why and how to get the
data: the loop's eval stage goes on with BFCL and records the reason; on demand it is the answer.
"""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from core.benchmarks import BenchmarkUnavailable, EvalRequest, EvalTexts
from core.errors import UserError
from evals.acebench import fetch

_USER_TURN = re.compile(r"(?:^|\n)user:\s*(.*?)(?=\n(?:user|system):|\Z)", re.S)


def unavailable_reason(err: fetch.DataUnavailable) -> str:
    """Why ACEBench was not evaluated, and how to get its data."""
    return (f"ACEBench data unavailable ({err.reason}). To evaluate ACEBench in the loop, set "
            f"eval.acebench_data_dir = PATH to a copy of ACEBench's English data_en folder (commit "
            f"{fetch.commit()[:12]}) in the run config, or download it once on a machine with network "
            f"access with `python -m evals.acebench.fetch` (or any `looptool eval acebench` run) into "
            f"{fetch.default_dir()}; ${fetch.URL_ENV} names a mirror")


def data_dir(cfg) -> Path:
    """The checked data folder (downloaded when incomplete); BenchmarkUnavailable when it cannot be had."""
    try:
        return fetch.resolve_data_dir(cfg.eval.acebench_data_dir)
    except fetch.DataUnavailable as err:
        raise BenchmarkUnavailable(unavailable_reason(err)) from None


class ACEBench:
    name = "acebench"
    order = 1

    def in_loop(self, cfg) -> bool:
        return cfg.eval.acebench

    def evaluate(self, request: EvalRequest) -> dict:
        from core.backends import for_run
        from evals.acebench.data import parse_categories
        from evals.acebench.runner import AceConfig, run_acebench

        eval_cfg, model_cfg, weights = request.cfg.eval, request.cfg.model, request.weights
        categories = parse_categories(request.subset or eval_cfg.acebench_categories)  # fails before any download
        root = data_dir(request.cfg)
        ace = AceConfig(model=weights.model, backend=model_cfg.backend, adapter=weights.adapter,
                        mode=model_cfg.mode, categories=categories,
                        per_category=request.per_category or eval_cfg.acebench_per_category, seed=eval_cfg.holdout_seed,
                        max_new_tokens=eval_cfg.acebench_max_new_tokens, data_dir=str(root),
                        user_model=eval_cfg.acebench_user_model, user_backend=eval_cfg.acebench_user_backend,
                        user_base_url=eval_cfg.acebench_user_base_url)
        backend = for_run(request.cfg, weights)
        try:
            return run_acebench(ace, backend, progress=False, on_progress=request.on_progress,
                                checkpoint=request.checkpoint)
        finally:
            backend.close()

    def check_config(self, cfg) -> None:
        from evals.acebench.data import parse_categories

        try:
            parse_categories(cfg.eval.acebench_categories)
        except UserError as e:
            raise UserError(f"eval.acebench_categories: {str(e).removeprefix('--categories: ')}") from None
        folder = cfg.eval.acebench_data_dir
        if folder and not Path(folder).expanduser().is_dir():
            raise UserError(f"eval.acebench_data_dir: {folder}: no such directory")

    def scored_unit(self, record_id: str) -> str:
        """A turn of a multi-turn file is scored with its dialogue (the summary counts dialogues)."""
        from evals.acebench.data import dialogue_of

        return dialogue_of(record_id) or record_id

    def eval_texts(self, cfg) -> EvalTexts:
        """From the run's data folder when ACEBench is part of its eval (downloaded like the eval would);
        otherwise from a complete checked copy in $LOOPTOOL_HOME, if there is one."""
        if cfg.eval.acebench or cfg.eval.acebench_data_dir:
            return _texts(str(data_dir(cfg).resolve()))
        root = fetch.default_dir()
        if not root.is_dir() or fetch.problems(root):
            raise BenchmarkUnavailable(f"no checked ACEBench copy in {root} (the run does not evaluate "
                                       "ACEBench; set eval.acebench_data_dir to guard against it)")
        return _texts(str(root.resolve()))


@lru_cache(maxsize=4)
def _texts(root: str) -> EvalTexts:
    from evals.acebench.data import CATEGORIES, load_category

    texts = EvalTexts()
    for category in CATEGORIES:
        for entry in load_category(Path(root), category):
            texts.names.update(str(d["name"]) for d in entry.functions if isinstance(d, dict) and "name" in d)
            if isinstance(entry.question, str):
                turns = [t.strip() for t in _USER_TURN.findall(entry.question) if t.strip()]
                texts.queries.update(turns or [entry.question.strip()])
    return texts


BENCHMARK = ACEBench()
