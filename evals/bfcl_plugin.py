"""BFCL-v3 as a looptool benchmark (the core.benchmarks interface): the loop's evaluation of an
iteration's weights on the run's held-out subset, and every function name and user query of the 17
categories (plus the missed-function and multi-turn class docs) for the contamination guard."""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from core.benchmarks import EvalRequest, EvalTexts
from core.errors import UserError


class BFCL:
    name = "bfcl"
    order = 0

    def in_loop(self, cfg) -> bool:
        return True

    def evaluate(self, request: EvalRequest) -> dict:
        from core.backends import for_run
        from evals.bfcl import EvalConfig, run_eval
        from evals.bfcl_data import parse_categories

        eval_cfg, model_cfg, weights = request.cfg.eval, request.cfg.model, request.weights
        # a bad category spec fails before the model loads
        categories = parse_categories(request.subset or eval_cfg.bfcl_categories)
        backend = for_run(request.cfg, weights)
        try:
            cfg = EvalConfig(model=weights.model, backend=model_cfg.backend, adapter=weights.adapter,
                             mode=model_cfg.mode, categories=categories,
                             per_category=request.per_category or eval_cfg.bfcl_per_category,
                             seed=eval_cfg.holdout_seed, max_new_tokens=eval_cfg.bfcl_max_new_tokens)
            return run_eval(cfg, backend, progress=False, on_progress=request.on_progress,
                            checkpoint=request.checkpoint)
        finally:
            backend.close()

    def eval_texts(self, cfg) -> EvalTexts:
        return _texts()

    def check_config(self, cfg) -> None:
        from evals.bfcl_data import parse_categories

        try:
            parse_categories(cfg.eval.bfcl_categories)
        except UserError as e:
            raise UserError(f"eval.bfcl_categories: {str(e).removeprefix('--categories: ')}") from None


@lru_cache(maxsize=1)
def _texts() -> EvalTexts:
    from core.bfcl_lib import bfcl
    from evals.bfcl_data import CATEGORIES, load_category

    texts = EvalTexts()
    for category in CATEGORIES:
        for entry in load_category(category):
            for doc in list(entry.raw_functions) + list(entry.functions):
                if isinstance(doc, dict) and "name" in doc:
                    texts.names.add(doc["name"])
            for docs in (entry.extra.get("missed_function") or {}).values():
                texts.names.update(d["name"] for d in docs if isinstance(d, dict) and "name" in d)
            for turn in entry.question:
                for msg in turn if isinstance(turn, list) else [turn]:
                    if isinstance(msg, dict) and msg.get("role") == "user" and msg.get("content"):
                        texts.queries.add(str(msg["content"]))
    bfcl()
    import bfcl_eval

    doc_dir = Path(bfcl_eval.__file__).parent / "data" / "multi_turn_func_doc"
    for f in sorted(doc_dir.glob("*.json")) if doc_dir.is_dir() else []:
        for line in f.read_text(encoding="utf-8").splitlines():
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            if isinstance(doc, dict) and "name" in doc:
                texts.names.add(doc["name"])
    return texts


BENCHMARK = BFCL()
