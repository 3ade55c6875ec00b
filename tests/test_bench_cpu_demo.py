"""bench/cpu_demo.py's reporting on stand-in finished runs (eval.done files written here, no model): the
per-category Wilson intervals, the metric, loop - static with Newcombe's interval, ACEBench or its skip
reason, and the --acebench-data config copy."""
from __future__ import annotations

import json
import sys

from bench import cpu_demo
from bench.intervals import mean_of_proportions, newcombe_difference
from core import config

SKIPPED = "ACEBench data unavailable (offline). To evaluate ACEBench in the loop, set eval.acebench_data_dir"


def _eval_done(counts: dict[str, tuple[int, int]], acebench=None, skipped=None) -> dict:
    """An eval.done as core/stages/eval.py writes it."""
    bfcl = {"benchmark": "bfcl-v3", "config": {"categories": sorted(counts), "per_category": 50, "seed": 1234},
            "per_category": {k: {"correct": c, "total": n, "accuracy": c / n} for k, (c, n) in counts.items()},
            "scores": {"overall": 0.0}, "wall_s": 100.0}
    done = {"iteration": 0, "summaries": {"bfcl": bfcl}, "skipped": {}, "wall_s": 100.0}
    if acebench is not None:
        done["summaries"]["acebench"] = {
            "per_category": {k: {"correct": c, "total": n} for k, (c, n) in acebench.items()},
            "scores": {"normal": 0.25, "special": 0.5}, "wall_s": 90.0}
    if skipped is not None:
        done["skipped"]["acebench"] = skipped
    return done


def test_runs_recorded_before_the_eval_stage_read_the_same():
    new = _eval_done({"simple_python": (10, 50)}, acebench={"special_irrelevant": (2, 2)})
    old = {**new["summaries"]["bfcl"], "acebench": new["summaries"]["acebench"]}
    assert cpu_demo.bfcl_result(old) == cpu_demo.bfcl_result(new)
    assert cpu_demo.acebench_result(old) == cpu_demo.acebench_result(new)
    skipped = _eval_done({"simple_python": (10, 50)}, skipped=SKIPPED)
    assert cpu_demo.acebench_result({**skipped["summaries"]["bfcl"], "acebench_skipped": SKIPPED}) == \
        cpu_demo.acebench_result(skipped) == {"skipped": SKIPPED}


def _stand_in_run(root, name: str, preset: str, iterations: dict[int, dict]):
    run = root / name
    run.mkdir()
    (run / "config.toml").write_text(config.preset_text(preset))
    for j, done in iterations.items():
        d = run / f"iter-{j}"
        d.mkdir()
        (d / "eval.done").write_text(json.dumps(done))
        (d / "train.done").write_text(json.dumps({"wall_s": 61.4}))
    return run


def _runs(tmp_path):
    ace = {"normal_atom_bool": (1, 2), "special_irrelevant": (2, 2)}
    loop = _stand_in_run(tmp_path, "cpu-demo-1", "cpu-demo", {
        0: _eval_done({"simple_python": (10, 50), "irrelevance": (40, 50)}, acebench=ace),
        2: _eval_done({"simple_python": (30, 50), "irrelevance": (35, 50)}, acebench=ace)})
    static = _stand_in_run(tmp_path, "cpu-demo-static-1", "cpu-demo-static", {
        0: _eval_done({"simple_python": (10, 50), "irrelevance": (40, 50)}, skipped=SKIPPED),
        2: _eval_done({"simple_python": (20, 50), "irrelevance": (38, 50)}, skipped=SKIPPED)})
    return loop, static


