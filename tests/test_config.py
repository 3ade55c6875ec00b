"""Run configs: presets load; bad keys and values are rejected with their key path."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

from core import config
from core.errors import UserError


@pytest.mark.parametrize("name", config.PRESETS)
def test_presets_load(name):
    cfg = config.load(name)
    assert cfg.run.name == name


def test_paper_preset_holds_the_paper_recipe():
    c = config.load("qwen3-8b-paper")
    t = c.train
    assert (t.methods, t.lr, t.batch_size, t.num_generations, t.clip_low, t.clip_high, t.beta, t.epochs) == \
        (["grpo"], 1e-6, 128, 16, 0.2, 0.28, 0.0, 2)
    assert c.run.iterations == 4 and c.assemble.budget == 18304 and c.assemble.fresh_seeds == [5632, 2816, 1408]
    assert c.expand.k == 4 and c.judge.llm.model == c.expand.llm.model == "Qwen/Qwen3-32B"
    assert [c.assemble.fresh_for(j) for j in (2, 3, 4)] == [5632, 2816, 1408]
    assert t.sft_decision_weight == 1  # trl's plain SFT loss: the decision weight is not the paper's


def test_static_preset_differs_only_in_static_and_name():
    a = config.load("cpu-demo").model_dump()
    b = config.load("cpu-demo-static").model_dump()
    assert b["assemble"].pop("static") and not a["assemble"].pop("static")
    a["run"].pop("name"), b["run"].pop("name")
    assert a == b


BASE = '[run]\nname = "t"\n'


@pytest.mark.parametrize("extra,needle", [
    ('[train]\nlrr = 1\n', "train.lrr: unknown key"),
    ('[train]\nlr = "fast"\n', "train.lr: Input should be a valid number"),
    ('[train]\nlr = -1\n', "train.lr: Input should be greater than 0"),
    ('[train]\nmethods = ["ppo"]\n', "train.methods.0: Input should be 'sft' or 'grpo'"),
    ('[judge]\nkind = "llm"\n', "judge.llm is required"),
    ('[seeds]\nsource = "file"\n', "seeds.path is required"),
    ('[bogus]\nx = 1\n', "bogus: unknown key"),
    ('[run\n', "not valid TOML"),
])
def test_rejections_name_the_key(tmp_path, extra, needle):
    f = tmp_path / "run.toml"
    f.write_text(BASE + extra)
    with pytest.raises(UserError) as e:
        config.load(str(f))
    assert str(f) in str(e.value) and needle in str(e.value)


def test_missing_run_name():
    with pytest.raises(UserError, match="run: Field required"):
        config.parse("[train]\nlr = 1e-6\n", "x.toml")


def test_cli_show_and_check(tmp_path):
    out = subprocess.run([sys.executable, "-m", "console.cli", "config", "show", "cpu-demo"],
                         capture_output=True, text=True, check=True).stdout
    f = tmp_path / "mine.toml"
    f.write_text(out.replace('name = "cpu-demo"', 'name = "mine"'))
    p = subprocess.run([sys.executable, "-m", "console.cli", "config", "check", str(f)],
                       capture_output=True, text=True)
    assert p.returncode == 0 and "ok (run mine" in p.stdout
    f.write_text(re.sub(r"(?m)^budget = \d+", "budget = 0", out))
    p = subprocess.run([sys.executable, "-m", "console.cli", "config", "check", str(f)],
                       capture_output=True, text=True)
    assert p.returncode == 2 and "assemble.budget: Input should be greater than or equal to 1" in p.stderr
    p = subprocess.run([sys.executable, "-m", "console.cli", "config", "show", "nope"],
                       capture_output=True, text=True)
    assert p.returncode == 2 and "unknown preset 'nope'" in p.stderr
