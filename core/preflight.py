"""What a run config names on this machine, checked before a run writes anything: `looptool config
check`, and `looptool core` before the run directory exists. A problem is one UserError naming the
config and the key (`run.toml: model.name: unknown model ...`; a seed file's problem names the seed
file and line instead: `seeds.jsonl:3: tools: expected a list ...`), so a config that would fail only inside a stage worker, after
seeding and model loading, fails here instead, leaving no run behind.

    models      model.name, and the judge's, the generator's and ACEBench's simulated user's model when
                they are loaded here (hf, vllm): resolvable by core.models without loading anything (the
                embedded model: its converted checkpoint, or the package it is converted from);
    devices     model.device cuda / cuda:N: that CUDA device exists (the config already allows only
                auto, cpu, cuda and cuda:N);
    seeds       seeds.source = "file": the file reads as UTF-8 text and at least one row becomes a valid
                sample (core.seeds.pool.file_seeds; bad rows are counted, not fatal);
    benchmarks  every registered benchmark's check of its settings (core.benchmarks.check_config:
                categories, ACEBench's data folder);
    training    train.accelerate_config, when train.launcher = "accelerate";
    rollouts    train.use_vllm (GRPO): CUDA GPUs, vllm installed, the server's GPUs exist and leave some
                for training, colocate's tensor parallel size divides the training processes;
    trackers    train.report_to: each tracker (tensorboard, wandb) is installed (core/trackers.py);
    servers     each judge or generator model the engine serves itself (serve = true, core/servers.py):
                its program is installed (the default command's vllm) and the GPUs it is given exist.

Hub datasets (seeds.source = "hub") and openai endpoints are not contacted: they are reached only by the
stage that uses them.
"""
from __future__ import annotations

import importlib.util

from core import models
from core.config import RunConfig
from core.errors import UserError


def check_run(cfg: RunConfig, where: str) -> list[str]:
    """Raise UserError at the first problem (`where` names the config); else one line per check, for
    `config check` to print."""
    try:
        notes = _check_vllm_rollouts(cfg)  # first: its lines say how the run generates, GPU or not
        notes.append(_check_device(cfg.model.device))
        for key, name in _local_models(cfg):
            notes.append(f"{key}: {_check_model(name, key)}")
        from core.benchmarks import check_config, registry

        check_config(cfg)
        notes.append(f"benchmarks: {', '.join(registry())} settings ok")
        if cfg.train.launcher == "accelerate":
            from core.stages.train_launch import accelerate_config_path

            notes.append(f"train.accelerate_config: {accelerate_config_path(cfg.train.accelerate_config)}")
        notes += _check_servers(cfg)
        from core.trackers import check_installed

        notes.append(check_installed(cfg))
    except UserError as e:
        raise UserError(f"{where}: {e}") from None
    return notes + _check_seeds(cfg)  # last, the slowest; its errors name their own file


def _check_servers(cfg: RunConfig) -> list[str]:
    """One note per served judge or generator model; UserError when it cannot start on this machine."""
    import shlex

    from core.servers import find_program, served

    notes = []
    for spec, stages in served(cfg):
        program = spec.argv[0]
        if find_program(program) is None:
            if program == "vllm":
                raise UserError(f"{spec.key}.serve: its server is `vllm serve` (serve_command), and vllm is not "
                                "installed here: install the gpu extra (pip install 'looptool[gpu]'), or set "
                                f"{spec.key}.serve_command, or serve = false and start the server yourself")
            raise UserError(f"{spec.key}.serve_command: {program!r} is not a program on this machine")
        gpus = ""
        if spec.gpus:
            import torch

            count = torch.cuda.device_count() if torch.cuda.is_available() else 0
            if (top := max(spec.gpus)) >= count:
                have = f"{count} CUDA device{'s' if count != 1 else ''}" if count else "no CUDA device"
                raise UserError(f"{spec.key}.serve_gpus: GPU {top}: this machine has {have}")
            gpus = f" on GPUs {','.join(map(str, spec.gpus))}"
        notes.append(f"{spec.key}.serve: the engine runs `{shlex.join(spec.argv)}`{gpus} for "
                     f"{', '.join(stages)} at {spec.base_url}, and stops it before train, eval and probe")
    return notes


