"""The loop's instruments without a model: failure classes, probe mastery per kind, BFCL error types
per category, the train curve (written, deduplicated on resume, compacted into train.done stats) and
the tables of `looptool runs show` on a hand-written store."""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from core.backends import Generation
from core.failures import FAILURE_CLASSES, classify, sample_kind
from core.schema import Call, Label, Message, Sample
from core.stages import probe

WEATHER = Call(name="get_weather", arguments={"city": "Paris"})


def sample(label: Label, kind: str | None = "simple", sid: str = "s") -> Sample:
    return Sample(id=sid, tools=[], messages=[Message(role="user", content="Weather in Paris?")], label=label,
                  meta={"kind": kind} if kind else {})


CALLS = Label(calls=[WEATHER])
TEXT = Label(text="Which city?")
TWO_ARGS = Label(calls=[Call(name="get_weather", arguments={"city": "Paris", "unit": "c"})])
PARALLEL = Label(calls=[WEATHER, Call(name="get_weather", arguments={"city": "Rome"})])

# (label, prompt-mode reply, expected class): every class once, plus a mastered reply.
PROMPT_CASES = [
    (CALLS, '[get_weather(city="Paris")]', None),
    (CALLS, "It is sunny in Paris.", "no_call"),
    (TEXT, '[get_weather(city="Paris")]', "unexpected_call"),
    (CALLS, "[get_weather(city=Paris)]", "malformed"),  # a bare name is not a literal
    (CALLS, '[get_time(city="Paris")]', "wrong_function"),
    (TWO_ARGS, '[get_weather(city="Paris")]', "missing_argument"),
    (CALLS, '[get_weather(city="Paris", unit="c")]', "extra_argument"),
    (CALLS, '[get_weather(city="Rome")]', "wrong_value"),
]


def test_failure_classes_are_the_documented_seven_in_priority_order():
    assert FAILURE_CLASSES == ("no_call", "unexpected_call", "malformed", "wrong_function",
                               "missing_argument", "extra_argument", "wrong_value")
    assert sorted(c for _, _, c in PROMPT_CASES if c) == sorted(FAILURE_CLASSES)


@pytest.mark.parametrize("label,reply,expected", PROMPT_CASES, ids=[str(c) for _, _, c in PROMPT_CASES])
def test_classify_prompt_mode(label, reply, expected):
    assert classify(reply, sample(label), "prompt") == expected


def hermes(*calls: tuple[str, dict]) -> str:
    return "".join(f"<tool_call>{json.dumps({'name': n, 'arguments': a})}</tool_call>" for n, a in calls)


@pytest.mark.parametrize("label,reply,expected", [
    (CALLS, hermes(("get_weather", {"city": "Paris"})), None),
    (TEXT, "Which city do you mean?", None),
    (CALLS, "Sure, one moment.", "no_call"),
    (TEXT, hermes(("get_weather", {"city": "Paris"})), "unexpected_call"),
    (TEXT, '<tool_call>{"name": "get_weather", "arguments": {"city": }</tool_call>', "unexpected_call"),
    (CALLS, '<tool_call>{"name": "get_weather", "arguments": {"city": }</tool_call>', "malformed"),
    (CALLS, hermes(("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Paris"})), "wrong_function"),
    (TWO_ARGS, hermes(("get_weather", {"unit": "c"})), "missing_argument"),
    (CALLS, hermes(("get_weather", {"city": "Paris", "unit": "c"})), "extra_argument"),
    (CALLS, hermes(("get_weather", {"city": "paris"})), "wrong_value"),
])
def test_classify_fc_mode(label, reply, expected):
    assert classify(reply, sample(label), "fc") == expected


def test_parallel_calls_are_paired_by_arguments_not_order():
    s = sample(PARALLEL, "parallel")
    assert classify('[get_weather(city="Rome"), get_weather(city="Paris")]', s, "prompt") is None
    assert classify('[get_weather(city="Rome"), get_weather(city="Pariss")]', s, "prompt") == "wrong_value"
    assert classify('[get_weather(city="Rome"), get_weather(city="Paris", unit="c")]', s, "prompt") \
        == "extra_argument"
    assert classify('[get_weather(city="Rome")]', s, "prompt") == "wrong_function"  # one call short


def test_list_as_set_decides_a_reordered_list_value():
    s = sample(Label(calls=[Call(name="f", arguments={"xs": [1, 2]})]))
    assert classify("[f(xs=[2, 1])]", s, "prompt") == "wrong_value"
    assert classify("[f(xs=[2, 1])]", s, "prompt", list_as_set=True) is None
    assert classify("[f(xs=[1.0, 2])]", s, "prompt") is None  # 1 == 1.0 under ToolMatch


