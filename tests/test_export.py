"""`looptool export` (core/export.py): which iteration it takes, what it refuses, and (slow) the round trip:
a run's LoRA policy exported, reloaded with transformers, gives the same greedy replies as the base model
with the adapter through the project's hf backend."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from core.errors import UserError
from core.export import check_out, export, plan_export
from core.records import write_json_atomic
from core.run_scores import IterationScore, best_iteration
from core.store import ResultStore

TINY = Path(__file__).parent / "data" / "tiny-run.toml"
RUN = "tiny-20261202-010000"


def summary(run_id: str, j: int, correct: int, total: int = 4, **extra) -> dict:
    return {"eval_id": f"bfcl-{run_id}-{j}", "benchmark": "bfcl-v3", "started_at": f"2026-12-02T01:0{j}:00+00:00",
            "run_id": run_id, "iteration": j, "complete": True, "scores": {"overall": correct / total / 17},
            "per_category": {"simple_python": {"correct": correct, "total": total, "error_types": {}}}, **extra}


def make_run(home: Path, held_out: dict[int, int], trained=(1, 2), policy="lora", in_markers=True,
             run_id: str = RUN) -> Path:
    """A finished 2-iteration run's files and store documents, without weights (a stand-in adapter config:
    nothing here loads it): held_out maps iteration -> correct of 4 held-out entries."""
    run_dir = home / "runs" / run_id
    run_dir.mkdir(parents=True)
    (run_dir / "config.toml").write_text(TINY.read_text())
    write_json_atomic(run_dir / "seed.done", {"source": "procedural", "kept": 40, "d1": 8})
    for j in trained:
        it = run_dir / f"iter-{j}"
        (it / "policy").mkdir(parents=True)
        (it / "policy" / ("adapter_config.json" if policy == "lora" else "config.json")).write_text("{}")
        write_json_atomic(it / "train.done", {"method": "sft", "steps": 2, "samples": 8, "final_loss": 0.5,
                                               "lr": 5e-4, "lora": policy == "lora"})
    write_json_atomic(run_dir / "iter-1" / "composition.json",
                      {"iteration": 2, "error_seeds": 3, "expansions": 2, "high_ppl": 0, "fresh_seeds": 3,
                       "topped_up": 0, "total": 8})
    run_doc = {"run_id": run_id, "name": "tiny", "state": "finished", "run_dir": str(run_dir), "iterations": 2,
               "model": "embedded", "updated_at": "2026-12-02T01:10:00+00:00"}
    write_json_atomic(run_dir / "run.json", run_doc)
    with ResultStore(home / "looptool.db.json") as store:
        store.add_doc("runs", run_doc, key="run_id")
        for j, correct in held_out.items():
            s = summary(run_id, j, correct)
            store.add_eval(s)
            if in_markers:
                (run_dir / f"iter-{j}").mkdir(exist_ok=True)
                write_json_atomic(run_dir / f"iter-{j}" / "eval.done",
                                  {"iteration": j, "run_dir": str(run_dir), "summaries": {"bfcl": s}, "skipped": {}})
        store.flush()
    return run_dir


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("LOOPTOOL_HOME", str(tmp_path))
    return tmp_path


# -- which iteration (store documents, no model) ----------------------------------------------------

def test_best_iteration_takes_the_highest_held_out_score_and_the_latest_of_equal_ones():
    def score(j, correct):
        return IterationScore(j, summary(RUN, j, correct))

    assert best_iteration([score(0, 1), score(1, 3), score(2, 2)], {1, 2}).iteration == 1
    assert best_iteration([score(0, 1), score(1, 2), score(2, 2)], {1, 2}).iteration == 2
    assert best_iteration([score(0, 4), score(1, 2)], {1}).iteration == 1  # the base is never a candidate
    assert best_iteration([score(0, 1), score(1, 3), IterationScore(2)], {1, 2}).iteration == 1
    assert best_iteration([score(0, 1), score(1, 3)], set()) is None  # no trained policy


def test_plan_defaults_to_the_best_trained_iteration(home):
    make_run(home, {0: 1, 1: 3, 2: 2})
    plan = plan_export(RUN)
    assert (plan.iteration, plan.chosen, plan.kind) == (1, "best held-out score", "lora")
    assert [s.counts for s in plan.scores] == [(1, 4), (3, 4), (2, 4)]
    assert plan_export(RUN, iteration=2).chosen == "asked for"


def test_the_run_s_own_eval_markers_outrank_a_store_document_of_another_run(home):
    """Two runs on one base model with one eval config share the base eval's id; the store's document then
    names the newer run, and the older run's iteration 0 is found through its eval.done."""
    make_run(home, {0: 3, 1: 2, 2: 2})
    with ResultStore(home / "looptool.db.json") as store:  # the newer run took over the base eval's document
        store.add_eval({**summary(RUN, 0, 3), "run_id": "other-run"})
    with pytest.raises(UserError, match="base model"):
        plan_export(RUN)


