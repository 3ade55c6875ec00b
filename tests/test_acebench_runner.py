"""run_acebench end to end with a scripted model that answers from the ground truth (the real data, sandbox,
scorers, records and store; only the model is scripted): rollouts, routing, the simulator, resume after a
crash, and the records."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from core.backends import Generation
from core.store import ResultStore
from evals.acebench import data, truth
from evals.acebench.runner import AceConfig, run_acebench

DATA = Path(__file__).parents[1].parent / "shared" / "acebench" / "data_en"


class _Tokenizer:
    """Renders messages as 'role: content' lines; one token per whitespace-separated word."""
    chat_template = None

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=True, **kw):
        return "\n".join(f"<{m['role']}>\n{m['content']}" for m in messages) + "\n<assistant>\n"

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": text.split()}


def _fix_quotes(stone):
    return re.sub(r"='(.*?)'(?=(, \w+=|\)))", lambda m: "=" + repr(m.group(1)), stone.strip())


class Oracle:
    """Answers each prompt from the ground truth of the entry it recognises in the prompt."""
    name, model, batch_size, max_context = "oracle", "oracle", 4, 100_000

    def __init__(self, entries, fail_after=None):
        self.tokenizer = _Tokenizer()
        self.by_question = {e.question: e for e in entries}
        self.calls, self.fail_after = 0, fail_after
        self.user_prompts = 0

    def _reply(self, prompt: str) -> str:
        hits = [q for q in self.by_question if q in prompt]  # a later turn's question contains the earlier ones
        e = self.by_question[max(hits, key=len)] if hits else None
        if "You play a user talking to an agent" in prompt:
            self.user_prompts += 1
            return f"<think>what do I want?</think>Hello, please help me with task {e.id}."
        if e is None:  # a multi-turn agent prompt: the task is named in the simulator's opening line
            e = next(e for e in self.by_question.values() if f"task {e.id}." in prompt)
        if e.kind != "agent":
            return "<think>let me see</think>" + truth.reply(e)
        history = prompt.split("Conversation history:", 1)[1]
        done = history.count("\nexecution result: " if e.category == "agent_multi_step" else "\nexecution: ")
        stones = truth.milestone_paths(e)[0]
        return _fix_quotes(stones[done]) if done < len(stones) else "finish conversation"

    def generate(self, prompts, params, adapter=None):
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise RuntimeError("simulated crash")
        return [Generation(text=self._reply(p), token_ids=[1, 2, 3]) for p in prompts]

    def close(self):
        pass


def _selection():
    ids = ["normal_atom_bool_0", "normal_atom_number_17", "normal_single_turn_parallel_function_3",
           "normal_multi_turn_user_adjust_1_0", "normal_multi_turn_user_adjust_3_0", "normal_preference_5",
           "special_incomplete_0", "special_error_param_1", "special_irrelevant_2",
           "agent_multi_turn_0", "agent_multi_turn_6", "agent_multi_turn_25", "agent_multi_step_2",
           "agent_multi_step_14"]
    return ids, data.select(DATA, list(data.CATEGORIES), ids=ids)


def _cfg(ids, **kw):
    return AceConfig(model="oracle", categories=list(data.CATEGORIES), ids=ids, data_dir=str(DATA), **kw)


def test_oracle_run_scores_and_records(tmp_path, monkeypatch):
    monkeypatch.setenv("LOOPTOOL_HOME", str(tmp_path))
    ids, entries = _selection()
    oracle = Oracle(entries)
    with ResultStore() as store:
        s = run_acebench(_cfg(ids), oracle, store=store, progress=False)
        assert store.get_eval(s["eval_id"])["scores"] == s["scores"]
    per = s["per_category"]
    assert s["mode"] == "prompt" and s["complete"] and s["resumed"] == 0
    for cat in ("normal_atom_bool", "normal_atom_number", "normal_single_turn_parallel_function",
                "normal_preference", "special_incomplete", "special_error_param", "special_irrelevant"):
        assert per[cat]["accuracy"] == 1.0, (cat, per[cat])
    # dialogue 1 is passable; dialogue 3's first turn cannot pass the compat scorer (see the scorer tests)
    assert per["normal_multi_turn_user_adjust"]["correct"] == 1 and per["normal_multi_turn_user_adjust"]["total"] == 2
    assert per["normal_multi_turn_user_adjust"]["strict_correct"] == 2
    # agent_multi_turn_6 and agent_multi_step_14 have milestones that miss their own ground truth
    assert (per["agent_multi_turn"]["correct"], per["agent_multi_turn"]["total"]) == (2, 3)
    assert (per["agent_multi_step"]["correct"], per["agent_multi_step"]["total"]) == (1, 2)
    assert per["agent_multi_turn"]["process_accuracy"] == 1.0  # the trace equals the milestones
    assert s["think_stripped"] == 11 and s["simulator"]["same_as_agent"] is True
    assert oracle.user_prompts == 3  # the simulator only opens: the oracle agent never asks it anything
    assert s["scores"]["overall"] > 0 and s["scores_strict"]["overall"] >= s["scores"]["overall"]
    records = {r["id"]: r for r in map(json.loads, open(s["records"]))}
    assert set(records) == {e.id for e in entries}
    r = records["agent_multi_turn_0"]
    assert r["valid"] and r["stop_reason"] == "finish conversation" and r["simulator"]["model"] == "oracle"
    senders = [m["sender"] for m in r["raw"]]
    assert senders[:3] == ["user", "agent", "execution"] and senders[-1] == "agent"
    assert r["raw"][0]["raw"].startswith("<think>") and r["raw"][0]["message"] == "Hello, please help me with task agent_multi_turn_0."
    assert r["process"] == [st.strip() for st in data.select(DATA, ["agent_multi_turn"], ids=[
        "agent_multi_turn_0"])[0].extra["mile_stone"]]
    assert {"BaseApi", "MessageApi"} == {k for d in r["state"] for k in d}
    step = records["agent_multi_step_2"]
    assert step["valid"] and [m["sender"] for m in step["raw"]][-2:] == ["execution", "agent"]
    assert records["normal_atom_bool_0"]["decoded"] and records["normal_atom_bool_0"]["think_stripped"]


def test_rerun_resumes_after_a_crash(tmp_path, monkeypatch):
    monkeypatch.setenv("LOOPTOOL_HOME", str(tmp_path))
    ids, entries = _selection()
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_acebench(_cfg(ids), Oracle(entries, fail_after=2), progress=False)
    records = next(tmp_path.glob("evals/acebench-*/records.jsonl"))
    before = records.read_text().splitlines()
    assert 0 < len(before) < len(entries)
    oracle = Oracle(entries)
    s = run_acebench(_cfg(ids), oracle, progress=False)
    assert s["resumed"] == len(before) and s["complete"]
    after = records.read_text().splitlines()
    assert after[:len(before)] == before and len(after) == len(entries)
    again = run_acebench(_cfg(ids), Oracle(entries, fail_after=0), progress=False)  # nothing left to generate
    assert again["resumed"] == len(entries) and again["per_category"] == s["per_category"]


def test_message_limit_and_prose_in_multi_step(tmp_path, monkeypatch):
    monkeypatch.setenv("LOOPTOOL_HOME", str(tmp_path))
    entries = data.select(DATA, ["agent_multi_step"], ids=["agent_multi_step_2"])

    class Chatty(Oracle):
        def _reply(self, prompt):
            return "Could you tell me more?"

    s = run_acebench(AceConfig(model="chatty", categories=["agent_multi_step"], ids=["agent_multi_step_2"],
                               data_dir=str(DATA), max_dialog_turns=6), Chatty(entries), progress=False)
    rec = json.loads(open(s["records"]).readline())
    assert rec["stop_reason"] == "message limit" and len(rec["raw"]) == 6
    assert [m["message"] for m in rec["raw"] if m["sender"] == "execution"] == [
        "Please do not ask me any questions, use the known conditions to solve the problem"] * 3
    assert rec["state"] == [] and not rec["valid"] and rec["error_type"] == "wrong number of class"


def test_prompts_over_the_limit_are_recorded(tmp_path, monkeypatch):
    monkeypatch.setenv("LOOPTOOL_HOME", str(tmp_path))
    ids = ["special_irrelevant_0", "agent_multi_step_2"]
    entries = data.select(DATA, list(data.CATEGORIES), ids=ids)
    s = run_acebench(_cfg(ids, max_prompt_tokens=50), Oracle(entries), progress=False)
    recs = {r["id"]: r for r in map(json.loads, open(s["records"]))}
    assert recs["special_irrelevant_0"]["error_type"] == "inference_error:prompt_too_long"
    assert recs["agent_multi_step_2"]["stop_reason"].startswith("agent prompt longer than")
    assert s["error_types"]["inference_error:prompt_too_long"] == 1


def test_loop_entry_point(tmp_path, monkeypatch):
    """ACEBench through the loop's benchmark interface (core.benchmarks, as the eval stage calls it): the
    run config's model and eval sections, a seeded subset, progress and checkpoint callbacks (the
    default data location is used)."""
    import core.backends
    from core.benchmarks import EvalRequest, get
    from core.config import load
    from core.weights import Weights
    from evals.acebench import fetch

    monkeypatch.setenv("LOOPTOOL_HOME", str(tmp_path))
    cache = fetch.default_dir()
    cache.parent.mkdir(parents=True)
    cache.symlink_to(DATA, target_is_directory=True)  # the download is tested in test_acebench_data.py
    entries = data.select(DATA, ["special_irrelevant", "agent_multi_step"], per_category=2, seed=1234)
    loaded = []
    monkeypatch.setattr(core.backends, "load_backend",
                        lambda kind, model, **opts: loaded.append((kind, model, opts)) or Oracle(entries))
    progress, checks = [], []
    s = get("acebench").evaluate(EvalRequest(
        cfg=load("cpu-demo"), weights=Weights("base-model"), subset="special_irrelevant,agent_multi_step",
        per_category=2, on_progress=lambda done, total, tokens: progress.append((done, total)),
        checkpoint=lambda: checks.append(1)))
    assert loaded[0][0] == "hf" and loaded[0][1] == "base-model"
    assert s["benchmark"] == "acebench" and s["eval_id"].startswith("acebench-") and s["started_at"]
    assert s["config"]["seed"] == 1234 and s["categories"] == {"special_irrelevant": 2, "agent_multi_step": 2}
    assert {e.id for e in entries} == {json.loads(x)["id"] for x in open(s["records"])}
    assert progress[0] == (0, 4) and progress[-1] == (4, 4) and len(checks) == 4
    assert s["per_category"]["special_irrelevant"]["accuracy"] == 1.0
