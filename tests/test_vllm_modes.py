"""train.use_vllm / train.vllm_mode: the config keys, `config check`'s messages, the GRPOConfig that
training builds for each mode (trl's real GRPOConfig), and server mode's server started and stopped
with the stage, with tests/stand_in_server.py standing in for `trl vllm-serve` (no GPU, no vllm here).
Where a check needs CUDA devices that this machine lacks, torch's device count is a stand-in (the test
names say so)."""
from __future__ import annotations

import dataclasses
import importlib.util
import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import torch

from core import config, preflight
from core.child_process import ChildProcessFailed
from core.errors import UserError
from core.stages import train, train_vllm
from core.stages.base import Control, StageContext, StageStopped

ROOT = Path(__file__).resolve().parents[1]
STAND_IN = str(ROOT / "tests" / "stand_in_server.py")
BASE = '[run]\nname = "t"\n[train]\nmethods = ["grpo"]\n'
NO_VLLM = importlib.util.find_spec("vllm") is None


def parse(train_keys: str, extra: str = ""):
    return config.parse(BASE + train_keys + extra, "run.toml")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- config -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("keys,message", [
    ('vllm_mode = "server"\n', "run.toml: train: vllm_mode = 'server' needs vllm_server_gpus (the GPUs the "
                               "engine starts trl vllm-serve on) or vllm_server_url (a server already running)"),
    ('vllm_mode = "server"\nvllm_server_gpus = [7]\nvllm_server_url = "http://10.0.0.2:8000"\n',
     "run.toml: train: vllm_server_gpus starts a server and vllm_server_url names a running one: give one of them"),
    ('vllm_mode = "server"\nvllm_server_gpus = [6, 6]\nvllm_tensor_parallel_size = 2\n',
     "run.toml: train: vllm_server_gpus: [6, 6] names a GPU twice"),
    ('vllm_mode = "server"\nvllm_server_gpus = [6, 7]\n',
     "run.toml: train: vllm_server_gpus names 2 GPUs but vllm_tensor_parallel_size = 1"),
    ('vllm_mode = "server"\nvllm_server_url = "http://127.0.0.1:8000/v1"\n',
     "run.toml: train.vllm_server_url: 'http://127.0.0.1:8000/v1' is not a server's root URL"),
    ('vllm_mode = "remote"\n', "run.toml: train.vllm_mode: Input should be 'colocate' or 'server'"),
    ('vllm_gpu_memory_utilization = 1.5\n', "run.toml: train.vllm_gpu_memory_utilization: Input should be "
                                            "less than or equal to 1"),
    ('vllm_tensor_parallel_size = 0\n', "run.toml: train.vllm_tensor_parallel_size: Input should be greater"),
    ('vllm_server_gpus = [-1]\n', "run.toml: train.vllm_server_gpus.0: Input should be greater than or equal to 0"),
])
def test_vllm_keys_are_checked_with_their_key_path(keys, message):
    with pytest.raises(UserError) as e:
        parse(keys)
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_vllm_keys_default_to_trls_defaults():
    t = parse("use_vllm = true\n").train
    assert (t.vllm_mode, t.vllm_tensor_parallel_size, t.vllm_enable_sleep_mode, t.vllm_server_gpus,
            t.vllm_server_url) == ("colocate", 1, False, [], None)
    assert train_vllm.memory_fraction(t) == 0.3  # GRPOConfig's: the GPU is shared with training
    server = parse('vllm_mode = "server"\nvllm_server_gpus = [7]\n').train
    assert train_vllm.memory_fraction(server) == 0.9  # trl vllm-serve's: the GPU is the server's own
    assert train_vllm.memory_fraction(parse("vllm_gpu_memory_utilization = 0.5\n").train) == 0.5
    assert parse('vllm_mode = "server"\nvllm_server_url = "http://10.0.0.2:8000/"\n').train.vllm_server_url \
        == "http://10.0.0.2:8000"


def test_paper_preset_colocates_vllm_with_zero3_training():
    t = config.load("qwen3-8b-paper").train
    assert (t.use_vllm, t.vllm_mode, t.launcher, t.accelerate_config) == (True, "colocate", "accelerate", "zero3")
    assert t.vllm_tensor_parallel_size == 2 and 0 < t.vllm_gpu_memory_utilization < 0.5
    assert 8 % t.vllm_tensor_parallel_size == 0  # zero3.yaml's 8 processes split into engine groups
    text = config.preset_text("qwen3-8b-paper")
    assert "colocate" in text and "server" in text and "ZeRO-3" in text  # says which mode and why


# -- GRPOConfig -------------------------------------------------------------------------------------