def _check_vllm_rollouts(cfg: RunConfig) -> list[str]:
    """train.use_vllm on this machine: one note on how rollouts run; UserError naming the key and the mode
    when they cannot (core/stages/train_vllm.py)."""
    from core.stages import train_vllm

    tcfg = cfg.train
    if not tcfg.use_vllm:
        return []
    if not train_vllm.needs_vllm(tcfg):
        return [f"train.use_vllm: unused, train.methods = {tcfg.methods} has no GRPO"]
    processes = _training_processes(cfg)
    mode = train_vllm.describe(tcfg, processes)
    if cfg.model.device == "cpu":
        raise UserError(f"train.use_vllm: {mode}: vLLM rollouts run on CUDA GPUs, and model.device = 'cpu' "
                        "(set use_vllm = false to generate with model.generate)")
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if not count:
        raise UserError(f"train.use_vllm: {mode}: vLLM rollouts run on CUDA GPUs, and this machine has none "
                        "(set use_vllm = false to generate with model.generate)")
    if tcfg.vllm_mode == "server" and tcfg.vllm_server_gpus:
        _, training = train_vllm.split_gpus(tcfg.vllm_server_gpus, train_vllm.visible_gpus())
        processes = len(training) if tcfg.launcher == "accelerate" else 1
        mode = train_vllm.describe(tcfg, processes)
    if tcfg.vllm_mode == "colocate" and processes % tcfg.vllm_tensor_parallel_size:
        raise UserError(f"train.vllm_tensor_parallel_size: {mode}: colocated engines span groups of "
                        f"{tcfg.vllm_tensor_parallel_size} training processes, which must divide the "
                        f"{processes} there are ({_processes_source(cfg)})")
    if importlib.util.find_spec("vllm") is None:
        raise UserError(f"train.use_vllm: {mode}: vllm is not installed here: install the gpu extra "
                        "(pip install 'looptool[gpu]')")
    return [f"train.use_vllm: {mode}"]


def _training_processes(cfg: RunConfig) -> int:
    """How many processes train: 1 in process, else the accelerate config's num_processes."""
    if cfg.train.launcher != "accelerate":
        return 1
    import yaml

    from core.stages.train_launch import accelerate_config_path

    path = accelerate_config_path(cfg.train.accelerate_config)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise UserError(f"train.accelerate_config: {path}: {' '.join(str(e).split())}") from None
    count = data.get("num_processes", 1) if isinstance(data, dict) else 1
    return count if isinstance(count, int) and not isinstance(count, bool) and count > 0 else 1


def _processes_source(cfg: RunConfig) -> str:
    return ("num_processes of train.accelerate_config" if cfg.train.launcher == "accelerate"
            else "train.launcher = 'inprocess' trains in one process")


def _local_models(cfg: RunConfig) -> list[tuple[str, str]]:
    """(key, model) of every model the run resolves through core.models."""
    out = [("model.name", cfg.model.name)]  # core.weights.base resolves it for every backend
    if cfg.judge.kind == "llm" and cfg.judge.llm.backend != "openai":
        out.append(("judge.llm.model", cfg.judge.llm.model))
    generator = cfg.expand.llm if cfg.expand.generator == "llm" else None
    if cfg.seeds.source == "llm":
        generator = cfg.expand.llm or cfg.judge.llm
    if generator is not None and generator.backend != "openai":
        out.append(("expand.llm.model" if generator is cfg.expand.llm else "judge.llm.model", generator.model))
    ev = cfg.eval
    if ev.acebench and ev.acebench_user_model and (ev.acebench_user_backend or "hf") in ("hf", "vllm"):
        out.append(("eval.acebench_user_model", ev.acebench_user_model))
    return list(dict.fromkeys(out))


def _check_model(name: str, key: str) -> str:
    try:
        target = models.configured_models().get(name, {}).get("path", name)
        if models.EMBEDDED in (name, target):  # resolve() would convert it: check what it needs instead
            ready = (models.embedded_dir() / "config.json").exists()
            return f"embedded model ({'converted' if ready else f'from {models.gguf_path()}'})"
        ref = models.resolve(name)
    except UserError as e:
        raise UserError(f"{key}: {e}") from None
    return f"{ref.path} ({ref.source})"


def _check_device(device: str) -> str:
    from core.hardware import cpu_precision

    if device == "cpu":  # no torch import needed to say so
        return f"model.device: cpu, on the CPU in {cpu_precision()}"
    import torch

    if not device.startswith("cuda"):  # auto
        on = "CUDA" if torch.cuda.is_available() else f"the CPU in {cpu_precision()}"
        return f"model.device: {device}, on {on}"
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    index = int(device.partition(":")[2] or 0)
    if index >= count:
        have = f"{count} CUDA device{'s' if count != 1 else ''}" if count else "no CUDA device"
        raise UserError(f"model.device: {device!r}: this machine has {have}")
    return f"model.device: {device} ({torch.cuda.get_device_name(index)})"


def _check_seeds(cfg: RunConfig) -> list[str]:
    if cfg.seeds.source != "file":
        return [f"seeds: {cfg.seeds.source}"]
    from core.seeds.pool import file_seeds

    valid, rejected = file_seeds(cfg)
    first = f"; first: {rejected[0][0]}: {rejected[0][1]}" if rejected else ""
    return [f"seeds: {len(valid)} usable samples in {cfg.seeds.path} ({len(rejected)} rows rejected{first})"]
