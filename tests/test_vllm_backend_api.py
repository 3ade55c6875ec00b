"""core.backends.vllm against vLLM's documented API, checked without vllm (it needs a GPU and is not
installed here): the engine and sampling arguments the backend would pass, the pinned version range,
and how it frees an engine, on stand-in engine objects shaped like vllm.LLM (the names say so)."""
from __future__ import annotations

import importlib.util
import logging
import tomllib
from pathlib import Path
from types import SimpleNamespace

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from core.backends import load_backend
from core.backends.base import GenParams
from core.backends.vllm import (MISSING_VLLM, SUPPORTED_VLLM, VLLMBackend, check_version, engine_kwargs,
                                sampling_kwargs, shutdown_engine)
from core.errors import UserError

ROOT = Path(__file__).resolve().parents[1]


def test_engine_kwargs_turn_prefix_caching_on_and_report_raw_logprobs():
    assert engine_kwargs("/m") == {"model": "/m", "tensor_parallel_size": 1, "gpu_memory_utilization": 0.85,
                                   "enable_prefix_caching": True, "logprobs_mode": "raw_logprobs",
                                   "enable_lora": False}


def test_engine_kwargs_size_the_engine_and_its_lora_slots():
    kwargs = engine_kwargs("/m", tensor_parallel_size=2, gpu_memory_utilization=0.4, max_model_len=5120,
                           enable_lora=True, max_lora_rank=16, seed=7)
    assert (kwargs["tensor_parallel_size"], kwargs["gpu_memory_utilization"], kwargs["max_model_len"]) == (2, 0.4, 5120)
    assert (kwargs["enable_lora"], kwargs["max_lora_rank"], kwargs["max_loras"], kwargs["seed"]) == (True, 16, 1, 7)
    assert "max_lora_rank" not in engine_kwargs("/m")  # LoRA slots only when adapters are served
    with pytest.raises(UserError, match=r"gpu_memory_utilization must be in \(0, 1\], got 1.2"):
        engine_kwargs("/m", gpu_memory_utilization=1.2)
    with pytest.raises(UserError, match="tensor_parallel_size must be at least 1"):
        engine_kwargs("/m", tensor_parallel_size=0)


def test_sampling_kwargs_ask_for_the_sampled_tokens_logprobs():
    greedy = sampling_kwargs(GenParams(max_new_tokens=16, logprobs=True))
    assert greedy == {"max_tokens": 16, "temperature": 0.0, "top_p": 1.0, "logprobs": 1}
    assert "logprobs" not in sampling_kwargs(GenParams())  # None: vLLM computes none


def test_the_gpu_extra_pins_the_range_the_backend_supports():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["gpu"]
    vllm = [Requirement(r) for r in extras if Requirement(r).name == "vllm"]
    assert len(vllm) == 1 and vllm[0].specifier == SpecifierSet(SUPPORTED_VLLM)
    assert "0.22.0" in vllm[0].specifier and "0.31.0" in vllm[0].specifier and "0.21.0" not in vllm[0].specifier


def test_trls_supported_vllm_range_is_the_one_pinned():
    """The installed trl's own vllm extra: its GRPO rollouts warn outside it, so the gpu extra stays inside."""
    from importlib.metadata import requires

    trl_vllm = [Requirement(r) for r in requires("trl") or [] if Requirement(r).name == "vllm"]
    assert len(trl_vllm) == 1 and trl_vllm[0].specifier == SpecifierSet(SUPPORTED_VLLM)


def test_versions_outside_the_range_warn(caplog):
    with caplog.at_level(logging.WARNING, logger="looptool.vllm"):
        check_version("0.24.0+cu129")  # a local build tag counts as its release
        assert not caplog.records
        check_version("0.33.1")
    assert "vllm 0.33.1 is outside the range" in caplog.text


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed")
def test_without_vllm_the_backend_names_the_gpu_extra():
    with pytest.raises(UserError) as e:
        VLLMBackend("/m", tensor_parallel_size=2)
    assert str(e.value) == MISSING_VLLM == "the vllm backend needs the gpu extra: pip install 'looptool[gpu]'"
    with pytest.raises(UserError, match="gpu extra"):
        load_backend("vllm", "/m")


class StandInEngineCore:
    def __init__(self):
        self.shutdowns = 0

    def shutdown(self):
        self.shutdowns += 1


def test_shutdown_ends_a_stand_in_v1_engine_core():
    core = StandInEngineCore()
    llm = SimpleNamespace(llm_engine=SimpleNamespace(engine_core=core))  # no LLM.shutdown: older releases
    shutdown_engine(llm)
    assert core.shutdowns == 1


def test_shutdown_prefers_a_stand_in_llms_own_shutdown():
    own, core = StandInEngineCore(), StandInEngineCore()
    shutdown_engine(SimpleNamespace(shutdown=own.shutdown, llm_engine=SimpleNamespace(engine_core=core)))
    assert (own.shutdowns, core.shutdowns) == (1, 0)


def test_close_frees_a_stand_in_engine_once():
    core = StandInEngineCore()
    backend = object.__new__(VLLMBackend)  # the engine itself needs vllm and a GPU
    backend.llm = SimpleNamespace(llm_engine=SimpleNamespace(engine_core=core))
    backend.close()
    backend.close()
    assert backend.llm is None and core.shutdowns == 1
