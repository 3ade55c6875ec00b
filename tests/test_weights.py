"""Which weights an iteration uses (core.weights): the one rule the train, probe and eval stages share."""
from __future__ import annotations

from core.config import load, parse
from core.stages.base import StageContext
from core.weights import Weights, base, start, trained


def _cfg(tmp_path):
    """A run on a local checkpoint directory (resolving the embedded model would convert it)."""
    model = tmp_path / "base-model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    return parse(f'[run]\nname = "t"\n[model]\nname = "{model}"\n', "test config")


def _policy(run_dir, j, kind):
    d = run_dir / f"iter-{j}" / "policy"
    d.mkdir(parents=True)
    (d / ("adapter_config.json" if kind == "lora" else "config.json")).write_text("{}")
    return str(d)


def test_trained_prefers_the_iterations_policy(tmp_path):
    ctx = StageContext(cfg=load("cpu-demo"), run_dir=tmp_path, iteration=1, model_path="/base",
                       adapter="/prev-adapter")
    assert trained(ctx) == Weights("/base", "/prev-adapter")  # nothing trained here yet
    policy = ctx.iter_dir / "policy"
    policy.mkdir()
    (policy / "config.json").write_text("{}")
    assert trained(ctx) == Weights(str(policy))  # a full checkpoint
    (policy / "adapter_config.json").write_text("{}")
    assert trained(ctx) == Weights("/base", str(policy))  # a LoRA adapter on the base


def test_iteration_zero_is_the_base_model(tmp_path):
    cfg = _cfg(tmp_path)
    _policy(tmp_path, 0, "lora")  # never consulted: iteration 0 trains nothing
    ctx = StageContext(cfg=cfg, run_dir=tmp_path, iteration=0, model_path=base(cfg).model)
    assert trained(ctx) == base(cfg) == start(cfg, tmp_path, 1) == start(cfg, tmp_path, 0)


def test_start_follows_the_chain_of_policies(tmp_path):
    cfg = _cfg(tmp_path)
    b = base(cfg).model
    lora1 = _policy(tmp_path, 1, "lora")
    assert start(cfg, tmp_path, 2) == Weights(b, lora1)
    lora2 = _policy(tmp_path, 2, "lora")
    assert start(cfg, tmp_path, 3) == Weights(b, lora2)  # the adapter is trained further, on the base
    full3 = _policy(tmp_path, 3, "full")
    assert start(cfg, tmp_path, 4) == Weights(full3)
    lora4 = _policy(tmp_path, 4, "lora")
    assert start(cfg, tmp_path, 5) == Weights(full3, lora4)  # an adapter on the full checkpoint it started from
    assert start(cfg, tmp_path, 6) == Weights(full3, lora4)  # iteration 5 left nothing yet