def grpo_args(tmp_path, cfg):
    ctx = StageContext(cfg=cfg, run_dir=tmp_path, iteration=1, model_path="/unused")
    return train.training_args(ctx, "grpo", 8, tmp_path / "out")  # trl's GRPOConfig; loads no model


def small(keys: str):
    return parse(keys + "batch_size = 2\nmicro_batch = 2\nnum_generations = 2\nmax_prompt_tokens = 300\n"
                        "max_new_tokens = 20\n")


def test_grpo_vllm_kwargs_are_grpo_config_fields():
    fields = {f.name for f in dataclasses.fields(__import__("trl").GRPOConfig)}
    for keys in ("use_vllm = true\n", 'use_vllm = true\nvllm_mode = "server"\nvllm_server_url = "http://h:1"\n',
                 "use_vllm = false\n"):
        kwargs = train_vllm.grpo_vllm_kwargs(parse(keys).train)
        assert set(kwargs) <= fields, set(kwargs) - fields


def test_colocate_mode_reaches_trls_grpo_config(tmp_path):
    cfg = small("use_vllm = true\nvllm_gpu_memory_utilization = 0.45\nvllm_tensor_parallel_size = 2\n"
                "vllm_enable_sleep_mode = true\n")
    args = grpo_args(tmp_path, cfg)
    assert (args.use_vllm, args.vllm_mode, args.vllm_gpu_memory_utilization, args.vllm_tensor_parallel_size,
            args.vllm_enable_sleep_mode, args.vllm_max_model_length) == (True, "colocate", 0.45, 2, True, 320)


def test_server_mode_with_a_url_reaches_trls_grpo_config(tmp_path):
    cfg = small('use_vllm = true\nvllm_mode = "server"\nvllm_server_url = "http://10.0.0.2:8000"\n'
                "vllm_server_timeout_s = 60\n")
    args = grpo_args(tmp_path, cfg)
    assert (args.use_vllm, args.vllm_mode, args.vllm_server_base_url, args.vllm_server_timeout) == \
        (True, "server", "http://10.0.0.2:8000", 60.0)


def test_server_mode_trains_against_the_server_the_stage_started(tmp_path, monkeypatch):
    cfg = small('use_vllm = true\nvllm_mode = "server"\nvllm_server_gpus = [1]\n')
    monkeypatch.delenv(train_vllm.SERVER_URL_ENV, raising=False)
    with pytest.raises(RuntimeError, match="no server URL"):
        grpo_args(tmp_path, cfg)
    monkeypatch.setenv(train_vllm.SERVER_URL_ENV, "http://127.0.0.1:8123")
    args = grpo_args(tmp_path, cfg)
    assert (args.vllm_mode, args.vllm_server_base_url) == ("server", "http://127.0.0.1:8123")


def test_without_vllm_grpo_generates_with_the_policy(tmp_path):
    assert grpo_args(tmp_path, small("")).use_vllm is False


def test_server_command_is_trls_vllm_serve_command():
    t = parse('use_vllm = true\nvllm_mode = "server"\nvllm_server_gpus = [6, 7]\nvllm_tensor_parallel_size = 2\n'
              "vllm_gpu_memory_utilization = 0.9\nvllm_server_port = 8100\n").train
    cmd = train_vllm.server_command(t, "/models/qwen3-8b")
    assert cmd[:5] == [sys.executable, "-m", "vllm.entrypoints.cli.main", "serve", "/models/qwen3-8b"]
    flags = {cmd[i]: cmd[i + 1] for i in range(5, len(cmd) - 1) if cmd[i].startswith("--")}
    assert (flags["--host"], flags["--port"], flags["--tensor-parallel-size"], flags["--gpu-memory-utilization"],
            flags["--max-model-len"]) == ("127.0.0.1", "8100", "2", "0.9", str(4096 + 1024))
    assert "--enable-prefix-caching" in cmd and flags["--logprobs-mode"] == "processed_logprobs"
    assert "--weight-transfer-config" in cmd  # how rank 0 pushes the new weights after each step


def test_split_gpus_gives_the_server_its_gpus_and_training_the_rest():
    assert train_vllm.split_gpus([6, 7], [str(i) for i in range(8)]) == (["6", "7"], [str(i) for i in range(6)])
    assert train_vllm.split_gpus([0], ["GPU-a", "GPU-b"]) == (["GPU-a"], ["GPU-b"])  # CUDA_VISIBLE_DEVICES UUIDs
    with pytest.raises(UserError, match=r"^train.vllm_server_gpus: GPU 2 does not exist: this machine has 2 GPUs$"):
        train_vllm.split_gpus([2], ["0", "1"])
    with pytest.raises(UserError, match=r"^train.vllm_server_gpus: \[0, 1\] takes all 2 GPUs of this machine: "
                                        r"none is left for training"):
        train_vllm.split_gpus([0, 1], ["0", "1"])


