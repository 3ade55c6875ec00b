"""Which stages an iteration runs, and whether bf16 is detected: no model, no worker."""
from __future__ import annotations

from core import config as config_mod
from core.engine import iteration_stages
from core.hardware import cpu_native_bf16, cpu_precision


def test_eval_follows_train_and_the_last_iteration_builds_no_next_dataset():
    cfg = config_mod.load("cpu-demo")
    assert cfg.run.iterations == 2
    assert iteration_stages(cfg, 1) == ["train", "eval", "probe", "judge", "expand", "assemble"]
    assert iteration_stages(cfg, 2) == ["train", "eval"]


def test_static_and_no_eval_plans():
    cfg = config_mod.load("cpu-demo-static")
    assert iteration_stages(cfg, 1) == ["train", "eval", "assemble"]
    assert iteration_stages(cfg, 2) == ["train", "eval"]
    cfg.eval.after_each_iteration = False
    assert iteration_stages(cfg, 1) == ["train", "assemble"]
    assert iteration_stages(cfg, 2) == ["train"]


def test_native_bf16_is_read_from_the_cpu_flags(tmp_path):
    native = tmp_path / "native"
    native.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx512f avx512_bf16 amx_tile\n\n")
    amx = tmp_path / "amx"
    amx.write_text("flags\t\t: fpu avx512f amx_bf16\n")
    emulated = tmp_path / "emulated"
    emulated.write_text("flags\t\t: fpu sse2 avx2 avx512f avx512bw\n")
    assert cpu_native_bf16(str(native)) and cpu_native_bf16(str(amx))
    assert not cpu_native_bf16(str(emulated))
    assert not cpu_native_bf16(str(tmp_path / "missing"))


def test_the_precision_note_says_which_and_why(tmp_path):
    native = tmp_path / "native"
    native.write_text("flags\t\t: fpu avx512f avx512_bf16\n")
    emulated = tmp_path / "emulated"
    emulated.write_text("flags\t\t: fpu sse2 avx avx2\n")
    assert cpu_precision(str(native)).startswith("bf16 (the CPU has native bf16)")
    fallback = cpu_precision(str(emulated))
    assert fallback.startswith("float32: this CPU has no AVX512-BF16 or AMX-BF16") and "bench/cpu_bf16.py" in fallback
