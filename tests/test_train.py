"""core.stages.train: real trl SFT/GRPO on the embedded SmolLM2-135M, kept tiny.

The training tests use fc mode: SmolLM2's template renders no tools there, so prompts are ~40 tokens
(prompt mode's BFCL system prompt is ~400) and one optimizer step takes seconds on 2 cores.
"""
from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from core import config as config_mod
from core.schema import Sample
from core.stages import train
from core.stages.base import Control, StageContext, StageStopped, is_done
from core.stages.train_callback import LoopCallback, latest_checkpoint
from core.stages.train_launch import LAUNCH_DIR, accelerate_command, run_launched

WEATHER = {"name": "get_weather", "description": "Get the current weather for a city.",
           "parameters": {"type": "dict", "properties": {"city": {"type": "string", "description": "City name"}},
                          "required": ["city"]}}
CITIES = ["Paris", "Rome", "Oslo", "Lima", "Cairo", "Quito"]


def call_sample(i: int) -> Sample:
    city = CITIES[i % len(CITIES)]
    return Sample.model_validate({
        "id": f"call-{i}", "tools": [WEATHER],
        "messages": [{"role": "user", "content": f"What is the weather in {city}?"}],
        "label": {"calls": [{"name": "get_weather", "arguments": {"city": city}}]}})


def text_sample(i: int) -> Sample:
    return Sample.model_validate({
        "id": f"text-{i}", "tools": [WEATHER],
        "messages": [{"role": "user", "content": "Book me a table for two tonight."}],
        "label": {"text": "I can't book tables; I can only look up the weather."}})


def make_cfg(method: str = "sft", **train_overrides):
    cfg = config_mod.load("cpu-demo")
    # the preset's run.threads = 2 would set torch's threads in this process: under make test's two
    # xdist workers (one thread each, tests/conftest.py) that made these tests 6-10x slower
    cfg.run.threads = None
    cfg.model.mode = "fc"
    cfg.train.methods = [method]
    settings = dict(batch_size=1, micro_batch=1, epochs=1, max_new_tokens=8, num_generations=2,
                    max_prompt_tokens=256, sft_lr=5e-4, lr=1e-5)
    settings.update(train_overrides)
    for key, value in settings.items():
        setattr(cfg.train, key, value)
    return cfg


def make_ctx(run_dir: Path, cfg, embedded_path: str, iteration: int = 1, adapter: str | None = None,
             events: list | None = None, on_event=None) -> StageContext:
    def emit(kind, data):
        if events is not None:
            events.append((kind, data))
        if on_event is not None:
            on_event(kind, data)

    return StageContext(cfg=cfg, run_dir=run_dir, iteration=iteration, model_path=embedded_path,
                        adapter=adapter, control=Control(), emit=emit)


def adapter_weights(policy: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(policy / "adapter_model.safetensors"))


# -- arithmetic, config files, rows (slow: the embedded tokenizer) and reward ---------------------

def test_batch_layout_gives_batch_size_prompts_per_step():
    assert train.batch_layout(8, 4, 1) == (4, 2)  # SFT: 8 samples = 2 x 4
    assert train.batch_layout(8, 4, 1, per_prompt=4) == (4, 8)  # GRPO: 32 completions = 8 x 4
    assert train.batch_layout(128, 2, 8, per_prompt=16) == (2, 128)  # the paper: 2048 completions on 8 GPUs
    assert train.batch_layout(6, 4, 1) == (3, 2)  # micro batch lowered to divide the step evenly
    assert train.batch_layout(2, 8, 1) == (2, 1)
    assert train.batch_layout(7, 2, 2) == (1, 3)  # 6 samples: 7 cannot be split over 2 processes
    for bs, mb, n, g in [(5, 3, 1, 4), (7, 2, 2, 1), (3, 4, 1, 2), (3, 2, 2, 3), (1, 4, 8, 16), (9, 4, 4, 2)]:
        per_device, accum = train.batch_layout(bs, mb, n, per_prompt=g)
        rows = per_device * accum * n
        assert rows % g == 0 and rows % n == 0 and per_device <= mb  # trl's divisibility rules
        assert rows == bs * g if (bs * g) % n == 0 else rows < bs * g


