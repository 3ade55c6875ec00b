"""bench/gpu_check.py without a GPU and without a model: its command line, the no-CUDA exit, the carried
wheels' bookkeeping, and the arithmetic behind its projection of a paper iteration (checked by hand)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from bench import gpu_check

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "bench" / "gpu_check.py"


def _run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(ROOT)}
    env.pop("OUT", None)
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env,
                          timeout=timeout, cwd=str(ROOT))


def test_help_names_every_part_and_option():
    p = _run("--help")
    assert p.returncode == 0, p.stderr
    for word in (*gpu_check.PARTS, "--cpu-only", "--quick", "--parts", "--json", "--deadline", "gpu_wheels.sh",
                 "18,304 prompts x 16", "no CUDA device: skipped"):
        assert word in p.stdout, word


def test_without_cuda_every_part_says_so_and_nothing_is_loaded(tmp_path):
    out = tmp_path / "figures.json"
    t0 = time.monotonic()
    p = _run("--json", str(out))
    assert p.returncode == 2, p.stdout + p.stderr
    assert time.monotonic() - t0 < 60
    for i, name in enumerate(gpu_check.PARTS, 1):
        assert f"part {i} {name}: no CUDA device: skipped" in p.stdout
    assert "--cpu-only runs the CPU counterparts here" in p.stdout
    report = json.loads(out.read_text())
    assert report["machine"]["cuda"] is False
    assert report["parts"] == {name: {"status": "skipped", "reason": "no CUDA device"} for name in gpu_check.PARTS}
    assert "setup" not in report  # no random checkpoint was built, no samples made


def test_without_cuda_only_the_chosen_parts_are_reported(tmp_path):
    p = _run("--parts", "6,generate", "--json", str(tmp_path / "f.json"))
    assert p.returncode == 2
    assert "part 1 generate: no CUDA device: skipped" in p.stdout
    assert "part 6 qwen3-8b: no CUDA device: skipped" in p.stdout
    assert "part 2 train" not in p.stdout


def test_parts_by_number_or_name_in_the_given_order_once():
    assert gpu_check.parse_parts(None) == list(gpu_check.PARTS)
    assert gpu_check.parse_parts("6, probe,3,1") == ["qwen3-8b", "probe", "generate"]
    for bad in ("7", "0", "gpu"):
        with pytest.raises(SystemExit, match="unknown part"):
            gpu_check.parse_parts(bad)


def test_default_json_goes_under_out_when_the_device_sets_it(monkeypatch, tmp_path):
    monkeypatch.setenv("OUT", str(tmp_path))
    assert gpu_check.default_json() == str(tmp_path / "gpu_check.json")
    monkeypatch.delenv("OUT")
    assert gpu_check.default_json() == "gpu_check.json"


def test_every_carried_distribution_is_pinned_at_the_installed_version():
    from importlib.metadata import version

    pins = gpu_check.pinned_wheels()
    assert [p.split("==")[0] for p in pins] == list(gpu_check.CARRIED.values())
    assert "trl==" + version("trl") in pins and "bfcl-eval==" + version("bfcl-eval") in pins


def test_nothing_is_installed_when_every_carried_module_imports(tmp_path):
    report = gpu_check.install_carried(tmp_path)
    assert report["missing_modules"] == [] and report["installed"] == []


def test_a_missing_module_without_wheels_is_named_with_the_remedy(tmp_path, monkeypatch, capsys):
    real = gpu_check.importlib.util.find_spec
    monkeypatch.setattr(gpu_check.importlib.util, "find_spec", lambda m: None if m == "trl" else real(m))
    report = gpu_check.install_carried(tmp_path)
    assert report["missing_modules"] == ["trl"] and report["installed"] == []
    assert report["absent_wheels"] == list(gpu_check.CARRIED.values())
    assert "bench/gpu_wheels.sh" in capsys.readouterr().out
    with pytest.raises(gpu_check.Unavailable, match=r"trl not installed \(carry their wheels"):
        gpu_check.need("trl")


def test_the_recipe_is_read_from_the_paper_preset():
    r = gpu_check.paper_recipe()
    assert (r.prompts, r.rollouts, r.epochs, r.batch_size, r.micro_batch) == (18304, 16, 2.0, 128, 2)
    assert (r.prompt_tokens, r.completion_tokens, r.probe_batch, r.probe_new_tokens) == (4096, 1024, 256, 1024)
    assert (r.gpus, r.lr, r.clip_low, r.clip_high, r.lora) == (8, 1e-6, 0.2, 0.28, False)


def test_projection_of_one_paper_iteration_by_hand():
    # 18,304 x 16 x 2 = 585,728 completions, 73,216 per GPU; 143 steps per epoch, 286 in all.
    # prefill 73,216 x 4096 / 30,000 = 9,996.42 s; decode ceil(73,216 / 64) = 1,144 batches x 1024 steps
    # x 0.05 s = 58,572.8 s; training 73,216 x 5120 / 5,000 = 74,973.2 s; optimizer 286 x 0.08 / 8 = 2.86 s
    p = gpu_check.project_iteration(gpu_check.Recipe(), train_tokens_per_s=5000, optimizer_step_s=0.08,
                                    prefill_tokens_per_s=30000, decode_step_s=0.05, gen_batch=64)
    assert p["completions"] == 585728 and p["completions_per_gpu"] == 73216 and p["optimizer_steps"] == 286
    assert p["rollout_prefill_s"] == pytest.approx(9996.42, abs=0.01)
    assert p["rollout_prefill_shared_s"] == pytest.approx(9996.42 / 16, abs=0.01)
    assert p["rollout_decode_s"] == pytest.approx(58572.8)
    assert p["train_s"] == pytest.approx(74973.18, abs=0.01)
    assert p["optimizer_s"] == pytest.approx(2.86)
    assert p["total_s"] == pytest.approx(9996.42 + 58572.8 + 74973.18 + 2.86, abs=0.02)
    assert p["total_shared_prefill_s"] == pytest.approx(p["total_s"] - 9996.42 * 15 / 16, abs=0.02)


def test_projection_scales_with_the_gpus_and_rounds_partial_batches_up():
    one = gpu_check.project_iteration(gpu_check.Recipe(gpus=1), 5000, 0.08, 30000, 0.05, 64)
    eight = gpu_check.project_iteration(gpu_check.Recipe(), 5000, 0.08, 30000, 0.05, 64)
    assert one["train_s"] == pytest.approx(8 * eight["train_s"])
    assert one["optimizer_s"] == pytest.approx(8 * eight["optimizer_s"])
    # 100 prompts x 1 rollout x 1 epoch on 1 GPU at batch 64: 2 generate calls, 1 of them partial
    small = gpu_check.project_iteration(gpu_check.Recipe(prompts=100, rollouts=1, epochs=1.0, gpus=1,
                                                         completion_tokens=10), 1, 0, 1, 1.0, 64)
    assert small["rollout_decode_s"] == 2 * 10 and small["optimizer_steps"] == 1


def test_probe_projection_by_hand():
    # 18,304 / 8 = 2,288 per GPU: prefill 2,288 x 4096 / 40,960 = 228.8 s; ceil(2,288 / 64) = 36 batches
    # x 1024 steps x 0.04 s = 1,474.56 s
    q = gpu_check.project_probe(gpu_check.Recipe(), prefill_tokens_per_s=40960, decode_step_s=0.04, gen_batch=64)
    assert q["samples"] == 18304
    assert q["prefill_s"] == pytest.approx(228.8) and q["decode_s"] == pytest.approx(1474.56)
    assert q["total_s"] == pytest.approx(228.8 + 1474.56)


def test_generation_batch_fits_the_memory_as_a_power_of_two():
    gib = 2**30
    # Qwen3-8B in bf16: 144 KiB of keys/values a token; a row of 4096 + 64 tokens with 104 KiB of prefill
    # activations per prompt token needs 4160 x 147,456 + 4096 x 106,496 = 1,049,661,440 bytes; 0.8 of
    # 120 GiB holds 98 rows: 64
    kv, act = 2 * 36 * 8 * 128 * 2, (4 * 4096 + 3 * 12288) * 2
    assert (kv, act) == (147456, 106496)
    assert gpu_check.fit_batch(120 * gib, kv, act, 4096, 64, cap=256) == 64
    assert gpu_check.fit_batch(1e15, kv, act, 4096, 64, cap=256) == 256  # the probe's batch caps it
    assert gpu_check.fit_batch(0, kv, act, 4096, 64, cap=256) == 1


def test_group_advantages_normalise_within_each_prompts_rollouts():
    import torch

    adv = gpu_check.group_advantages(torch.tensor([1, 0, 1, 1, 0, 0, 0, 1]), group=4)
    # group 1: mean 0.75, sample std 0.5 -> (0.25 / 0.5001, -0.75 / 0.5001); group 2: mean 0.25, std 0.5
    assert adv[:4].tolist() == pytest.approx([0.49990, -1.49970, 0.49990, 0.49990], abs=1e-4)
    assert adv[4:].tolist() == pytest.approx([-0.49990, -0.49990, -0.49990, 1.49970], abs=1e-4)
    assert gpu_check.group_advantages(torch.ones(4), group=4).tolist() == [0.0] * 4  # all equal: no signal


class StandInLM(__import__("torch").nn.Module):
    """A stand-in causal LM: an embedding and an output layer, with transformers' logits_to_keep."""

    def __init__(self, vocab: int = 11, hidden: int = 5):
        import torch

        super().__init__()
        torch.manual_seed(0)
        self.embed, self.head = torch.nn.Embedding(vocab, hidden), torch.nn.Linear(hidden, vocab)

    def forward(self, input_ids, logits_to_keep: int = 0):
        return SimpleNamespace(logits=self.head(self.embed(input_ids))[:, -logits_to_keep:])


