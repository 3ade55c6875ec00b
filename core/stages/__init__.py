"""Loop stages, one file each, in the order of a run: seed (pool and D_1), train (GRPO/SFT), probe (GCP),
judge (JGLV), expand (EDDE), assemble (D_{j+1}), eval (the benchmarks). Each module has
``run(ctx) -> stats``: it reads its inputs from the run directory (arguments override them in tests),
writes its outputs there and marks itself done (core/stages/base.py). Which stages an iteration runs, and
in which order, is core.engine.iteration_stages."""
from __future__ import annotations

import importlib

STAGES = ("seed", "train", "probe", "judge", "expand", "assemble", "eval")


def stage_module(name: str):
    """The module of a stage (imported on first use: a stage worker loads only its own stage)."""
    if name not in STAGES:
        raise ValueError(f"unknown stage {name!r}; stages: {', '.join(STAGES)}")
    return importlib.import_module(f"core.stages.{name}")