def test_accelerate_configs_are_well_formed(tmp_path):
    from accelerate.commands.config.config_args import load_config_from_file

    for name, kind in (("zero3", "DEEPSPEED"), ("fsdp", "FSDP")):
        path = Path(train.__file__).parent.parent / "presets" / "accelerate" / f"{name}.yaml"
        data = yaml.safe_load(path.read_text())
        assert data["distributed_type"] == kind
        assert data["num_processes"] == 8 and data["num_machines"] == 1
        assert data["mixed_precision"] == "bf16" and data["use_cpu"] is False
        parsed = load_config_from_file(str(path))  # accelerate's own loader accepts it
        assert parsed.distributed_type.value == kind and parsed.num_processes == 8
    assert yaml.safe_load((path.parent / "zero3.yaml").read_text())["deepspeed_config"]["zero_stage"] == 3
    # cpu2: MULTI_GPU is what makes accelerate start the ranks through torchrun (MULTI_CPU is one process
    # without mpirun); the ranks run on the CPU with gloo (tests/test_train_accelerate.py runs it)
    cpu2 = yaml.safe_load((path.parent / "cpu2.yaml").read_text())
    assert cpu2["distributed_type"] == "MULTI_GPU" and cpu2["use_cpu"] is True and cpu2["num_processes"] == 2
    assert cpu2["mixed_precision"] == "no" and cpu2["num_machines"] == 1
    assert load_config_from_file(str(path.parent / "cpu2.yaml")).num_processes == 2

    cfg = config_mod.load("qwen3-8b-paper")
    ctx = make_ctx(tmp_path, cfg, "/base-model")  # only named in the launch context, never loaded here
    cmd = accelerate_command(ctx)
    assert cmd[0].endswith("accelerate") and cmd[1] == "launch"
    assert cmd[cmd.index("--config_file") + 1].endswith("core/presets/accelerate/zero3.yaml")
    assert cmd[cmd.index("-m") + 1] == "core.stages.train_entry"
    assert cmd[-2:] == ["--context", str(ctx.iter_dir / LAUNCH_DIR / "context.json")]
    port = int(cmd[cmd.index("--main_process_port") + 1])  # a free one per launch, not accelerate's 29500
    assert 0 < port < 65536
    cfg.train.accelerate_config = "fsdp"
    assert accelerate_command(ctx)[3].endswith("fsdp.yaml")
    assert accelerate_command(ctx, num_processes=2)[4:6] == ["--num_processes", "2"]
    pinned = tmp_path / "pinned.yaml"  # a config that names its port (several machines must agree on it)
    pinned.write_text("distributed_type: MULTI_GPU\nnum_machines: 2\nmain_process_port: 29400\n")
    cfg.train.accelerate_config = str(pinned)
    assert "--main_process_port" not in accelerate_command(ctx)
    cfg.train.accelerate_config = "nope"
    with pytest.raises(Exception, match="accelerate_config"):
        accelerate_command(ctx)


@pytest.mark.slow  # the embedded model's tokenizer
def test_build_rows_renders_prompts_and_completions(embedded_path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(embedded_path)
    data = [call_sample(0), text_sample(0)]
    rows, skipped = train.build_rows(tok, data, "prompt", "sft", 4096)
    assert skipped == 0 and rows[0]["prompt"].endswith("<|im_start|>assistant\n")
    assert rows[0]["completion"] == "[get_weather(city='Paris')]" + tok.eos_token
    assert rows[1]["completion"].startswith("I can't book")
    rows, skipped = train.build_rows(tok, data, "prompt", "grpo", 100)  # the BFCL prompt is longer
    assert rows == [] and skipped == 2
    rows, _ = train.build_rows(tok, data, "fc", "grpo", 256)
    assert [r["sample_idx"] for r in rows] == [0, 1]


def test_exact_match_reward_scores_each_row_against_its_sample():
    data = [call_sample(0), text_sample(0)]
    fn = train.exact_match_reward(data, "fc")
    good = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
    wrong = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Rome"}}\n</tool_call>'
    assert fn(prompts=["p"] * 4, completions=[good, wrong, "Sorry, I can't.", good],
              sample_idx=[0, 0, 1, 1]) == [1.0, 0.0, 1.0, 0.0]


def test_latest_checkpoint_ignores_incomplete(tmp_path):
    assert latest_checkpoint(tmp_path / "none") is None
    for step, complete in ((1, True), (3, True), (10, False)):
        d = tmp_path / f"checkpoint-{step}"
        d.mkdir()
        if complete:
            (d / "trainer_state.json").write_text("{}")
    (tmp_path / "other").mkdir()
    assert latest_checkpoint(tmp_path).name == "checkpoint-3"


def test_first_label_positions_marks_each_rows_first_label():
    import torch

    from core.stages.train_sft_loss import first_label_positions

    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 0, 0, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]], dtype=torch.bool)
    expected = [[0, 0, 1, 0, 0], [1, 0, 0, 0, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]]
    assert first_label_positions(mask).int().tolist() == expected


