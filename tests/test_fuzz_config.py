"""Property tests of the run-config parser (core.config.parse / load): whatever the text, bytes or values,
the answer is a validated RunConfig or the documented UserError, as one line naming where -- never
another exception. Counter-examples found while writing these are kept as explicit @example cases."""
from __future__ import annotations

import json
import math
import tomllib
from datetime import date, datetime, time

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from core import config
from core.config import RunConfig
from core.errors import UserError

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PRESET = config.preset_text("cpu-demo")
PRESET_DATA = tomllib.loads(PRESET)


def outcome(text: str, where: str = "fuzz.toml"):
    """parse's answer: the config, or the UserError's message (checked to be one line naming `where`)."""
    try:
        cfg = config.parse(text, where)
    except UserError as e:
        msg = str(e)
        assert msg.startswith(f"{where}: ") and "\n" not in msg and "\r" not in msg, msg
        return msg
    assert isinstance(cfg, RunConfig) and cfg.text == text
    return cfg


# -- TOML text built from values, so that the fuzzing reaches validation, not just the TOML reader ------

def quoted(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # TOML's basic strings take JSON's escapes


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, (int, datetime, date, time)):
        return v.isoformat() if not isinstance(v, int) else str(v)
    if isinstance(v, str):
        return quoted(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return "{" + ", ".join(f"{quoted(k)} = {toml_value(x)}" for k, x in v.items()) + "}"


def toml_doc(data: dict) -> str:
    """Top-level tables as [sections] (as run configs are written), everything below inline."""
    lines = []
    for key, value in data.items():
        if isinstance(value, dict):
            lines.append(f"[{quoted(key)}]")
            lines += [f"{quoted(k)} = {toml_value(v)}" for k, v in value.items()]
        else:
            lines.insert(0, f"{quoted(key)} = {toml_value(value)}")
    return "\n".join(lines) + "\n"


keys = st.one_of(st.sampled_from(sorted({k for sec in PRESET_DATA.values() for k in sec} | set(PRESET_DATA))),
                 st.text(max_size=12))
scalars = st.one_of(
    st.booleans(), st.integers(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=40),
    st.sampled_from(["auto", "cpu", "cuda:0", "tpu:7", "hf", "file", "all", "x" * 5000]),
    st.dates(), st.datetimes(), st.times())
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
                      max_leaves=12)


@FUZZ
@given(st.text(max_size=400))
@example("[run]\nname = \"t\"\n[eval]\nbfcl_per_category = -3\n")
@example("a = " + "[" * 100_000)  # tomllib recurses: RecursionError
@example("[run]\nname = \"t\"\nseed = 1" + "0" * 5000 + "\n")  # int()'s 4300-digit limit: ValueError
@example("[run]\nname = \"t\"\n[train]\nepochs = inf\n")
@example("[run]\nname = \"t\"\n\"a\\nb\" = 1\n")  # a key with a newline in the error line
def test_any_text_gives_a_config_or_one_error_line(text):
    outcome(text)


@FUZZ
@given(st.dictionaries(keys, values, max_size=6))
def test_any_toml_document_gives_a_config_or_one_error_line(data):
    outcome(toml_doc(data))


def _set(data: dict, section: str, key: str, value) -> dict:
    out = {k: dict(v) for k, v in data.items()}
    out.setdefault(section, {})[key] = value
    return out


@FUZZ
@given(st.sampled_from([(s, k) for s, sec in PRESET_DATA.items() for k in sec]), values)
@example(("eval", "bfcl_per_category"), -3)
@example(("eval", "bfcl_per_category"), 0)
@example(("assemble", "fresh_seeds"), [48, -1])
@example(("train", "epochs"), math.inf)
@example(("train", "lr"), math.nan)
@example(("run", "seed"), 2**64)
@example(("run", "seed"), 2**40)  # numpy's seed (seed + iteration) must stay below 2**32
@example(("run", "iterations"), True)
@example(("run", "name"), "x" * 300)  # a run directory name past the file system's 255 bytes
@example(("model", "device"), "tpu:7")
def test_any_value_of_a_preset_key_gives_a_config_or_one_error_line(where, value):
    section, key = where
    got = outcome(toml_doc(_set(PRESET_DATA, section, key, value)))
    if isinstance(got, RunConfig):  # what validation let through stays in range
        assert got.run.name and len(got.run.name) <= 64 and 0 <= got.run.seed < 2**31
        assert all(math.isfinite(v) for sec in got.model_dump().values() if isinstance(sec, dict)
                   for v in sec.values() if isinstance(v, float))
        assert all(n >= 0 for n in got.assemble.fresh_seeds)
        assert got.eval.bfcl_per_category is None or got.eval.bfcl_per_category >= 1


@FUZZ
@given(st.binary(max_size=300))
@example(b"[run]\nname = \"t\xff\"\n")
@example(b"\xef\xbb\xbf[run]\nname = \"bom\"\n")  # a UTF-8 BOM is no error
def test_any_bytes_in_a_config_file_give_a_config_or_one_error_line(tmp_path_factory, data):
    f = tmp_path_factory.mktemp("cfg") / "run.toml"
    f.write_bytes(data)
    try:
        cfg = config.load(str(f))
    except UserError as e:
        assert str(e).startswith(str(f)) or str(e).startswith(f"config {f}"), str(e)
        assert "\n" not in str(e)
    else:
        assert isinstance(cfg, RunConfig)