def test_grpo_micro_step_is_the_clipped_surrogate_token_mean():
    import torch

    model = StandInLM()
    ids = torch.tensor([[1, 2, 3, 4, 5, 6], [6, 5, 4, 3, 2, 1]])
    adv = torch.tensor([0.5, -1.5])
    # on-policy the ratio is 1 and clipping is inactive: the loss is -sum(A_i x C) / step tokens
    loss = gpu_check.grpo_micro_step(model, ids, completion_tokens=3, advantages=adv, clip_low=0.2,
                                     clip_high=0.28, step_tokens=12)
    assert loss.item() == pytest.approx(-(0.5 * 3 - 1.5 * 3) / 12)
    # and its gradient is the policy gradient: sum_i A_i x grad log p(completion_i) / step tokens
    expected = StandInLM()
    logits = expected(ids, logits_to_keep=4).logits[:, :-1]
    logp = torch.log_softmax(logits, -1).gather(-1, ids[:, -3:, None]).squeeze(-1)
    (-(adv[:, None] * logp).sum() / 12).backward()
    assert torch.allclose(model.head.weight.grad, expected.head.weight.grad, atol=1e-6)
    assert torch.allclose(model.embed.weight.grad, expected.embed.weight.grad, atol=1e-6)


def test_flops_per_token_count_the_recomputed_forward():
    assert gpu_check.model_flops_per_token(8_190_735_360) == 8 * 8_190_735_360


def test_the_simulated_shape_is_qwen3_8b():
    s = gpu_check.QWEN3_8B
    assert (s["hidden_size"], s["num_hidden_layers"], s["num_attention_heads"], s["num_key_value_heads"]) == \
        (4096, 36, 32, 8)
    assert (s["intermediate_size"], s["vocab_size"], s["head_dim"], s["tie_word_embeddings"]) == \
        (12288, 151936, 128, False)