def test_scores_come_from_the_store_where_a_run_has_no_eval_marker_and_on_demand_evals_never_count(home):
    make_run(home, {0: 1, 1: 1, 2: 3}, in_markers=False)
    assert plan_export(RUN).iteration == 2
    with ResultStore(home / "looptool.db.json") as store:  # the operator's own subset, all correct
        store.add_eval({**summary(RUN, 1, 4), "eval_id": "bfcl-on-demand", "on_demand": True})
    plan = plan_export(RUN)
    assert plan.iteration == 2 and plan.scores[1].counts == (1, 4)


def test_a_base_model_that_scores_best_is_refused_unless_an_iteration_is_named(home):
    make_run(home, {0: 3, 1: 2, 2: 1})
    with pytest.raises(UserError) as e:
        plan_export(RUN)
    assert "3/4 (75.0 %)" in str(e.value) and "iteration 1's 2/4 (50.0 %)" in str(e.value)
    assert "--iteration 0" in str(e.value)
    assert plan_export(RUN, iteration=0).kind == "base"
    assert plan_export(RUN, iteration=2).iteration == 2


@pytest.mark.parametrize("kwargs,needle", [
    ({"iteration": 2}, "--iteration 2: run tiny-20261202-010000 has no trained policy"),
    ({"iteration": 3}, "has iterations 0..2"),
    ({"iteration": 0, "adapter_only": True}, "is the base model, not a LoRA adapter"),
])
def test_plan_refusals(home, kwargs, needle):
    make_run(home, {0: 0, 1: 1}, trained=(1,))
    with pytest.raises(UserError, match=needle.replace(".", r"\.")):
        plan_export(RUN, **kwargs)


def test_a_full_fine_tune_has_no_adapter_to_keep(home):
    make_run(home, {0: 0, 1: 1, 2: 2}, policy="full")
    assert plan_export(RUN).kind == "full"
    with pytest.raises(UserError, match=r"full checkpoint \(train.lora = false\)"):
        plan_export(RUN, adapter_only=True)


def test_no_held_out_score_for_a_trained_iteration_asks_for_one(home):
    make_run(home, {0: 1})
    with pytest.raises(UserError, match="name one with --iteration J"):
        plan_export(RUN)


def test_out_must_be_absent_or_empty_unless_forced(tmp_path):
    check_out(tmp_path / "new", force=False)
    (tmp_path / "empty").mkdir()
    check_out(tmp_path / "empty", force=False)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("keep me")
    with pytest.raises(UserError, match="not empty"):
        check_out(tmp_path / "full", force=False)
    check_out(tmp_path / "full", force=True)
    (tmp_path / "file").write_text("")
    with pytest.raises(UserError, match="not a directory"):
        check_out(tmp_path / "file", force=True)


@pytest.mark.parametrize("args,needle", [
    (["no-such-run"], "no run 'no-such-run' in the store"),
    ([RUN, "--iteration", "2"], "has no trained policy"),
    ([RUN, "--out-not-empty"], "directory is not empty (pass --force"),
])
def test_cli_errors_are_one_line_and_exit_2(tmp_path, args, needle):
    make_run(tmp_path, {0: 0, 1: 1}, trained=(1,))
    out = tmp_path / "out"
    out.mkdir()
    if "--out-not-empty" in args:
        args.remove("--out-not-empty")
        (out / "keep.txt").write_text("mine")
    kept = sorted(f.name for f in out.iterdir())
    p = subprocess.run([sys.executable, "-m", "console.cli", "export", *args, "--out", str(out)],
                       capture_output=True, text=True, env={**os.environ, "LOOPTOOL_HOME": str(tmp_path)}, timeout=120)
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert p.returncode == 2 and len(lines) == 1 and needle in lines[0], p.stderr
    assert sorted(f.name for f in out.iterdir()) == kept
    assert not [f for f in tmp_path.iterdir() if ".export-" in f.name]