def test_sample_kind_from_meta_else_by_label():
    assert sample_kind(sample(CALLS, "parallel_multiple")) == "parallel_multiple"
    assert sample_kind(sample(CALLS, None)) == "call"
    assert sample_kind(sample(TEXT, None)) == "text"


# -- probe records and summary --------------------------------------------------------------------

def test_make_record_carries_kind_and_failure():
    gen = Generation(text='[get_weather(city="Rome")]', token_ids=[1, 2], logprobs=[-0.1, -0.3])
    rec = probe.make_record(sample(CALLS, "multiple"), gen, "prompt")
    assert (rec["kind"], rec["failure"], rec["mastered"]) == ("multiple", "wrong_value", False)
    rec = probe.make_record(sample(CALLS, None), Generation(text='[get_weather(city="Paris")]'), "prompt")
    assert (rec["kind"], rec["failure"], rec["mastered"]) == ("call", None, True)


def test_summarize_counts_mastery_and_failures_per_kind():
    records, samples = {}, {}
    rows = [("a", "simple", CALLS, '[get_weather(city="Paris")]'),
            ("b", "simple", CALLS, "no idea"),
            ("c", "simple", CALLS, '[get_weather(city="Rome")]'),
            ("d", "clarify", TEXT, "Which city?"),
            ("e", "clarify", TEXT, '[get_weather(city="Paris")]'),
            ("f", "parallel", PARALLEL, '[get_weather(city="Paris")]')]
    for sid, kind, label, reply in rows:
        s = sample(label, kind, sid)
        samples[sid] = s
        records[sid] = probe.make_record(s, Generation(text=reply, logprobs=[-1.0]), "prompt")
    # Records written before kind/failure existed: classified from the dataset when it is given...
    old = {k: {f: v for f, v in r.items() if f not in ("kind", "failure")} for k, r in records.items()}
    for recs, given in ((records, None), (old, samples)):
        stats = probe.summarize(recs, list(records), samples=given, mode="prompt")
        assert (stats["samples"], stats["mastered"], stats["mismatched"]) == (6, 2, 4)
        assert stats["by_kind"] == {"clarify": {"mastered": 1, "total": 2}, "parallel": {"mastered": 0, "total": 1},
                                    "simple": {"mastered": 1, "total": 3}}
        assert stats["failure_classes"] == {"no_call": 1, "unexpected_call": 1, "malformed": 0, "wrong_function": 1,
                                            "missing_argument": 0, "extra_argument": 0, "wrong_value": 1}
        assert list(stats["failure_classes"]) == list(FAILURE_CLASSES)
        assert stats["by_kind_failures"] == {"clarify": {"unexpected_call": 1},
                                             "parallel": {"wrong_function": 1},
                                             "simple": {"no_call": 1, "wrong_value": 1}}
        assert stats["unclassified"] == 0
        assert stats["mean_ppl"] == pytest.approx(2.7183, abs=1e-4)
    # ...and without it they count as kind "unknown", mismatched ones as unclassified.
    stats = probe.summarize(old, ["a", "b", "c"])
    assert stats["by_kind"] == {"unknown": {"mastered": 1, "total": 3}}
    assert sum(stats["failure_classes"].values()) == 0 and stats["unclassified"] == 2
    assert stats["by_kind_failures"] == {}


# -- BFCL error types per category ----------------------------------------------------------------

def test_eval_summary_counts_error_types_per_category():
    from evals.bfcl import summarize
    from evals.bfcl_data import Entry

    entries = [Entry(f"{cat}_{i}", cat, [], [], [])
               for cat, n in (("simple_python", 4), ("multiple", 2)) for i in range(n)]
    records = {
        "simple_python_0": {"valid": True},
        "simple_python_1": {"valid": False, "error_type": "value_error:string"},
        "simple_python_2": {"valid": False, "error_type": "value_error:string"},
        "simple_python_3": {"valid": False, "error_type": "type_error:simple"},
        "multiple_0": {"valid": False, "error_type": "ast_decoder:decoder_failed"},
        # multiple_1 has no record yet (an incomplete eval)
    }
    s = summarize("bfcl-t", {"model": "m"}, entries, records)
    assert s["per_category"]["simple_python"]["error_types"] == {"value_error:string": 2, "type_error:simple": 1}
    assert s["per_category"]["multiple"]["error_types"] == {"ast_decoder:decoder_failed": 1}
    assert (s["per_category"]["simple_python"]["correct"], s["per_category"]["multiple"]["total"]) == (1, 2)
    assert s["error_types"] == {"value_error:string": 2, "type_error:simple": 1, "ast_decoder:decoder_failed": 1}
    from core.engine import brief_stats

    brief = brief_stats("eval", {"summaries": {"bfcl": s}, "skipped": {"acebench": "no data"}})
    assert brief["per_category"]["simple_python"]["error_types"] == {"value_error:string": 2, "type_error:simple": 1}
    assert brief["acebench_skipped"] == "no data"


