"""trl's vLLM rollouts for GRPO, as `train.vllm_mode` chooses them (trl 1.16's GRPOConfig, read from its
source: trl/trainer/grpo_config.py, trl/generation/vllm_generation.py, trl/scripts/vllm_serve.py).

    colocate   vLLM runs inside every training process and shares its GPU: `vllm.LLM(...,
               distributed_executor_backend="external_launcher")`, its memory capped by
               vllm_gpu_memory_utilization (what the policy's ZeRO-3 shards, activations and optimizer
               state leave), tensor parallel over groups of vllm_tensor_parallel_size consecutive ranks
               (which must divide the number of processes), optionally asleep during the optimizer
               step. Nothing to start; generation and training take turns on the same GPUs.
    server     vLLM runs as its own server on GPUs of its own; rank 0 sends it the prompts over HTTP
               and pushes the new weights through an NCCL group after each step. Either a running
               server (vllm_server_url), or one the stage starts (vllm_server_gpus): `rollout_server`
               runs it as a child process (core.child_process: own log iter-j/vllm-serve.log, health
               wait, stopped with the stage), hides its GPUs from training through CUDA_VISIBLE_DEVICES
               and launches training on the others.

The server's command is the one `trl vllm-serve` runs: trl 1.16's `trl vllm-serve` only builds a `vllm
serve` command line (trl.scripts.vllm_serve.build_command: the NCCL weight-transfer engine, processed
logprobs for the importance-sampling correction, no logprob cap) and execs it with VLLM_SERVER_DEV_MODE=1
behind a deprecation warning; the stage runs that same command and environment directly.

`grpo_vllm_kwargs` is the pure mapping from the train section to GRPOConfig's fields; tests construct
a real GRPOConfig from it.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from core.config import TrainSection
from core.errors import UserError

SERVER_URL_ENV = "LOOPTOOL_VLLM_SERVER_URL"  # the started server's URL, for the training processes
SERVER_LOG = "vllm-serve.log"
SERVER_HOST = "127.0.0.1"  # rank 0 runs on this node; the NCCL weight group connects to the same host


def needs_vllm(tcfg: TrainSection, iteration: int | None = None) -> bool:
    """Whether training (iteration `iteration`, or any) uses vLLM: only GRPO generates."""
    if not tcfg.use_vllm:
        return False
    return tcfg.method_for(iteration) == "grpo" if iteration is not None else "grpo" in tcfg.methods


# trl's defaults: GRPOConfig.vllm_gpu_memory_utilization (colocate: the GPU is shared with training) and
# `trl vllm-serve --gpu_memory_utilization` (server: the GPU is the server's own)
DEFAULT_MEMORY_FRACTION = {"colocate": 0.3, "server": 0.9}


def memory_fraction(tcfg: TrainSection) -> float:
    """The share of each of its GPUs' memory vLLM takes (train.vllm_gpu_memory_utilization, or trl's default)."""
    return tcfg.vllm_gpu_memory_utilization or DEFAULT_MEMORY_FRACTION[tcfg.vllm_mode]


def max_model_len(tcfg: TrainSection) -> int:
    """vLLM's context: the longest prompt training keeps plus the longest completion (trl: "at least the
    maximum prompt length in the dataset plus max_completion_length")."""
    return tcfg.max_prompt_tokens + tcfg.max_new_tokens


def grpo_vllm_kwargs(tcfg: TrainSection, server_url: str | None = None) -> dict:
    """GRPOConfig's vLLM fields for the train section. Server mode talks to `server_url` (the server
    `rollout_server` started), else to train.vllm_server_url."""
    if not tcfg.use_vllm:
        return {"use_vllm": False}
    if tcfg.vllm_mode == "colocate":
        return {"use_vllm": True, "vllm_mode": "colocate",
                "vllm_gpu_memory_utilization": memory_fraction(tcfg),
                "vllm_tensor_parallel_size": tcfg.vllm_tensor_parallel_size,
                "vllm_max_model_length": max_model_len(tcfg),
                "vllm_enable_sleep_mode": tcfg.vllm_enable_sleep_mode}
    url = server_url or tcfg.vllm_server_url
    if url is None:
        raise RuntimeError("train.vllm_mode = 'server': no server URL (the stage starts the server of "
                           "train.vllm_server_gpus before training and passes its URL in " + SERVER_URL_ENV + ")")
    # the memory fraction, tensor parallelism and context length belong to the server's command line
    return {"use_vllm": True, "vllm_mode": "server", "vllm_server_base_url": url,
            "vllm_server_timeout": tcfg.vllm_server_timeout_s}


def describe(tcfg: TrainSection, processes: int | None = None) -> str:
    """One line on how rollouts run, for `config check` and the messages of its checks."""
    if not tcfg.use_vllm:
        return "rollouts through model.generate (train.use_vllm = false)"
    if tcfg.vllm_mode == "colocate":
        who = f"the {processes} training processes" if processes else "the training processes"
        tp = tcfg.vllm_tensor_parallel_size
        engines = "one engine per process" if tp == 1 else f"one engine per {tp} of them (tensor parallel)"
        sleep = ", asleep during optimizer steps" if tcfg.vllm_enable_sleep_mode else ""
        return (f"vllm_mode = 'colocate': vLLM inside {who}, on their GPUs, {engines}, "
                f"{memory_fraction(tcfg):.0%} of each GPU's memory{sleep}")
    if tcfg.vllm_server_url:
        return f"vllm_mode = 'server': trl's vLLM server at {tcfg.vllm_server_url}"
    gpus = ",".join(map(str, tcfg.vllm_server_gpus))
    return (f"vllm_mode = 'server': the stage starts trl vllm-serve on GPU{'s' if len(tcfg.vllm_server_gpus) > 1 else ''} "
            f"{gpus} (tensor parallel {tcfg.vllm_tensor_parallel_size}, {memory_fraction(tcfg):.0%} "
            f"of their memory, log iter-N/{SERVER_LOG}); training runs on the other GPUs")


