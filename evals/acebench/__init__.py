"""ACEBench (English) for looptool: data, prompts, compat and strict scorers, agent sandbox, runner.

ACEBench: Chen et al., "ACEBench: Who Wins the Match Point in Tool Usage?", arXiv:2501.12851;
data and reference code at https://github.com/chenchen0103/ACEBench (MIT License). No upstream code is
used here; the data is read from a local copy or downloaded and checked against checksums.json.
"""


def run_eval_for_loop(**kwargs) -> dict:
    """The loop's entry point (core/eval_job.py, core/worker.py); see evals/acebench/loop.py."""
    from evals.acebench.loop import run_eval_for_loop as run

    return run(**kwargs)