# -- slow: real training --------------------------------------------------------------------------

@pytest.mark.slow
def test_sft_iteration_then_continue_adapter(tmp_path, embedded_path, monkeypatch):
    events: list = []
    ctx = make_ctx(tmp_path, make_cfg("sft", batch_size=2, micro_batch=2), embedded_path, events=events)
    stats = train.run(ctx, [call_sample(0), text_sample(0)])

    policy = tmp_path / "iter-1" / "policy"
    assert (policy / "adapter_config.json").is_file() and (policy / "adapter_model.safetensors").is_file()
    assert not (policy / "model.safetensors").exists() and not (tmp_path / "iter-1" / "policy.tmp").exists()
    assert not (tmp_path / "iter-1" / "train-ckpt").exists()  # checkpoints go once the policy is saved
    assert is_done(tmp_path / "iter-1", "train") == json.loads(json.dumps(stats))
    assert stats["method"] == "sft" and stats["steps"] == 1 and stats["samples"] == 2 and stats["lora"] is True
    assert stats["resumed_from"] is None and stats["final_loss"] > 0 and stats["wall_s"] > 0
    # the operator sees how it computed: bf16 autocast only where this CPU has native bf16
    from core.hardware import cpu_native_bf16

    expected = "bf16 autocast, float32 weights" if cpu_native_bf16() else "float32"
    started = [d for k, d in events if k == "event" and d["event"] == "train_started"]
    assert stats["precision"] == expected and [d["precision"] for d in started] == [expected]
    metrics = [d for k, d in events if k == "metrics"]
    assert metrics and metrics[-1]["step"] == 1 and metrics[-1]["loss"] > 0 and metrics[-1]["lr"] > 0
    assert set(metrics[-1]) >= {"step", "loss", "reward_mean", "reward_std", "lr", "tokens_per_s", "epoch"}
    assert ("progress", {"stage": "train", "iteration": 1, "done": 1, "total": 1}) in events

    # done: a rerun returns the stored stats and trains nothing
    again: list = []
    assert train.run(make_ctx(tmp_path, ctx.cfg, embedded_path, events=again), []) == is_done(
        tmp_path / "iter-1", "train")
    assert again == []

    # iteration 2 continues iteration 1's adapter, with a fresh optimizer
    seen = {}
    orig_begin = LoopCallback.on_train_begin

    def spy_begin(self, args, state, control, **kw):
        seen["optimizer_state"] = len(kw["optimizer"].state)
        seen["lora"] = {n: p.detach().clone() for n, p in kw["model"].named_parameters() if "lora_" in n}
        seen["trainable"] = sum(p.requires_grad for p in kw["model"].parameters())
        return orig_begin(self, args, state, control, **kw)

    monkeypatch.setattr(LoopCallback, "on_train_begin", spy_begin)
    ctx2 = make_ctx(tmp_path, ctx.cfg, embedded_path, iteration=2, adapter=str(policy))
    stats2 = train.run(ctx2, [call_sample(1), call_sample(2)])
    assert stats2["steps"] == 1 and seen["optimizer_state"] == 0 and seen["trainable"] > 0
    before = adapter_weights(policy)
    start = {n.replace(".default", ""): t for n, t in seen["lora"].items()}
    assert all(k in start for k in before) and all(start[k].equal(before[k]) for k in before)
    after = adapter_weights(tmp_path / "iter-2" / "policy")
    assert after.keys() == before.keys()
    assert any(not after[k].equal(before[k]) for k in before)


