"""train.report_to (core/trackers.py): the config's strict validation, what reaches trl's config, the eval
scalars and their step, and TensorBoard's event files read back by tensorboard itself. The reference run's
train and eval events: tests/test_engine_e2e.py."""
from __future__ import annotations

import json

import pytest

from core import config, trackers
from core.errors import UserError

BASE = '[run]\nname = "t"\n[train]\n'


def parse(train_keys: str):
    return config.parse(BASE + train_keys, "run.toml")


def test_report_to_defaults_to_none_and_takes_the_two_trackers():
    assert parse("").train.report_to == ["none"] and parse("").train.trackers == []
    cfg = parse('report_to = ["tensorboard", "wandb"]\n')
    assert cfg.train.trackers == ["tensorboard", "wandb"]
    assert config.load("qwen3-8b-paper").train.report_to == ["none"]
    assert config.load("cpu-demo").train.report_to == ["none"]


@pytest.mark.parametrize("value, message", [
    ('"tensorboard"', 'run.toml: train.report_to: give a list, e.g. report_to = ["tensorboard"]'),
    ('["mlflow"]', "run.toml: train.report_to.0: Input should be 'none', 'tensorboard' or 'wandb'"),
    ('["none", "tensorboard"]', 'run.toml: train.report_to: [\'none\', \'tensorboard\']: "none" means no tracker'),
    ('["wandb", "wandb"]', "run.toml: train.report_to: ['wandb', 'wandb']: a tracker is named twice"),
    ("[]", "run.toml: train.report_to: List should have at least 1 item"),
    ("[true]", "run.toml: train.report_to.0: Input should be 'none', 'tensorboard' or 'wandb'"),
])
def test_report_to_is_validated_with_its_key_path(value, message):
    with pytest.raises(UserError) as e:
        parse(f"report_to = {value}\n")
    assert str(e.value).startswith(message), str(e.value)


def test_preflight_names_a_tracker_that_is_not_installed(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(UserError, match=r"train.report_to: wandb is not installed here: pip install wandb"):
        trackers.check_installed(parse('report_to = ["wandb"]\n'))
    assert trackers.check_installed(parse("")) == "train.report_to: none"
    assert trackers.check_installed(parse('report_to = ["tensorboard"]\n')).startswith("train.report_to: tensorboard")


def test_report_to_reaches_trls_config_with_the_run_as_its_name(tmp_path):
    from core.stages import train
    from core.stages.base import StageContext

    run_dir = tmp_path / "tiny-20261201-000000"
    for keys, expected in (("", []), ('report_to = ["tensorboard"]\n', ["tensorboard"])):
        ctx = StageContext(cfg=parse(keys + "batch_size = 2\nmicro_batch = 2\n"), run_dir=run_dir, iteration=1,
                           model_path="/unused")
        args = train.training_args(ctx, "sft", 4, tmp_path / "out")  # trl's SFTConfig; loads no model
        assert args.report_to == expected and args.run_name == run_dir.name


def test_step_offset_adds_the_earlier_iterations_steps(tmp_path):
    from core.stages.base import mark_done

    for j, steps in ((1, 3), (2, 5)):
        (tmp_path / f"iter-{j}").mkdir()
        mark_done(tmp_path / f"iter-{j}", "train", {"steps": steps})
    assert [trackers.step_offset(tmp_path, j) for j in (1, 2, 3, 4)] == [0, 3, 8, 8]


SUMMARIES = {
    "bfcl": {"per_category": {"simple_python": {"correct": 1, "total": 2, "accuracy": 0.5},
                              "multiple": {"correct": 2, "total": 2, "accuracy": 1.0}},
             "scores": {"overall": 0.25, "multi_turn": None}},
    "acebench": {"per_category": {"normal_atom_bool": {"correct": 0, "total": 1, "accuracy": 0.0}},
                 "scores": {"overall": 0.0}},
}


def test_eval_scalars_per_benchmark_category_mean_and_column():
    assert trackers.eval_scalars(SUMMARIES) == {
        "heldout/bfcl/simple_python": 0.5, "heldout/bfcl/multiple": 1.0, "heldout/bfcl/mean": 0.75,
        "bfcl/overall": 0.25, "heldout/acebench/normal_atom_bool": 0.0, "heldout/acebench/mean": 0.0,
        "acebench/overall": 0.0}  # a None score is not logged


def test_eval_results_are_logged_per_iteration_and_read_back_by_tensorboard(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = parse('report_to = ["tensorboard"]\n')
    for j in (0, 1, 2):
        summaries = json.loads(json.dumps(SUMMARIES))
        summaries["bfcl"]["scores"]["overall"] = 0.1 * j
        trackers.log_eval(cfg, tmp_path, j, summaries)
    assert trackers.log_eval(parse(""), tmp_path / "none", 0, SUMMARIES) == {}
    assert not (tmp_path / "none").exists()
    events = EventAccumulator(str(tmp_path / "tracker" / "eval"))
    events.Reload()
    assert set(events.Tags()["scalars"]) == set(trackers.eval_scalars(SUMMARIES))
    overall = events.Scalars("bfcl/overall")
    assert [e.step for e in overall] == [0, 1, 2]
    assert [e.value for e in overall] == pytest.approx([0.0, 0.1, 0.2])
    assert [e.value for e in events.Scalars("heldout/bfcl/mean")] == pytest.approx([0.75] * 3)