# -- slow: the round trip on the embedded model -----------------------------------------------------

def write_adapters(embedded_path: str, policy_dirs: list[Path]) -> None:
    """LoRA adapters on the embedded model with seeded non-zero B weights (peft initialises B to zero, which
    would leave the replies the base model's), as iter-J/policy holds after training."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(embedded_path, dtype=torch.float32)
    peft_model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules="all-linear",
                                                  task_type="CAUSAL_LM"))
    gen = torch.Generator().manual_seed(0)
    for policy_dir in policy_dirs:
        with torch.no_grad():
            for name, p in peft_model.named_parameters():
                if "lora_B" in name:
                    p.copy_(torch.randn(p.shape, generator=gen) * 0.01)
        peft_model.save_pretrained(str(policy_dir))


def prompts(tokenizer) -> list[str]:
    from core.prompt_format import prompt_messages
    from core.prompting import render
    from core.schema import Sample

    weather = {"name": "get_weather", "description": "Get the current weather for a city.",
               "parameters": {"type": "dict", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
    asks = ["What is the weather in Paris?", "Is it raining in Oslo right now?", "Book me a table for two.",
            "Weather for Lima and Quito, please.", "Tell me a joke about the weather."]
    samples = [Sample.model_validate({"id": f"p{i}", "tools": [weather], "messages": [{"role": "user", "content": a}],
                                      "label": {"text": "-"}}) for i, a in enumerate(asks)]
    return [render(tokenizer, *prompt_messages(s, "prompt")) for s in samples]


@pytest.mark.slow
def test_export_round_trip_gives_the_run_s_greedy_replies(home, embedded_path, hf_backend):
    from core.backends.base import GenParams
    from core.backends.hf import HFBackend

    run_dir = make_run(home, {0: 0, 1: 1, 2: 2}, trained=(1, 2))
    policies = [run_dir / f"iter-{j}" / "policy" for j in (1, 2)]
    for policy in policies:
        shutil.rmtree(policy)
    write_adapters(embedded_path, policies)
    out = home / "export"
    lines: list[str] = []
    export(plan_export(RUN), out, say=lines.append)
    assert any("merging the LoRA adapter" in ln for ln in lines)
    files = {f.name for f in out.iterdir()}
    assert {"config.json", "model.safetensors", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
            "chat_template.jinja", "README.md"} <= files and "adapter_config.json" not in files
    assert json.loads((out / "config.json").read_text())["dtype"] == "float32"  # the base model's
    assert not [f for f in home.iterdir() if ".export-" in f.name]

    exported = HFBackend(str(out), device="cpu", dtype="float32", batch_size=4)  # AutoModelForCausalLM inside
    try:
        assert type(exported.model_obj).__name__ == "LlamaForCausalLM"  # a plain model: nothing left to merge
        assert exported.tokenizer.chat_template == hf_backend.tokenizer.chat_template
        batch = prompts(hf_backend.tokenizer)
        params = GenParams(max_new_tokens=24)
        run_replies = hf_backend.generate(batch, params, adapter=str(run_dir / "iter-2" / "policy"))
        base_replies = hf_backend.generate(batch, params)
        export_replies = exported.generate(batch, params)
    finally:
        exported.close()
    assert [g.token_ids for g in export_replies] == [g.token_ids for g in run_replies]
    assert [g.token_ids for g in run_replies] != [g.token_ids for g in base_replies]  # the adapter matters
    card = (out / "README.md").read_text()
    assert card.startswith("---\nbase_model: HuggingFaceTB/SmolLM2-135M-Instruct\nlibrary_name: transformers\n")
    assert "| **2 (exported)** | trained | 2/4 (50.0 %) | 2/4 |" in card and "| 1 | trained | 1/4 (25.0 %)" in card
    assert "| 2 | 3 | 2 | 0 | 3 | 0 | 8 |" in card and 'name = "tiny"' in card

    # --adapter-only keeps the peft adapter; a rerun onto a full --out needs --force and replaces it whole
    with pytest.raises(UserError, match="not empty"):
        export(plan_export(RUN, adapter_only=True), out, adapter_only=True)
    export(plan_export(RUN, adapter_only=True), out, adapter_only=True, force=True)
    files = {f.name for f in out.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "README.md"} <= files
    assert "model.safetensors" not in files and "library_name: peft" in (out / "README.md").read_text()
