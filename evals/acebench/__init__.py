"""ACEBench (English) for looptool: data, prompts, compat and strict scorers, agent sandbox, runner; the
loop reaches it through evals/acebench/plugin.py (the core.benchmarks interface).

ACEBench: Chen et al., "ACEBench: Who Wins the Match Point in Tool Usage?", arXiv:2501.12851;
data and reference code at https://github.com/chenchen0103/ACEBench (MIT License). No upstream code is
used here; the data is read from a local copy or downloaded and checked against checksums.json.
"""
