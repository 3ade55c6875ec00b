"""ACEBench as the loop runs it: the per-iteration eval stage and the console's on-demand eval.

``run_eval_for_loop`` is the entry point core/eval_job.py looks for (``evals.acebench.run_eval_for_loop``).
It reads the run config's ``eval`` section (``acebench_categories``, ``acebench_per_category`` None = all,
``acebench_max_new_tokens``, ``acebench_data_dir``, ``acebench_user_model``/``_backend``/``_base_url``
None = the policy plays the user), samples with the run's ``holdout_seed``, and returns the summary
(eval_id, benchmark "acebench", scores, started_at, ...). Storing it is the caller's job, as for BFCL.

Data: ``eval.acebench_data_dir`` (checked against checksums.json; a wrong folder fails loudly), else the
cache in $LOOPTOOL_HOME, downloaded when incomplete. The per-iteration eval stage passes
``skip_unavailable=True``: when no data dir is set and the download cannot reach its server (the normal
case offline; it fails within fetch.download's connect timeout), it gets
``{"benchmark": "acebench", "skipped": <why, and how to get the data>}`` back before any model is loaded,
and the run goes on with BFCL alone. Every other error still raises; the console's on-demand eval
(skip_unavailable False) reports the download error itself.
"""
from __future__ import annotations

from collections.abc import Callable

from evals.acebench import fetch


def skipped_reason(err: fetch.DataUnavailable) -> str:
    """What the run's eval summary says (``acebench_skipped``) when the data cannot be had."""
    return (f"ACEBench data unavailable ({err.reason}). To evaluate ACEBench in the loop, set "
            f"eval.acebench_data_dir = PATH to a copy of ACEBench's English data_en folder (commit "
            f"{fetch.commit()[:12]}) in the run config, or download it once on a machine with network "
            f"access with `python -m evals.acebench.fetch` (or any `looptool eval acebench` run) into "
            f"{fetch.default_dir()}; ${fetch.URL_ENV} names a mirror")


def run_eval_for_loop(*, model: str, adapter: str | None, cfg, subset: str | None = None,
                      per_category: int | None = None, on_progress: Callable[[int, int], None] | None = None,
                      checkpoint: Callable[[], None] | None = None, skip_unavailable: bool = False) -> dict:
    from core.backends import load_backend
    from evals.acebench.data import parse_categories
    from evals.acebench.runner import AceConfig, run_acebench

    e, m = cfg.eval, cfg.model
    categories = parse_categories(subset or e.acebench_categories)  # a bad spec fails before any download
    try:
        root = fetch.resolve_data_dir(e.acebench_data_dir)
    except fetch.DataUnavailable as err:
        if not skip_unavailable:
            raise
        return {"benchmark": "acebench", "skipped": skipped_reason(err)}
    ace = AceConfig(model=model, backend=m.backend, adapter=adapter, mode=m.mode, categories=categories,
                    per_category=per_category or e.acebench_per_category, seed=e.holdout_seed,
                    max_new_tokens=e.acebench_max_new_tokens, data_dir=str(root),
                    user_model=e.acebench_user_model, user_backend=e.acebench_user_backend,
                    user_base_url=e.acebench_user_base_url)
    options = {"hf": {"device": m.device, "batch_size": cfg.probe.batch_size},
               "vllm": {"enable_lora": adapter is not None},
               "openai": {"base_url": m.base_url}}[m.backend]
    backend = load_backend(m.backend, model, **options)
    try:
        return run_acebench(ace, backend, progress=False, on_progress=on_progress, checkpoint=checkpoint)
    finally:
        backend.close()