def server_command(tcfg: TrainSection, model: str) -> list[str]:
    """The `vllm serve` command line `trl vllm-serve` would exec for this train section (trl's own
    build_command; see the module docstring)."""
    from trl.scripts.vllm_serve import ScriptArguments, build_command

    return build_command(ScriptArguments(
        model=model, host=SERVER_HOST, port=tcfg.vllm_server_port,
        tensor_parallel_size=tcfg.vllm_tensor_parallel_size,
        gpu_memory_utilization=memory_fraction(tcfg),
        max_model_len=max_model_len(tcfg),
        enable_prefix_caching=True,  # a prompt's G rollouts share it; trl resets the cache after weight pushes
    ))


def visible_gpus() -> list[str]:
    """The GPUs this process sees, as CUDA_VISIBLE_DEVICES entries: its own list when set (indices or
    UUIDs), else 0..N-1. train.vllm_server_gpus index into this list."""
    if (env := os.environ.get("CUDA_VISIBLE_DEVICES")) is not None:
        return [d.strip() for d in env.split(",") if d.strip()]
    return [str(i) for i in range(gpu_count())]


def gpu_count() -> int:
    """How many GPUs the machine has, counted without starting CUDA in this process where possible: CUDA
    reads CUDA_VISIBLE_DEVICES once, when it starts, and training in this process must see only the
    GPUs the server left it. NVML (the gpu extra's nvidia-ml-py), else the driver's /proc entries, else
    torch (which starts CUDA)."""
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            return int(pynvml.nvmlDeviceGetCount())
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # not installed, no driver: the next way
        pass
    gpus = Path("/proc/driver/nvidia/gpus")
    if gpus.is_dir():
        return sum(1 for _ in gpus.iterdir())
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def split_gpus(server_gpus: Sequence[int], visible: Sequence[str]) -> tuple[list[str], list[str]]:
    """(the server's devices, training's devices) out of `visible`; UserError when an index does not
    exist or nothing is left for training."""
    have = f"{len(visible)} GPU{'s' if len(visible) != 1 else ''}" if visible else "no GPU"
    missing = [i for i in server_gpus if i >= len(visible)]
    if missing:
        raise UserError(f"train.vllm_server_gpus: GPU {missing[0]} does not exist: this machine has {have}")
    taken = set(server_gpus)
    server = [visible[i] for i in server_gpus]
    training = [d for i, d in enumerate(visible) if i not in taken]
    if not training:
        raise UserError(f"train.vllm_server_gpus: {list(server_gpus)} takes all {have} of this machine: "
                        "none is left for training (give the server fewer GPUs, or use vllm_mode = 'colocate')")
    return server, training


@dataclass
class Rollouts:
    """What training needs to know about the rollout server of this stage."""

    url: str | None = None  # server mode: where it answers
    training_gpus: list[str] | None = None  # a started server: the CUDA_VISIBLE_DEVICES training keeps


@contextlib.contextmanager
def rollout_server(ctx, command: list[str] | None = None, health_path: str = "/health") -> Iterator[Rollouts]:
    """For the duration of the train stage: the server of server mode with vllm_server_gpus, started as
    a child process on those GPUs and stopped on exit (also on a failure or a stop). Meanwhile this
    process's CUDA_VISIBLE_DEVICES lists only the training GPUs and SERVER_URL_ENV the server's URL, so
    what training starts (in process, or `accelerate launch`) inherits both. Yields an empty Rollouts
    when the stage starts nothing. `command` replaces the server's command line (tests stand a server
    in for it)."""
    from core.child_process import ManagedProcess
    from core.stages.base import StageStopped

    tcfg = ctx.cfg.train
    if not needs_vllm(tcfg, ctx.iteration) or tcfg.vllm_mode != "server":
        yield Rollouts()
        return
    if tcfg.vllm_server_url:
        yield Rollouts(url=tcfg.vllm_server_url)
        return
    server_gpus, training_gpus = split_gpus(tcfg.vllm_server_gpus, visible_gpus())
    url = f"http://{SERVER_HOST}:{tcfg.vllm_server_port}"
    log = Path(ctx.iter_dir) / SERVER_LOG
    env = {"CUDA_VISIBLE_DEVICES": ",".join(server_gpus),
           "VLLM_SERVER_DEV_MODE": "1"}  # the weight-transfer and prefix-cache routes trl uses (trl vllm-serve sets it)
    server = ManagedProcess(command or server_command(tcfg, ctx.model_path), log, url + health_path, env=env,
                            name="trl vllm-serve")
    saved = {k: os.environ.get(k) for k in ("CUDA_VISIBLE_DEVICES", SERVER_URL_ENV)}
    with server:
        ctx.emit("event", {"event": "vllm_server_starting", "stage": "train", "iteration": ctx.iteration,
                           "gpus": server_gpus, "url": url, "log": str(log)})
        waited = server.wait_healthy(tcfg.vllm_server_timeout_s, abort=ctx.control.stop.is_set)
        if waited is None:
            raise StageStopped()
        ctx.emit("event", {"event": "vllm_server_ready", "stage": "train", "iteration": ctx.iteration,
                           "seconds": round(waited, 1), "pid": server.pid})
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(training_gpus)
        os.environ[SERVER_URL_ENV] = url
        try:
            yield Rollouts(url=url, training_gpus=training_gpus)
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