@pytest.mark.slow
def test_decision_weight_scales_only_the_first_label_token(tmp_path, embedded_path):
    """The weighted loss against one computed here from the model's plain logits: every label token's
    negative log-likelihood once, the first label token's weight - 1 times more, over the label count."""
    import torch
    from transformers import AutoTokenizer

    cfg = make_cfg("sft", batch_size=2, micro_batch=2)
    ctx = make_ctx(tmp_path, cfg, embedded_path)
    tok = AutoTokenizer.from_pretrained(embedded_path)
    rows, _ = train.build_rows(tok, [call_sample(0), text_sample(0)], "fc", "sft", 256)
    args = train.training_args(ctx, "sft", len(rows), tmp_path / "ckpt")
    model = train.load_model(ctx, args)
    trainer = train._sft_trainer(model, tok, args, rows, LoopCallback(ctx), decision_weight=4.0)
    assert trainer.decision_weight == 4.0
    batch = trainer._prepare_inputs(next(iter(trainer.get_train_dataloader())))
    model.eval()
    with torch.no_grad():
        weighted = trainer.compute_loss(model, dict(batch)).item()
        trainer.decision_weight = 1.0  # trl's own loss, the check on the hand computation below
        trls = trainer.compute_loss(model, dict(batch)).item()
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
    labels = batch["labels"][:, 1:]
    mask = labels != -100
    nll = -torch.log_softmax(logits[:, :-1], -1).gather(-1, labels.clamp(min=0)[..., None])[..., 0]
    first = mask.int().argmax(dim=1)  # each row's first label position
    rows_ = torch.arange(len(first))
    assert mask[rows_, first].all() and int(mask.sum()) > 2 * len(first)
    plain = float(nll[mask].sum() / mask.sum())
    expected = float((nll[mask].sum() + 3.0 * nll[rows_, first].sum()) / mask.sum())
    assert trls == pytest.approx(plain, rel=1e-3)
    assert weighted == pytest.approx(expected, rel=1e-3) and weighted > plain * 1.01


@pytest.mark.slow
def test_sft_step_with_decision_weight(tmp_path, embedded_path):
    ctx = make_ctx(tmp_path, make_cfg("sft", batch_size=2, micro_batch=2, sft_decision_weight=5.0), embedded_path)
    stats = train.run(ctx, [call_sample(0), text_sample(0)])
    assert stats["steps"] == 1 and stats["final_loss"] > 0
    assert (tmp_path / "iter-1" / "policy" / "adapter_model.safetensors").is_file()


@pytest.mark.slow
def test_grpo_step_with_exact_match_reward(tmp_path, embedded_path):
    events: list = []
    cfg = make_cfg("grpo", batch_size=2, micro_batch=4, num_generations=2, max_new_tokens=8)
    stats = train.run(make_ctx(tmp_path, cfg, embedded_path, events=events), [call_sample(0), text_sample(0)])
    assert stats["method"] == "grpo" and stats["steps"] == 1 and stats["num_generations"] == 2
    metrics = [d for k, d in events if k == "metrics"]
    assert len(metrics) == 1
    m = metrics[0]
    # the text sample scores 1 for any reply without a call, which 8 tokens of SmolLM2 never make
    assert m["reward_mean"] is not None and 0.0 < m["reward_mean"] <= 1.0 and m["reward_std"] is not None
    assert stats["reward_mean"] == pytest.approx(m["reward_mean"])
    assert (tmp_path / "iter-1" / "policy" / "adapter_config.json").is_file()


class BlockingSeenControl(Control):
    """The real Control, which also says when the trainer is blocked in a pause (a test needs to know
    the pause took effect, not guess it with a sleep: a checkpoint can take seconds on a busy CI)."""

    def __init__(self):
        super().__init__()
        self.blocked = threading.Event()

    def checkpoint(self, on_pause=None):
        if self.pause.is_set():
            self.blocked.set()
        super().checkpoint(on_pause)


@pytest.mark.slow
def test_pause_saves_checkpoint_then_resumes(tmp_path, embedded_path):
    first_step = threading.Event()
    steps: list[int] = []

    def on_event(kind, data):
        if kind == "progress":
            steps.append(data["done"])
            if data["done"] == 1:
                first_step.set()

    ctx = make_ctx(tmp_path, make_cfg("sft", save_every_s=0.0), embedded_path,  # + a checkpoint every step
                   on_event=on_event)
    ctx.control = BlockingSeenControl()
    data = [call_sample(i) for i in range(4)]
    seen = {}
    root = tmp_path / "iter-1" / "train-ckpt"

    def operator():
        first_step.wait(300)
        ctx.control.pause.set()
        if ctx.control.blocked.wait(300):
            ckpts = sorted(p.name for p in root.glob("checkpoint-*"))
            latest, steps_then = latest_checkpoint(root), len(steps)
            time.sleep(1.0)  # still paused: nothing moves on
            seen.update(ckpts=ckpts, latest=latest.name if latest else None, moved=len(steps) - steps_then,
                        after=sorted(p.name for p in root.glob("checkpoint-*")))
        ctx.control.pause.clear()

    t = threading.Thread(target=operator)
    t.start()
    stats = train.run(ctx, data)
    t.join()
    assert seen, "the trainer never blocked in the pause"
    # the pause wrote a complete checkpoint for the step it stopped at, and nothing moved while paused
    assert seen["ckpts"] and seen["latest"] == seen["ckpts"][-1] and len(seen["ckpts"]) <= 2
    assert seen["moved"] == 0 and seen["after"] == seen["ckpts"]
    assert int(seen["latest"].split("-")[1]) < 4
    assert stats["steps"] == 4 and stats["max_steps"] == 4