def test_summary_carries_counts_metric_and_acebench(tmp_path):
    loop, static = _runs(tmp_path)
    s = cpu_demo.summarize(loop)
    assert not s["static"] and cpu_demo.summarize(static)["static"]
    row = s["iterations"][2]
    assert row["bfcl"]["per_category"] == {"simple_python": (30, 50), "irrelevance": (35, 50)}
    assert round(row["bfcl"]["metric"]["value"], 12) == 0.65
    assert row["acebench"]["pooled"]["value"] == 0.75 and row["acebench"]["normal"] == 0.25
    assert row["stage_s"] == {"train": 61, "eval": 100}
    assert cpu_demo.summarize(static)["iterations"][2]["acebench"] == {"skipped": SKIPPED}


def test_comparison_is_loop_minus_static_with_newcombe(tmp_path):
    loop, static = _runs(tmp_path)
    summaries = [cpu_demo.summarize(static), cpu_demo.summarize(loop)]  # order does not matter
    c = cpu_demo.compare(*cpu_demo._loop_and_static(summaries))
    assert c["loop"] == "cpu-demo-1" and c["iteration"] == 2 and c["same_entries"]
    want = newcombe_difference(mean_of_proportions([(30, 50), (35, 50)]), mean_of_proportions([(20, 50), (38, 50)]))
    got = c["bfcl"]["difference"]
    assert (got["value"], got["low"], got["high"]) == (want.value, want.low, want.high)
    assert round(got["value"], 4) == 0.07 and got["low"] < 0 < got["high"]
    assert "acebench" not in c  # the static run skipped it


def test_report_prints_intervals_and_the_skip_reason_once(tmp_path, capsys, monkeypatch):
    loop, static = _runs(tmp_path)
    out_json = tmp_path / "out.json"
    monkeypatch.setattr(sys, "argv", ["cpu_demo.py", "--summarize", str(loop), str(static), "--json", str(out_json)])
    cpu_demo.main()
    out = capsys.readouterr().out
    assert "simple_python   30/50   60.0 % [46.2, 72.4]" in out
    assert "BFCL held-out, mean over 2 categories: 65.0 % [" in out
    assert "ACEBench subset: 3/4 scored units 75.0 % [" in out
    assert out.count(SKIPPED) == 1 and "ACEBench: skipped (as above)" in out
    assert "cpu-demo-1 - cpu-demo-static-1 after iteration 2" in out and "+7.0 points [" in out
    assert "+15.0 points vs base" in out
    saved = json.loads(out_json.read_text())
    assert saved["comparison"]["iteration"] == 2 and len(saved["runs"]) == 2


def test_acebench_data_copy_sets_only_the_data_dir(tmp_path):
    for preset in ("cpu-demo", "cpu-demo-static"):
        path = cpu_demo.preset_config(preset, tmp_path / "data en", tmp_path)
        cfg, base = config.load(path), config.load(preset)
        assert cfg.eval.acebench_data_dir == str(tmp_path / "data en")
        assert cfg.model_dump(exclude={"eval": {"acebench_data_dir"}}) == base.model_dump(
            exclude={"eval": {"acebench_data_dir"}})
    assert cpu_demo.preset_config("cpu-demo", None, tmp_path) == "cpu-demo"
    text = cpu_demo.with_acebench_data('[run]\nname = "x"\n', tmp_path)
    assert config.parse(text, "t").eval.acebench_data_dir == str(tmp_path)


def test_seed_and_holdout_seed_copy_sets_only_those(tmp_path):
    path = cpu_demo.preset_config("cpu-demo", None, tmp_path, seed=7, holdout_seed=99)
    cfg, base = config.load(path), config.load("cpu-demo")
    assert (cfg.run.seed, cfg.eval.holdout_seed, base.run.seed) == (7, 99, 0)
    skip = {"run": {"seed"}, "eval": {"holdout_seed"}}
    assert cfg.model_dump(exclude=skip) == base.model_dump(exclude=skip)
    # a key of the same name in another section is left alone
    text = cpu_demo.with_setting('[run]\nseed = 1\n[other]\nseed = 5\n', "run", "seed", 2)
    assert text == '[run]\nseed = 2\n[other]\nseed = 5\n'