# -- train curve ----------------------------------------------------------------------------------

def fake_ctx(tmp_path):
    emitted = []
    return SimpleNamespace(iter_dir=tmp_path, iteration=1, emit=lambda kind, data: emitted.append((kind, data)),
                           progress=lambda *a, **k: None, control=None), emitted


def fake_state(step: int, main: bool = True):
    return SimpleNamespace(global_step=step, max_steps=5, epoch=step / 5, is_world_process_zero=main,
                           num_input_tokens_seen=0)


def grpo_logs(step: int, loss: float) -> dict:
    """What trl 1.x GRPOTrainer logs per step (a subset)."""
    return {"loss": loss, "grad_norm": 0.5, "learning_rate": 1e-6, "num_tokens": 100.0 * step,
            "reward": step / 10, "reward_std": 0.25, "frac_reward_zero_std": 0.5,
            "completions/mean_length": 20.0 + step, "completions/clipped_ratio": 0.0,
            "completions/max_length": 40.0, "epoch": step / 5}


def test_train_curve_is_written_per_step_and_deduplicated_on_resume(tmp_path):
    from core.stages.train_callback import CURVE_FILE, LoopCallback, read_curve

    ctx, emitted = fake_ctx(tmp_path)
    cb = LoopCallback(ctx)
    cb.on_train_begin(None, fake_state(0), SimpleNamespace())
    for step in (1, 2, 3, 4):
        cb.on_log(None, fake_state(step), SimpleNamespace(), logs=grpo_logs(step, 1.0 / step))
    cb.on_log(None, fake_state(4), SimpleNamespace(), logs={"train_runtime": 9.0})  # the end summary: no point
    path = tmp_path / CURVE_FILE
    assert [p["step"] for p in read_curve(path)] == [1, 2, 3, 4]
    assert read_curve(path)[1] == {"step": 2, "epoch": 0.4, "loss": 0.5, "learning_rate": 1e-6, "grad_norm": 0.5,
                                   "num_tokens": 200.0, "reward": 0.2, "reward_std": 0.25,
                                   "frac_reward_zero_std": 0.5, "completion_length": 22.0, "clipped_ratio": 0.0}
    assert len([d for k, d in emitted if k == "metrics"]) == 4
    with open(path, "a") as fh:
        fh.write('{"step": 5, "lo')  # killed mid-line

    # Resumed from the checkpoint of step 2: steps 3 and 4 are trained (and logged) again.
    cb = LoopCallback(fake_ctx(tmp_path)[0])
    cb.on_train_begin(None, fake_state(2), SimpleNamespace())
    assert [p["step"] for p in read_curve(path)] == [1, 2]
    for step in (3, 4, 5):
        cb.on_log(None, fake_state(step), SimpleNamespace(), logs=grpo_logs(step, 0.123456789 * step))
    lines = path.read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines] == [1, 2, 3, 4, 5]  # no step twice
    curve = cb.curve()
    assert [p["step"] for p in curve] == [1, 2, 3, 4, 5]
    assert [p["loss"] for p in curve] == [1.0, 0.5, 0.37037, 0.49383, 0.61728]  # 5 significant digits

    # A second process (not the main one) writes nothing and reports no curve.
    other = tmp_path / "other"
    cb = LoopCallback(fake_ctx(other)[0])
    cb.on_train_begin(None, fake_state(0, main=False), SimpleNamespace())
    cb.on_log(None, fake_state(1, main=False), SimpleNamespace(), logs=grpo_logs(1, 1.0))
    assert not (other / CURVE_FILE).exists() and cb.curve() == []