@pytest.mark.slow
def test_stop_checkpoints_then_rerun_resumes(tmp_path, embedded_path, monkeypatch):
    events: list = []
    ctx = make_ctx(tmp_path, make_cfg("sft"), embedded_path, events=events)

    def stop_after_first(kind, data):
        if kind == "progress" and data["done"] == 1:
            ctx.control.stop.set()

    ctx.emit = lambda kind, data: (events.append((kind, data)), stop_after_first(kind, data))
    data = [call_sample(i) for i in range(3)]
    with pytest.raises(StageStopped):
        train.run(ctx, data)
    it = tmp_path / "iter-1"
    assert latest_checkpoint(it / "train-ckpt").name == "checkpoint-1"
    assert (it / "train-ckpt" / "checkpoint-1" / "optimizer.pt").is_file()
    assert is_done(it, "train") is None and not (it / "policy").exists()
    assert [d["step"] for k, d in events if k == "metrics"] == [1]  # the step's metrics went out first

    saved = adapter_weights(it / "train-ckpt" / "checkpoint-1")
    seen = {}
    orig_begin = LoopCallback.on_train_begin

    def spy_begin(self, args, state, control, **kw):  # the checkpoint is loaded before training begins
        seen["step"] = state.global_step
        seen["lora"] = {n.replace(".default", ""): p.detach().clone()
                        for n, p in kw["model"].named_parameters() if "lora_" in n}
        return orig_begin(self, args, state, control, **kw)

    monkeypatch.setattr(LoopCallback, "on_train_begin", spy_begin)
    resumed: list = []
    stats = train.run(make_ctx(tmp_path, ctx.cfg, embedded_path, events=resumed), data)
    assert seen["step"] == 1 and all(seen["lora"][k].equal(saved[k]) for k in saved)
    assert any(saved[k].abs().sum() > 0 for k in saved if "lora_B" in k)  # trained, not the zero init
    assert stats["resumed_from"] == "checkpoint-1"
    assert stats["steps"] == 3 and stats["max_steps"] == 3
    assert [d["done"] for k, d in resumed if k == "progress"] == [2, 3]
    assert (it / "policy" / "adapter_config.json").is_file()


@pytest.mark.slow
def test_full_finetune_saves_model_and_tokenizer(tmp_path, embedded_path):
    cfg = make_cfg("sft", lora=False, sft_lr=1e-5)
    stats = train.run(make_ctx(tmp_path, cfg, embedded_path), [call_sample(0)])
    policy = tmp_path / "iter-1" / "policy"
    assert stats["lora"] is False and stats["steps"] == 1
    assert (policy / "config.json").is_file() and (policy / "model.safetensors").is_file()
    assert (policy / "tokenizer_config.json").is_file() and not (policy / "adapter_config.json").exists()


@pytest.mark.slow
def test_launched_job_relays_telemetry(tmp_path, embedded_path):
    """The accelerate path without accelerate: run_launched starts the entry module directly (one
    process, CPU) and relays its events and train.done."""
    events: list = []
    cfg = make_cfg("sft")
    cfg.train.launcher = "accelerate"
    ctx = make_ctx(tmp_path, cfg, embedded_path, events=events)
    command = [sys.executable, "-m", "core.stages.train_entry",
               "--context", str(ctx.iter_dir / LAUNCH_DIR / "context.json")]
    stats = run_launched(ctx, [call_sample(0)], command=command, poll_s=0.1)
    assert stats["steps"] == 1 and stats == is_done(ctx.iter_dir, "train")
    assert [d["step"] for k, d in events if k == "metrics"] == [1]
    assert (ctx.iter_dir / "policy" / "adapter_config.json").is_file()
