"""ACEBench as the loop runs it: the per-iteration eval stage and the console's on-demand eval.

``run_eval_for_loop`` is the entry point core/eval_job.py looks for (``evals.acebench.run_eval_for_loop``).
It reads the run config's ``eval`` section with defaults for the ACEBench keys it may not have yet
(``acebench_categories`` "all", ``acebench_per_category`` None, ``acebench_max_new_tokens`` 512,
``acebench_data_dir`` None = the sha256-checked download, ``acebench_user_model``/``_backend``/``_base_url``
None = the policy plays the user), samples with the run's ``holdout_seed``, and returns the summary
(eval_id, benchmark "acebench", scores, started_at, ...). Storing it is the caller's job, as for BFCL.
"""
from __future__ import annotations

from collections.abc import Callable


def run_eval_for_loop(*, model: str, adapter: str | None, cfg, subset: str | None = None,
                      per_category: int | None = None, on_progress: Callable[[int, int], None] | None = None,
                      checkpoint: Callable[[], None] | None = None) -> dict:
    from core.backends import load_backend
    from evals.acebench.data import parse_categories
    from evals.acebench.runner import AceConfig, run_acebench

    e, m = cfg.eval, cfg.model
    opt = lambda key, default=None: getattr(e, f"acebench_{key}", default)  # noqa: E731
    ace = AceConfig(model=model, backend=m.backend, adapter=adapter, mode=m.mode,
                    categories=parse_categories(subset or opt("categories", "all")),
                    per_category=per_category or opt("per_category"), seed=e.holdout_seed,
                    max_new_tokens=opt("max_new_tokens", 512), data_dir=opt("data_dir"),
                    user_model=opt("user_model"), user_backend=opt("user_backend"),
                    user_base_url=opt("user_base_url"))
    options = {"hf": {"device": m.device, "batch_size": cfg.probe.batch_size},
               "vllm": {"enable_lora": adapter is not None},
               "openai": {"base_url": m.base_url}}[m.backend]
    backend = load_backend(m.backend, model, **options)
    try:
        return run_acebench(ace, backend, progress=False, on_progress=on_progress, checkpoint=checkpoint)
    finally:
        backend.close()