def test_train_stats_carry_the_compact_curve(tmp_path):
    from core.stages.train import _stats
    from core.stages.train_callback import LoopCallback

    cb = LoopCallback(fake_ctx(tmp_path)[0])
    cb.on_train_begin(None, fake_state(0), SimpleNamespace())
    logs = [{"loss": 0.333333333, "grad_norm": 1.23456789, "learning_rate": 2e-5, "num_tokens": 64.0, "epoch": 0.5},
            {"loss": 0.25, "grad_norm": 1.0, "learning_rate": 1e-5, "num_tokens": 128.0, "epoch": 1.0}]
    for step, entry in enumerate(logs, 1):
        cb.on_log(None, fake_state(step), SimpleNamespace(), logs=entry)
    trainer = SimpleNamespace(state=SimpleNamespace(log_history=logs, global_step=2, max_steps=2),
                              args=SimpleNamespace(per_device_train_batch_size=2, gradient_accumulation_steps=1,
                                                   world_size=1, bf16=True, use_cpu=True))
    tcfg = SimpleNamespace(epochs=1, lora=True, sft_lr=2e-5, lr=1e-6, num_generations=4)
    stats = _stats(trainer, cb, "sft", 4, 0, tcfg, None, 0.0)
    assert stats["curve"] == [
        {"step": 1, "epoch": 0.5, "loss": 0.33333, "learning_rate": 2e-5, "grad_norm": 1.2346, "num_tokens": 64.0},
        {"step": 2, "epoch": 1.0, "loss": 0.25, "learning_rate": 1e-5, "grad_norm": 1.0, "num_tokens": 128.0}]
    assert stats["final_loss"] == 0.25 and stats["precision"] == "bf16 autocast, float32 weights"


# -- looptool runs show ---------------------------------------------------------------------------

RUN_ID = "run-instruments-1"


def _iteration(j: int, by_kind: dict, classes: dict, curve: list[dict]) -> dict:
    return {"key": f"{RUN_ID}/{j}", "run_id": RUN_ID, "iteration": j,
            "train": {"method": "grpo", "steps": len(curve), "curve": curve},
            "probe": {"samples": sum(k["total"] for k in by_kind.values()),
                      "mastered": sum(k["mastered"] for k in by_kind.values()), "by_kind": by_kind,
                      "failure_classes": {c: classes.get(c, 0) for c in FAILURE_CLASSES},
                      "by_kind_failures": {}}}


def _eval(j: int, per_category: dict) -> dict:
    return {"eval_id": f"bfcl-{RUN_ID}-{j}", "benchmark": "bfcl-v3", "run_id": RUN_ID, "iteration": j,
            "scores": {"overall": 0.1 * j}, "per_category": per_category,
            "acebench_skipped": "ACEBench data not found"}


@pytest.fixture
def run_store():
    from core.store import ResultStore

    with ResultStore() as store:
        store.add_doc("runs", {"run_id": RUN_ID, "name": "t", "state": "finished", "run_dir": "/tmp/x",
                               "iterations": 2, "model": "embedded"}, key="run_id")
        store.add_doc("iterations", _iteration(
            1, {"simple": {"mastered": 3, "total": 4}, "clarify": {"mastered": 0, "total": 2}},
            {"no_call": 1, "unexpected_call": 2},
            [{"step": 1, "loss": 0.9, "reward": 0.25, "frac_reward_zero_std": 0.5},
             {"step": 2, "loss": 0.7, "reward": 0.5, "frac_reward_zero_std": 0.25}]), key="key")
        store.add_doc("iterations", _iteration(
            2, {"simple": {"mastered": 4, "total": 4}, "clarify": {"mastered": 1, "total": 2}},
            {"wrong_value": 1},
            [{"step": 1, "loss": 0.6, "reward": 0.75, "frac_reward_zero_std": 0.75},
             {"step": 2, "loss": 0.4, "reward": 1.0, "frac_reward_zero_std": 0.25}]), key="key")
        store.add_eval(_eval(0, {"simple_python": {"correct": 1, "total": 4, "accuracy": 0.25,
                                                   "error_types": {"value_error:string": 3}}}))
        store.add_eval(_eval(1, {"simple_python": {"correct": 3, "total": 4, "accuracy": 0.75,
                                                   "error_types": {"value_error:string": 1}}}))
        store.add_eval(_eval(2, {"simple_python": {"correct": 3, "total": 4, "accuracy": 0.75,
                                                   "error_types": {"type_error:simple": 1}}}))
        store.flush()
    return RUN_ID


