"""Run configs that used to pass `looptool config check` and fail later (inside a worker, or with a
traceback): now one `error:` line naming the file and the key path, exit code 2, and -- at the start of
a run -- no run directory left behind."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from core import config, preflight
from core.errors import UserError

PRESET = config.preset_text("cpu-demo")


def looptool(*args: str, home=None) -> subprocess.CompletedProcess:
    env = {**os.environ, **({"LOOPTOOL_HOME": str(home)} if home else {})}
    return subprocess.run([sys.executable, "-m", "console.cli", *args], capture_output=True, text=True,
                          timeout=300, env=env)


def one_error_line(p: subprocess.CompletedProcess) -> str:
    assert p.returncode == 2, (p.stdout, p.stderr)
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in p.stderr, p.stderr
    return lines[0]


def edited(tmp_path, pattern: str, replacement: str) -> str:
    """The cpu-demo preset with one line replaced, as a file."""
    text, n = re.subn(pattern, replacement, PRESET, count=1, flags=re.M)
    assert n == 1, pattern
    f = tmp_path / "run.toml"
    f.write_text(text)
    return str(f)


# (pattern in the cpu-demo preset, replacement, the error line after `error: FILE: `)
BAD_VALUES = {
    "bfcl_per_category = -3": (r"^bfcl_per_category = 50", "bfcl_per_category = -3",
                               "eval.bfcl_per_category: Input should be greater than or equal to 1"),
    "bfcl_per_category = 0": (r"^bfcl_per_category = 50", "bfcl_per_category = 0",
                              "eval.bfcl_per_category: Input should be greater than or equal to 1"),
    "negative fresh_seeds": (r"^fresh_seeds = \[48\]", "fresh_seeds = [48, -5]",
                             "assemble.fresh_seeds.1: Input should be greater than or equal to 0"),
    "epochs = inf": (r"^epochs = 2", "epochs = inf", "train.epochs: Input should be a finite number"),
    "lr = nan": (r"^lr = 5e-6", "lr = nan", "train.lr: Input should be a finite number"),
    "device tpu:7": (r'^device = "cpu"', 'device = "tpu:7"',
                     "model.device: 'tpu:7' is not a device: use auto, cpu, cuda or cuda:N"),
    "a bool for a number": (r"^iterations = 2", "iterations = true", "run.iterations: Input should be a valid integer"),
    "seed past numpy's range": (r"^seed = 0", "seed = 4294967295",
                                "run.seed: Input should be less than or equal to 2147483647"),
    "an integer past 64 bits": (r"^seed = 0", "seed = 18446744073709551616",
                                "run.seed: integer outside TOML's 64-bit range"),
}


@pytest.mark.parametrize("name", BAD_VALUES)
def test_config_check_rejects_out_of_range_and_non_finite_values(tmp_path, name):
    pattern, replacement, message = BAD_VALUES[name]
    f = edited(tmp_path, pattern, replacement)
    assert one_error_line(looptool("config", "check", f)) == f"error: {f}: {message}"


# what the config names on this machine: found by `config check`, not by a worker
MISSING_THINGS = {
    "a missing model path": (r'^name = "embedded"', 'name = "/no/such/model"',
                             "model.name: unknown model '/no/such/model': not a configured name"),
    "an unknown BFCL category": (r"^bfcl_categories = .*", 'bfcl_categories = "simple_python,bogus"',
                                 "eval.bfcl_categories: unknown category 'bogus'; choose from groups"),
    "an unknown ACEBench category": (r"^acebench_categories = .*", 'acebench_categories = "normal,nope"',
                                     "eval.acebench_categories: unknown category 'nope'"),
    "a CUDA device this machine lacks": (r'^device = "cpu"', 'device = "cuda:999"',
                                         "model.device: 'cuda:999': this machine has"),
}


@pytest.mark.parametrize("name", MISSING_THINGS)
def test_config_check_verifies_what_the_config_names(tmp_path, name):
    pattern, replacement, message = MISSING_THINGS[name]
    f = edited(tmp_path, pattern, replacement)
    assert one_error_line(looptool("config", "check", f)).startswith(f"error: {f}: {message}")
    assert looptool("config", "check", "--syntax-only", f).returncode == 0  # keys and values are fine


def test_config_check_verifies_the_seeds_path(tmp_path):
    f = edited(tmp_path, r'^source = "procedural"', f'source = "file"\npath = "{tmp_path / "none.jsonl"}"')
    assert one_error_line(looptool("config", "check", f)) == f"error: seed file {tmp_path / 'none.jsonl'}: no such file"


def test_a_config_file_that_is_not_utf8_or_a_directory_is_one_error_line(tmp_path):
    f = tmp_path / "latin1.toml"
    f.write_bytes(b'[run]\nname = "caf\xe9"\n')
    assert one_error_line(looptool("config", "check", str(f))) == \
        f"error: {f}:2: not UTF-8 text (byte 0xe9 at column 12)"
    assert one_error_line(looptool("config", "check", str(tmp_path))) == \
        f"error: config {tmp_path}: is a directory, not a file"


@pytest.mark.parametrize("name", ["a missing model path", "an unknown BFCL category"])
def test_a_run_that_fails_the_check_leaves_no_run_directory(tmp_path, name):
    pattern, replacement, message = MISSING_THINGS[name]
    f = edited(tmp_path, pattern, replacement)
    home = tmp_path / "home"
    line = one_error_line(looptool("core", "--config", f, "--no-bus", home=home))
    assert line.startswith(f"error: {f}: {message}")
    assert not (home / "runs").exists()


def test_a_good_config_passes_and_says_what_was_checked(tmp_path):
    p = looptool("config", "check", edited(tmp_path, r'^name = "cpu-demo"', 'name = "mine"'))
    assert p.returncode == 0, p.stderr
    assert "ok (run mine" in p.stdout and "  model.device: cpu, on the CPU in " in p.stdout
    from core.hardware import cpu_precision

    assert cpu_precision() in p.stdout  # bf16 or the float32 fallback, whichever this CPU gets
    assert "  benchmarks: bfcl, acebench settings ok" in p.stdout


# -- in process: the parser and the checks -----------------------------------------------------------

@pytest.mark.parametrize("text, message", [
    ('[run]\nname = "t"\n[seeds]\nsource = "hub"\n', "(top level): seeds.hub_id is required"),
    ('[run]\nname = "t"\n[seeds]\nsource = "llm"\n', "(top level): seeds.source = 'llm' needs a generator model"),
    ('[run]\nname = "t"\n[judge]\nkind = "llm"\n[judge.llm]\nmodel = "m"\n',
     "(top level): judge.llm.base_url (or model.base_url) is required"),
    ('[run]\nname = "t"\n[eval]\nacebench_user_model = "m"\nacebench_user_backend = "openai-chat"\n',
     "(top level): eval.acebench_user_base_url is required"),
    ('[run]\nname = "' + "x" * 65 + '"\n', "run.name: String should have at most 64 characters"),
    ('[run]\nname = "t"\n[train]\nepochs = 2.0\nnum_generations = 4.0\n',
     "train.num_generations: Input should be a valid integer"),
    ('[run]\nname = "t"\n"a.b\\nc" = 1\n', 'run."a.b\\nc": unknown key'),
    ("a = " + "[" * 100_000, "not valid TOML: arrays or tables nested too deeply"),
    ('[run]\nname = "t"\nseed = 1' + "0" * 5000 + "\n", "not valid TOML: Exceeds the limit"),
])
def test_parse_rejects_with_the_key_path(text, message):
    with pytest.raises(UserError) as e:
        config.parse(text, "x.toml")
    assert str(e.value).startswith(f"x.toml: {message}") and "\n" not in str(e.value)


def test_parse_refuses_a_config_over_the_size_limit():
    with pytest.raises(UserError, match="over the limit"):
        config.parse('[run]\nname = "t"\n' + "#" * config.MAX_CONFIG_BYTES, "big.toml")


def test_preflight_names_a_models_toml_that_is_not_utf8(tmp_path, monkeypatch):
    monkeypatch.setenv("LOOPTOOL_HOME", str(tmp_path))
    (tmp_path / "models.toml").write_bytes(b'[models.m]\npath = "\xff"\n')
    cfg = config.parse(PRESET.replace('name = "embedded"', 'name = "m"'), "run.toml")
    with pytest.raises(UserError) as e:
        preflight.check_run(cfg, "run.toml")
    assert str(e.value) == f"run.toml: model.name: {tmp_path / 'models.toml'}:2: not UTF-8 text (byte 0xff at column 9)"


def test_preflight_checks_the_judge_model_it_would_load(tmp_path):
    text = PRESET.replace('kind = "rule"', 'kind = "llm"\n[judge.llm]\nmodel = "/no/judge"\nbackend = "hf"')
    with pytest.raises(UserError, match=r"^run.toml: judge.llm.model: unknown model '/no/judge'"):
        preflight.check_run(config.parse(text, "run.toml"), "run.toml")


def test_preflight_checks_acebench_data_dir(tmp_path):
    text = PRESET.replace("acebench_max_new_tokens = 128",
                          f"acebench_max_new_tokens = 128\nacebench_data_dir = {json.dumps(str(tmp_path / 'no'))}")
    with pytest.raises(UserError, match=r"^run.toml: eval.acebench_data_dir: .*: no such directory"):
        preflight.check_run(config.parse(text, "run.toml"), "run.toml")