# -- the server of server mode, with a stand-in for trl vllm-serve -----------------------------------

def server_ctx(tmp_path, port: int, extra: str = "", stop: bool = False) -> tuple[StageContext, list]:
    cfg = parse(f'use_vllm = true\nvllm_mode = "server"\nvllm_server_gpus = [0]\nvllm_server_port = {port}\n'
                f"vllm_server_timeout_s = 30\n{extra}")
    events: list = []
    control = Control()
    if stop:
        control.stop.set()
    return StageContext(cfg=cfg, run_dir=tmp_path, iteration=1, model_path="/unused", control=control,
                        emit=lambda kind, data: events.append(data)), events


def test_stand_in_rollout_server_runs_for_the_stage_on_its_gpus(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    monkeypatch.delenv(train_vllm.SERVER_URL_ENV, raising=False)
    port = free_port()
    ctx, events = server_ctx(tmp_path, port)
    with train_vllm.rollout_server(ctx, command=[sys.executable, STAND_IN, "--port", str(port)]) as rollouts:
        assert rollouts.url == f"http://127.0.0.1:{port}" and rollouts.training_gpus == ["1"]
        assert os.environ["CUDA_VISIBLE_DEVICES"] == "1"  # what training (or accelerate launch) inherits
        assert os.environ[train_vllm.SERVER_URL_ENV] == rollouts.url
        assert httpx.get(rollouts.url + "/health", trust_env=False).status_code == 200
        pid = events[-1]["pid"]
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "0,1" and train_vllm.SERVER_URL_ENV not in os.environ
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{port}/health", trust_env=False, timeout=2)
    assert [e["event"] for e in events] == ["vllm_server_starting", "vllm_server_ready"]
    assert events[0]["gpus"] == ["0"] and pid > 0
    log = (tmp_path / "iter-1" / train_vllm.SERVER_LOG).read_text()
    assert "start: CUDA_VISIBLE_DEVICES=0 VLLM_SERVER_DEV_MODE=1 " in log and "stopped: exit code" in log


def test_stand_in_rollout_server_that_dies_fails_the_stage_and_restores_the_gpus(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    port = free_port()
    ctx, _ = server_ctx(tmp_path, port)
    command = [sys.executable, STAND_IN, "--port", str(port), "--say", "ValueError: not enough KV cache",
               "--exit-after", "0", "--exit-code", "1"]
    with pytest.raises(ChildProcessFailed, match=r"(?s)^trl vllm-serve exited with code 1 .*not enough KV cache"):
        with train_vllm.rollout_server(ctx, command=command):
            pytest.fail("training must not start")
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "0,1"


def test_stop_while_the_stand_in_rollout_server_loads_stops_the_stage(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    port = free_port()
    ctx, _ = server_ctx(tmp_path, port, stop=True)
    with pytest.raises(StageStopped):
        with train_vllm.rollout_server(ctx, command=[sys.executable, STAND_IN, "--port", str(port), "--unhealthy"]):
            pytest.fail("training must not start")
    assert "stopped: exit code" in (tmp_path / "iter-1" / train_vllm.SERVER_LOG).read_text()


def test_rollout_server_starts_nothing_for_colocate_a_given_url_or_sft(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    for keys in ("use_vllm = true\n", "use_vllm = false\n",
                 'use_vllm = true\nvllm_mode = "server"\nvllm_server_url = "http://10.0.0.2:8000"\n',
                 'use_vllm = true\nmethods = ["sft"]\nvllm_mode = "server"\nvllm_server_gpus = [0]\n'):
        cfg = config.parse(BASE.replace('methods = ["grpo"]\n', "") + keys, "run.toml")
        ctx = StageContext(cfg=cfg, run_dir=tmp_path, iteration=1, model_path="/unused")
        with train_vllm.rollout_server(ctx, command=["/nonexistent/server"]) as rollouts:
            assert rollouts.training_gpus is None and os.environ["CUDA_VISIBLE_DEVICES"] == "0,1"
            assert rollouts.url == cfg.train.vllm_server_url
    assert not (tmp_path / "iter-1" / train_vllm.SERVER_LOG).exists()


# -- config check -----------------------------------------------------------------------------------

NO_GPU = pytest.mark.skipif(torch.cuda.is_available(), reason="the message of a machine without GPUs")


@NO_GPU
def test_config_check_explains_the_paper_presets_vllm_mode_on_a_machine_without_gpus():
    with pytest.raises(UserError) as e:
        preflight.check_run(config.load("qwen3-8b-paper"), "preset qwen3-8b-paper")
    assert str(e.value) == (
        "preset qwen3-8b-paper: train.use_vllm: vllm_mode = 'colocate': vLLM inside the 8 training processes, "
        "on their GPUs, one engine per 2 of them (tensor parallel), 35% of each GPU's memory: vLLM rollouts run "
        "on CUDA GPUs, and this machine has none (set use_vllm = false to generate with model.generate)")


@NO_GPU
def test_looptool_config_check_paper_preset_prints_its_vllm_mode():
    p = subprocess.run([sys.executable, "-m", "console.cli", "config", "check", "qwen3-8b-paper"], cwd=ROOT,
                       capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert p.returncode == 2
    assert p.stderr.strip().splitlines()[-1].startswith(
        "error: qwen3-8b-paper: train.use_vllm: vllm_mode = 'colocate': vLLM inside the 8 training processes")


def test_use_vllm_on_cpu_is_refused():
    cfg = parse("use_vllm = true\n", '[model]\ndevice = "cpu"\n')
    with pytest.raises(UserError, match=r"^train.use_vllm: vllm_mode = 'colocate': .*: vLLM rollouts run on CUDA "
                                        r"GPUs, and model.device = 'cpu'"):
        preflight._check_vllm_rollouts(cfg)


def test_use_vllm_without_grpo_is_a_note():
    cfg = config.parse('[run]\nname = "t"\n[train]\nmethods = ["sft"]\nuse_vllm = true\n', "run.toml")
    assert preflight._check_vllm_rollouts(cfg) == ["train.use_vllm: unused, train.methods = ['sft'] has no GRPO"]
    assert preflight._check_vllm_rollouts(parse("")) == []


@pytest.fixture
def stand_in_cuda_8_gpus(monkeypatch):
    """torch's CUDA as an 8-GPU machine would report it (this machine has none)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 8)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


def test_server_taking_every_gpu_is_refused_on_stand_in_cuda(stand_in_cuda_8_gpus):
    gpus = list(range(8))
    cfg = parse(f'use_vllm = true\nvllm_mode = "server"\nvllm_server_gpus = {gpus}\nvllm_tensor_parallel_size = 8\n')
    with pytest.raises(UserError, match=r"^train.vllm_server_gpus: \[0, 1, 2, 3, 4, 5, 6, 7\] takes all 8 GPUs of "
                                        r"this machine: none is left for training"):
        preflight._check_vllm_rollouts(cfg)
    cfg = parse('use_vllm = true\nvllm_mode = "server"\nvllm_server_gpus = [8]\n')
    with pytest.raises(UserError, match=r"^train.vllm_server_gpus: GPU 8 does not exist: this machine has 8 GPUs"):
        preflight._check_vllm_rollouts(cfg)


def test_colocate_tensor_parallel_must_divide_the_training_processes_on_stand_in_cuda(stand_in_cuda_8_gpus):
    cfg = parse('use_vllm = true\nvllm_tensor_parallel_size = 3\nlauncher = "accelerate"\n'
                'accelerate_config = "zero3"\n')
    with pytest.raises(UserError, match=r"^train.vllm_tensor_parallel_size: .*groups of 3 training processes, "
                                        r"which must divide the 8 there are \(num_processes of "
                                        r"train.accelerate_config\)$"):
        preflight._check_vllm_rollouts(cfg)
    with pytest.raises(UserError, match=r"must divide the 1 there are \(train.launcher = 'inprocess' trains in "
                                        r"one process\)$"):
        preflight._check_vllm_rollouts(parse("use_vllm = true\nvllm_tensor_parallel_size = 2\n"))


@pytest.mark.skipif(not NO_VLLM, reason="vllm is installed")
@pytest.mark.parametrize("keys,mode", [
    ("use_vllm = true\n", "vllm_mode = 'colocate'"),
    ('use_vllm = true\nvllm_mode = "server"\nvllm_server_gpus = [6, 7]\nvllm_tensor_parallel_size = 2\n'
     'launcher = "accelerate"\n', "vllm_mode = 'server': the stage starts trl vllm-serve on GPUs 6,7"),
    ('use_vllm = true\nvllm_mode = "server"\nvllm_server_url = "http://10.0.0.2:8000"\n',
     "vllm_mode = 'server': trl's vLLM server at http://10.0.0.2:8000"),
])
def test_either_mode_without_vllm_installed_is_refused_on_stand_in_cuda(stand_in_cuda_8_gpus, keys, mode):
    with pytest.raises(UserError) as e:
        preflight._check_vllm_rollouts(parse(keys))
    assert str(e.value).startswith(f"train.use_vllm: {mode}")
    assert str(e.value).endswith(": vllm is not installed here: install the gpu extra (pip install 'looptool[gpu]')")