def _runs_show(*args: str) -> str:
    from typer.testing import CliRunner

    from console.cli import app

    result = CliRunner().invoke(app, ["runs", "show", *args], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.output


def test_runs_show_json_has_the_instruments(run_store):
    doc = json.loads(_runs_show(run_store, "--json"))
    inst = doc["instruments"]
    assert [i["iteration"] for i in inst["iterations"]] == [1, 2]
    assert inst["iterations"][0]["by_kind"]["clarify"] == {"mastered": 0, "total": 2}
    assert inst["iterations"][1]["failure_classes"]["wrong_value"] == 1
    assert inst["iterations"][0]["train_curve"] == {"steps": 2, "first_loss": 0.9, "last_loss": 0.7,
                                                    "first_reward": 0.25, "last_reward": 0.5,
                                                    "mean_frac_reward_zero_std": 0.375}
    assert inst["eval_iterations"] == ["0", "1", "2"]
    assert inst["eval_error_types"] == [
        {"category": "simple_python", "error_type": "type_error:simple", "counts": {"2": 1}},
        {"category": "simple_python", "error_type": "value_error:string", "counts": {"0": 3, "1": 1}}]
    assert doc["evals"][1]["error_types"] == {"simple_python": {"value_error:string": 1}}
    assert doc["evals"][0]["acebench_skipped"] == "ACEBench data not found"


def test_runs_show_prints_the_instrument_tables(run_store):
    out = _runs_show(run_store)
    lines = out.splitlines()

    def row(*cells: str) -> list[str]:
        """The table line whose cells start with `cells` (split on the box-drawing bars)."""
        for line in lines:
            parts = [p.strip() for p in line.replace("┃", "│").split("│") if p.strip()]
            if parts[:len(cells)] == list(cells):
                return parts
        raise AssertionError(f"no row {cells} in:\n{out}")

    assert "ACEBench: not evaluated — ACEBench data not found" in out
    assert "probe: mastered per kind" in out and "probe: failure classes" in out
    assert row("clarify") == ["clarify", "0/2  0.0%", "1/2  50.0%"]
    assert row("simple") == ["simple", "3/4  75.0%", "4/4  100.0%"]
    assert row("unexpected_call") == ["unexpected_call", "2", "0"]
    assert row("wrong_value") == ["wrong_value", "0", "1"]
    assert row("malformed") == ["malformed", "0", "0"]
    assert row("simple_python", "value_error:string") == ["simple_python", "value_error:string", "3", "1", "0", "-3"]
    assert row("simple_python", "type_error:simple") == ["simple_python", "type_error:simple", "0", "0", "1", "+1"]
    assert row("1", "2", "0.9") == ["1", "2", "0.9", "0.7", "0.25", "0.5", "0.375"]
    assert row("2", "2", "0.6") == ["2", "2", "0.6", "0.4", "0.75", "1", "0.5"]


def test_runs_show_keeps_a_base_eval_the_store_lists_under_a_newer_run(tmp_path):
    """Two runs on one base model with one eval config share their iteration-0 eval id; the store's
    document names the newer run, and the older run's iteration 0 comes from its own eval.done."""
    from core.stages.base import mark_done
    from core.store import ResultStore

    base = {"eval_id": "bfcl-shared-base", "benchmark": "bfcl-v3", "scores": {"overall": 0.25},
            "per_category": {"simple_python": {"correct": 1, "total": 4, "accuracy": 0.25, "error_types": {}}}}
    with ResultStore() as store:
        for n, run in enumerate(("older-run", "newer-run")):
            run_dir = tmp_path / run
            (run_dir / "iter-0").mkdir(parents=True)
            mark_done(run_dir / "iter-0", "eval", {"iteration": 0, "summaries": {"bfcl": {**base, "iteration": 0}},
                                                    "skipped": {}})
            store.add_doc("runs", {"run_id": run, "name": "t", "state": "finished", "run_dir": str(run_dir),
                                   "iterations": 1, "model": "embedded"}, key="run_id")
            store.add_eval({**base, "run_id": run, "iteration": 0, "started_at": f"2026-12-0{n + 1}"})
        trained = {**base, "eval_id": "bfcl-older-1", "run_id": "older-run", "iteration": 1,
                   "scores": {"overall": 0.5}}
        store.add_eval(trained)
        store.flush()
        assert store.get_eval("bfcl-shared-base")["run_id"] == "newer-run"
    older = json.loads(_runs_show("older-run", "--json"))
    assert [(e["iteration"], e["eval_id"], e["accuracy"]) for e in older["evals"]] == [
        (0, "bfcl-shared-base", 0.25), (1, "bfcl-older-1", 0.25)]
    newer = json.loads(_runs_show("newer-run", "--json"))
    assert [(e["iteration"], e["eval_id"]) for e in newer["evals"]] == [(0, "bfcl-shared-base")]  # once, not twice
