"""A hand-written run directory for the examples tests (core.samples, the `samples` bus verb, the
console's examples screen): iteration 1 with its dataset, probe, judge and expansions, and two evals of
that iteration, each line written as the stages and the eval runners write theirs."""
from __future__ import annotations

import json
from pathlib import Path

RUN_ID = "tiny-20260101-000000"
CONFIG = (Path(__file__).parent / "data" / "tiny-run.toml").read_text()
LONG_REPLY = "[get_weather(city='" + "P" * 5000 + "')]"  # over core.samples.MAX_TEXT_CHARS

WEATHER = {"name": "get_weather", "description": "The weather in a city.",
           "parameters": {"type": "dict", "properties": {"city": {"type": "string", "description": "The city."}},
                          "required": ["city"]}}


def sample(sid: str, question: str, label: dict, kind: str, **extra) -> dict:
    return {"id": sid, "tools": [WEATHER], "messages": [{"role": "user", "content": question}], "label": label,
            "source": "seed:procedural", "meta": {"kind": kind}, **extra}


DATASET = [
    sample("s1", "Weather in Paris?", {"calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]}, "simple"),
    sample("s2", "Weather in Oslo?", {"calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}]}, "simple"),
    sample("s3", "What is the weather like?", {"text": "Which city?"}, "clarify"),
    sample("s4", "Weather in Rome and Bern?", {"calls": [{"name": "get_weather", "arguments": {"city": "Rome"}},
                                                          {"name": "get_weather", "arguments": {"city": "Bern"}}]},
           "parallel"),
]
PROBE = [
    {"id": "s1", "response": "[get_weather(city='Paris')]", "ppl": 1.05, "ppl_call": 1.05, "mastered": True,
     "reward": 1.0, "tokens": 9, "finish": "stop", "kind": "simple", "failure": None},
    {"id": "s2", "response": "I can't help with that.", "ppl": 1.5, "ppl_call": 1.5, "mastered": False,
     "reward": 0.0, "tokens": 7, "finish": "stop", "kind": "simple", "failure": "no_call"},
    {"id": "s3", "response": "[get_weather(city='London')]", "ppl": 1.2, "ppl_call": 1.2, "mastered": False,
     "reward": 0.0, "tokens": 9, "finish": "stop", "kind": "clarify", "failure": "unexpected_call"},
    {"id": "s4", "response": LONG_REPLY, "ppl": 1.1, "ppl_call": 1.1, "mastered": False, "reward": 0.0,
     "tokens": 16, "finish": "length", "kind": "parallel", "failure": "malformed"},
]
RELABEL = {**DATASET[2], "label": {"calls": [{"name": "get_weather", "arguments": {"city": "London"}}]},
           "source": "relabel", "parent": "s3", "meta": {"kind": "clarify", "original_label": {"text": "Which city?"}}}
JUDGE = [
    {"id": "s2", "verdict": "PRED_WRONG", "outcome": "PRED_WRONG", "by": "rule", "votes": [],
     "reason": "the label's calls are valid and grounded; the prediction makes no call"},
    {"id": "s3", "verdict": "LABEL_WRONG", "outcome": "LABEL_WRONG", "by": "llm", "votes": ["LABEL_WRONG"],
     "reason": "the prediction's calls are valid and grounded", "relabel": RELABEL},
    {"id": "s4", "verdict": "BOTH_WRONG", "outcome": "BOTH_WRONG", "by": "rule", "votes": [],
     "reason": "label: ok | prediction: the prediction is a malformed tool call"},
]


def expansion(seed: dict, k: int, city: str, variation: str) -> dict:
    return {**seed, "id": f"{seed['id']}-x{k}", "source": "expand", "parent": seed["id"],
            "messages": [{"role": "user", "content": f"Tell me the weather in {city}."}],
            "label": {"calls": [{"name": "get_weather", "arguments": {"city": city}}]},
            "meta": {"variation": variation, "kind": "simple", "generator": "procedural"}}


EXPAND = [expansion(DATASET[1], 0, "Lima", "data"), expansion(DATASET[1], 1, "Kyiv", "persona"),
          expansion(RELABEL, 0, "Accra", "complexity")]
EXPAND_SEEDS = [{"id": "s2", "generated": 3, "kept": 2}, {"id": "s3", "generated": 1, "kept": 1}]
BFCL_RECORDS = [
    {"id": "simple_python_1", "category": "simple_python", "raw": "[math.hypot(x=3, y=4)]", "valid": True,
     "error_type": None, "error": None, "decoded": [{"math.hypot": {"x": 3, "y": 4}}], "decoding": "official"},
    {"id": "simple_python_2", "category": "simple_python", "raw": "The answer is 5.", "valid": False,
     "error_type": "ast_decoder:decoder_failed:syntax", "error": "not a Python call list", "decoded": None},
    {"id": "multiple_3", "category": "multiple", "raw": "[area(r=2)]", "valid": False,
     "error_type": "simple_function_checker:wrong_func_name", "error": "function names differ",
     "decoded": [{"area": {"r": 2}}]},
]
ACE_RECORDS = [
    {"id": "normal_atom_bool_1", "category": "normal_atom_bool", "raw": "I can't help with that.", "valid": False,
     "error_type": "wrong_output_format", "error": "syntax: no [...] call list in the reply", "decoded": None},
]


def _jsonl(path: Path, records: list[dict], tail: str = "") -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + tail)


def write_run(root: Path) -> tuple[Path, list[dict], list[dict]]:
    """(run_dir, the store's runs docs, the store's eval docs) of a run written under `root`. The probe
    file also holds a line that is not JSON and a torn last line, which readers skip."""
    run_dir = root / "runs" / RUN_ID
    it = run_dir / "iter-1"
    it.mkdir(parents=True)
    (run_dir / "iter-2").mkdir()
    (run_dir / "config.toml").write_text(CONFIG)
    _jsonl(it / "dataset.jsonl", DATASET)
    _jsonl(it / "probe.jsonl", PROBE[:2])
    with open(it / "probe.jsonl", "a") as fh:
        fh.write("{not json\n")
        fh.write("".join(json.dumps(r) + "\n" for r in PROBE[2:]))
        fh.write('{"id": "s5", "response": "torn')  # a record still being written
    _jsonl(it / "judge.jsonl", JUDGE)
    _jsonl(it / "expand.jsonl", EXPAND)
    _jsonl(it / "expand.seeds.jsonl", EXPAND_SEEDS)
    evals = []
    for eval_id, benchmark, records, started in (("acebench-t1", "acebench", ACE_RECORDS, "2026-01-01T00:02:00"),
                                                 ("bfcl-t1", "bfcl-v3", BFCL_RECORDS, "2026-01-01T00:01:00")):
        d = root / "evals" / eval_id
        d.mkdir(parents=True)
        _jsonl(d / "records.jsonl", records)
        evals.append({"eval_id": eval_id, "benchmark": benchmark, "run_id": RUN_ID, "iteration": 1,
                      "started_at": started, "records": str(d / "records.jsonl"), "scores": {"overall": 0.1}})
    runs = [{"run_id": RUN_ID, "name": "tiny", "state": "finished", "run_dir": str(run_dir), "iterations": 2,
             "model": "embedded", "updated_at": "2026-01-01T00:03:00"}]
    return run_dir, runs, evals


STAND_IN_PROMPT = "<|im_start|>system\n(a stand-in for the rendered prompt)<|im_end|>\n"


def samples_responder(run_dir: Path, evals: list[dict]):
    """A memlink responder that answers `samples` the way the core daemon does (core.samples on the
    files above; a bad filter rejected, an unreadable page failed) and every other verb as FakeCore.
    Rendering a probe prompt loads a tokenizer, so prompts of probe, judge and expand samples are the
    STAND_IN_PROMPT here (the real rendering is tested on the tiny run in test_engine_e2e.py)."""
    from console.memlink import FakeCore
    from core import busproto as bp
    from core import samples
    from core.errors import UserError

    fake = FakeCore()

    def respond(link, verb, cmd):
        if verb != "samples":
            return fake(link, verb, cmd)
        args = bp.SamplesArgs.model_validate(cmd.args)
        try:
            samples.check_filters(args.stage, args.filters)
        except UserError as e:
            return link.feed_ack(cmd.id, "rejected", f"args.filters: {e}", verb=verb)
        link.feed_ack(cmd.id, "accepted", verb=verb)
        mine = samples.evals_of(evals, RUN_ID, run_dir, args.iteration)
        try:
            if args.prompt_id is None:
                result = samples.page(run_dir, args.iteration, args.stage, args.filters, args.offset, args.limit,
                                      evals=mine)
            elif args.stage == "eval":
                result = samples.prompt(run_dir, args.iteration, args.stage, args.prompt_id, evals=mine)
            else:
                result = {"id": args.prompt_id, "stage": args.stage, "iteration": args.iteration,
                          "prompt": STAND_IN_PROMPT, "mode": "prompt", "note": "as the probe put it to the policy"}
        except UserError as e:
            return link.feed_ack(cmd.id, "failed", str(e), verb=verb)
        link.feed_ack(cmd.id, "done", "", result, verb)

    return respond
