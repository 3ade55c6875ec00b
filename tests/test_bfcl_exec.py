"""Checker parity for evals/bfcl_exec.py: the eval-free executor must behave like bfcl-eval's.

Ground truth is trusted data, so these tests may hand it (and a few harmless, hand-written ill-formed
strings) to bfcl-eval's eval-based executor/checker as the reference. Model-like hostile strings only
ever go through SafeExecutor.
"""
from __future__ import annotations

import ast
import copy
import random

import pytest

from core.bfcl_lib import bfcl

bfcl()

from bfcl_eval.eval_checker.multi_turn_eval import multi_turn_utils  # noqa: E402
from bfcl_eval.eval_checker.multi_turn_eval.multi_turn_checker import multi_turn_checker  # noqa: E402
from bfcl_eval.eval_checker.multi_turn_eval.multi_turn_utils import (  # noqa: E402
    execute_multi_turn_func_call,
)
from bfcl_eval.utils import load_dataset_entry, load_ground_truth_entry  # noqa: E402

from core.toolcalls import DecodeError, ToolCall  # noqa: E402
from evals.bfcl_exec import (  # noqa: E402
    SafeExecutor,
    check_entry,
    rerender,
    reset_bfcl_instance_cache,
)

CATEGORIES = ["multi_turn_base", "multi_turn_miss_func", "multi_turn_miss_param", "multi_turn_long_context"]
PER_CATEGORY = 10


def _sample() -> list[tuple[dict, list[list[str]]]]:
    out = []
    for cat in CATEGORIES:
        entries = load_dataset_entry(cat, include_prereq=False, include_language_specific_hint=False)
        gts = {g["id"]: g["ground_truth"] for g in load_ground_truth_entry(cat)}
        for entry in random.Random(0).sample(entries, PER_CATEGORY):
            out.append((entry, gts[entry["id"]]))
    return out


SAMPLE = _sample()
IDS = [e["id"] for e, _ in SAMPLE]


def _long(entry: dict) -> bool:
    return "long_context" in entry["id"]


def _public_state(instance) -> dict:
    return {k: v for k, v in vars(instance).items() if not k.startswith("_")}


def _cached_instances() -> list[str]:
    return [k for k in vars(multi_turn_utils) if k.endswith("_instance")]


@pytest.fixture(autouse=True)
def _clean_cache():
    reset_bfcl_instance_cache()
    yield
    reset_bfcl_instance_cache()


# ------------------------------------------------------------------------------- 1. hostile input
HOSTILE = [
    "__import__('os').system('touch PWNED')",
    "ls(a=__import__('os').system('touch PWNED'))",
    "os.system('touch PWNED')",
    "_load_scenario(config={})",
    "__class__()",
    "cd(folder='x').__class__",
    "cd(folder=open('PWNED', 'w'))",
    "[ls(), __import__('os').system('touch PWNED')]",
    "mkdir(dir_name='x'); __import__('os').system('touch PWNED')",
    "eval(source=\"__import__('os').system('touch PWNED')\")",
    "exec(\"open('PWNED','w')\")",
    "touch(file_name=(lambda: __import__('os').system('touch PWNED'))())",
    "getattr(o=1)",
    "ls(**{'a': True})",
]


def _entry_with_fs() -> dict:
    for entry, _ in SAMPLE:
        if "GorillaFileSystem" in entry["involved_classes"] and not _long(entry):
            return entry
    raise AssertionError("no GorillaFileSystem entry in the sample")


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_strings_never_execute(text, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ex = SafeExecutor(_entry_with_fs())
    before = {c: copy.deepcopy(_public_state(i)) for c, i in ex.instances.items()}
    rejected = False
    try:
        ex.validate(ex.parse(text))
    except DecodeError:
        rejected = True
    assert rejected, f"{text!r} passed parse+validate"
    results = ex.execute_strings([text])
    assert len(results) == 1 and results[0].startswith("Error during execution: ")
    assert not (tmp_path / "PWNED").exists()
    assert {c: _public_state(i) for c, i in ex.instances.items()} == before


HOSTILE_CALLS = [
    ToolCall("_load_scenario", {"scenario": {}}),
    ToolCall("__class__", {}),
    ToolCall("__init__", {}),
    ToolCall("os.system", {"command": "touch PWNED"}),
    ToolCall("cd.__globals__", {}),
    ToolCall("instances", {}),
    ToolCall("root", {}),  # a public non-method attribute of GorillaFileSystem
    ToolCall("cd", {"folder": "document", "__class__": 1}),
    ToolCall("kill", {"pid": 1}),
]


@pytest.mark.parametrize("call", HOSTILE_CALLS, ids=lambda c: c.name)
def test_hostile_toolcalls_rejected_without_side_effects(call, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    entry = _entry_with_fs()
    ex = SafeExecutor(entry)
    before = {c: copy.deepcopy(_public_state(i)) for c, i in ex.instances.items()}
    with pytest.raises(DecodeError):
        ex.validate(call)
    [result] = ex.execute([call])
    assert result.startswith("Error during execution: ")
    assert {c: _public_state(i) for c, i in ex.instances.items()} == before
    # check_entry drops it: a turn made only of invalid calls is an empty turn for bfcl
    gt = [["pwd()"]]
    verdict = check_entry([[[call]]], {**entry, "id": "multi_turn_base_999"}, gt)
    assert verdict["valid"] is False
    assert verdict["error_type"] == "multi_turn:empty_turn_model_response"
    assert not (tmp_path / "PWNED").exists()
    assert not _cached_instances()


def test_rerender_refuses_non_literal_round_trips():
    with pytest.raises(DecodeError):
        rerender([ToolCall("cd", {"folder": float("inf")})])  # repr 'inf' would be a name under eval
    with pytest.raises(DecodeError):
        rerender([ToolCall("_load_scenario", {})])
    with pytest.raises(DecodeError):
        rerender([ToolCall("os.system", {"command": "x"})])
    entry = _entry_with_fs()
    verdict = check_entry([[[ToolCall("cd", {"folder": float("nan")})]]], {**entry, "id": "multi_turn_base_9"},
                          [["pwd()"]])
    assert verdict["error_type"] == "multi_turn:empty_turn_model_response"  # dropped, never rendered
    assert rerender([ToolCall("cd", {"folder": "a'b\"c\n"}), ToolCall("ls", {})]) == [
        "cd(folder='a\\'b\"c\\n')", "ls()"]


# Harmless ill-formed strings: bfcl's own executor may run them, and our error strings must match.
ILL_FORMED = ["foo(a=1)", "cd(foldr='x')", "cd()", "ls(a=1, b=2)", "kill(pid=1)", "os.kill(pid=1)",
              "cd.foo(x=1)", "cd(folder='nonexistent')", "mv(source='a', destination='b', extra=1)"]


def test_error_strings_match_bfcl_for_ill_formed_calls():
    entry = _entry_with_fs()
    ex = SafeExecutor(entry)
    theirs, _ = execute_multi_turn_func_call(
        ILL_FORMED, entry["initial_config"], entry["involved_classes"], "parity", entry["id"])
    assert ex.execute_strings(ILL_FORMED) == theirs


# Synthetic backends (registered in CLASS_FILE_PATH_MAPPING for one test) for the behaviours the real
# backends do not exercise: shared method names, list/None returns, non-JSON dicts, in-place argument
# mutation, raised exceptions.
class FakeFirst:
    def _load_scenario(self, config, long_context=False):
        self.config = config
        self.calls = 0

    def shared(self):
        return "first"

    def only_first(self, n=1):
        self.calls += n
        return [self.calls, None, (1, 2)]


class FakeSecond:
    def _load_scenario(self, config, long_context=False):
        self.config = config
        self.long = long_context

    def shared(self):
        return "second"

    def mutate(self, items):
        items.append(len(items))
        return items

    def odd_dict(self, key):
        return {key: {1, 2}}

    def nothing(self):
        return None

    def boom(self, msg="bad"):
        raise KeyError(msg)

    def _private(self):
        raise AssertionError("must never run")


def test_synthetic_backends_match_bfcl(monkeypatch):
    from bfcl_eval.constants.executable_backend_config import CLASS_FILE_PATH_MAPPING

    monkeypatch.setitem(CLASS_FILE_PATH_MAPPING, "FakeFirst", __name__)
    monkeypatch.setitem(CLASS_FILE_PATH_MAPPING, "FakeSecond", __name__)
    entry = {"id": "multi_turn_base_fake_0", "involved_classes": ["FakeFirst", "FakeSecond"],
             "initial_config": {"FakeFirst": {"a": 1}, "FakeSecond": {"b": [2]}}}
    calls = ["shared()", "only_first(n=2)", "only_first(3)", "mutate(items=[5])", "mutate(items=[5])",
             "odd_dict(key='k')", "nothing()", "boom()", "boom(msg='x')", "_private()", "mutate([])"]
    ex = SafeExecutor(entry, long_context=True)
    ours = ex.execute_strings(calls)
    theirs, instances = execute_multi_turn_func_call(
        calls, entry["initial_config"], entry["involved_classes"], "fake", entry["id"], long_context=True)
    assert ours == theirs
    assert ours[0] == "second"  # the later class in involved_classes wins a shared name
    assert ours[3] == ours[4] == "[5, 1]"  # each call gets fresh argument values, as under eval
    for name, inst in instances.items():
        assert _public_state(ex.instances[name]) == _public_state(inst)
    assert ex.signatures()["only_first"] == ["n"]
    assert ours[1] == "[2, None, (1, 2)]" and ours[5] == "{'k': {1, 2}}"
    # one ToolCall object executed twice still gets fresh arguments each time
    call = ex.parse("mutate(items=[7])")
    assert ex.execute([call, call]) == ["[7, 1]", "[7, 1]"] and call.arguments == {"items": [7]}


# ------------------------------------------------------------------------------- 2. execution parity
@pytest.mark.parametrize("entry,gt", SAMPLE, ids=IDS)
def test_execution_parity(entry, gt):
    ex = SafeExecutor(entry, long_context=_long(entry))
    theirs_instances = {}
    for turn_index, turn in enumerate(gt):
        ours = ex.execute_strings(turn)
        theirs, theirs_instances = execute_multi_turn_func_call(
            turn, entry["initial_config"], entry["involved_classes"], "parity", entry["id"],
            long_context=_long(entry))
        assert ours == theirs, f"turn {turn_index}"
        assert len(ours) == len(turn)
    assert set(theirs_instances) == set(ex.instances)
    for class_name, instance in ex.instances.items():
        assert type(instance) is type(theirs_instances[class_name])
        assert _public_state(instance) == _public_state(theirs_instances[class_name]), class_name
    assert all(ex.instances[c] is not theirs_instances[c] for c in ex.instances)


# ------------------------------------------------------------------------------- 3. verdict parity
def _perturb_value(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 7
    if isinstance(value, str):
        return value + "_perturbed"
    if isinstance(value, list):
        return value + ["perturbed"]
    if isinstance(value, dict):
        return {**value, "perturbed": 1}
    return "perturbed"


def _perturbed_string(text: str, arg_index: int) -> str | None:
    """``text`` with its arg_index-th argument (positional first, then keywords) changed; via ast."""
    tree = ast.parse(text, mode="eval")
    slots = [(tree.body.args, i) for i in range(len(tree.body.args))]
    slots += [(kw, None) for kw in tree.body.keywords]
    if arg_index >= len(slots):
        return None
    holder, i = slots[arg_index]
    old = ast.literal_eval(holder[i] if i is not None else holder.value)
    new = ast.parse(repr(_perturb_value(old)), mode="eval").body
    if i is not None:
        holder[i] = new
    else:
        holder.value = new
    return ast.unparse(tree)


def _replay(entry, turns: list[list[str]]):
    ex = SafeExecutor(entry, long_context=_long(entry))
    results = [ex.execute_strings(t) for t in turns]
    return results, {c: _public_state(i) for c, i in ex.instances.items()}


def _state_changing_perturbation(entry, gt) -> list[list[str]]:
    """GT with one argument of one call changed so that the final state differs (else the results)."""
    base_results, base_state = _replay(entry, gt)
    fallback = None
    for t, turn in enumerate(gt):
        for c, call in enumerate(turn):
            for a in range(8):
                new = _perturbed_string(call, a)
                if new is None:
                    break
                turns = copy.deepcopy(gt)
                turns[t][c] = new
                results, state = _replay(entry, turns)
                if state != base_state:
                    return turns
                if fallback is None and results != base_results:
                    fallback = turns
    assert fallback is not None, f"{entry['id']}: no perturbation changes anything"
    return fallback


def _one_step_per_turn(turns: list[list[str]]) -> list[list[list[str]]]:
    return [[t] if t else [] for t in turns]


def _trajectories(entry, gt) -> dict[str, list[list[list[str]]]]:
    last = max(i for i, t in enumerate(gt) if t)
    dropped = _one_step_per_turn(gt)
    dropped[last] = []
    return {
        "ground_truth": _one_step_per_turn(gt),
        "drop_last_turn_calls": dropped,
        "changed_argument": _one_step_per_turn(_state_changing_perturbation(entry, gt)),
        "removed_turn": _one_step_per_turn(gt)[1:],
    }


EXPECTED = {
    "ground_truth": {None},
    "drop_last_turn_calls": {"multi_turn:empty_turn_model_response"},
    "changed_argument": {"multi_turn:instance_state_mismatch", "multi_turn:execution_response_mismatch"},
    "removed_turn": {"multi_turn:force_terminated"},
}


def _bfcl_verdict(strings, entry, gt) -> dict:
    """bfcl-eval's verdict from the trusted strings. The force_terminated turn-count rule sits in
    eval_runner._evaluate_single_multi_turn_entry (not importable without bfcl's full deps), before
    multi_turn_checker, which would index past the shorter list."""
    if len(strings) != len(gt):
        return {"valid": False, "error_type": "multi_turn:force_terminated"}
    try:
        return multi_turn_checker(strings, gt, entry, entry["id"].rsplit("_", 1)[0], "bfclref")
    finally:
        reset_bfcl_instance_cache()


@pytest.mark.parametrize("entry,gt", SAMPLE, ids=IDS)
def test_verdict_parity(entry, gt):
    ex = SafeExecutor(entry)
    for name, strings in _trajectories(entry, gt).items():
        decoded = [[[ex.parse(s) for s in step] for step in turn] for turn in strings]
        ours = check_entry(decoded, entry, gt)
        assert not _cached_instances()
        theirs = _bfcl_verdict(strings, entry, gt)
        assert ours["valid"] == theirs["valid"], (name, ours.get("error_type"), theirs.get("error_type"))
        assert ours.get("error_type") == theirs.get("error_type"), name
        assert ours.get("error_type") in EXPECTED[name], (name, ours.get("error_type"))


def test_force_terminated_is_not_silently_passed_to_bfcl():
    entry, gt = SAMPLE[0]
    with pytest.raises(IndexError):  # why check_entry applies eval_runner's turn-count rule first
        multi_turn_checker(_one_step_per_turn(gt)[:-1], gt, entry, "multi_turn_base", "bfclref")
    reset_bfcl_instance_cache()
    ex = SafeExecutor(entry)
    turns = [[[ex.parse(s) for s in t]] if t else [] for t in gt]
    assert check_entry(turns[:-1], entry, gt)["error_type"] == "multi_turn:force_terminated"
    assert check_entry(turns + [[]], entry, gt)["error_type"] == "multi_turn:force_terminated"


# ------------------------------------------------------------------------------- 4. cache reset
def _state_mutating_entry():
    for entry, gt in SAMPLE:
        if not entry["id"].startswith("multi_turn_base"):
            continue
        last = max(i for i, t in enumerate(gt) if t)
        if _replay(entry, gt[:last])[1] != _replay(entry, gt)[1]:
            return entry, gt
    raise AssertionError("no base entry whose last turn mutates state")


def test_reset_keeps_repeated_checks_valid():
    entry, gt = _state_mutating_entry()
    ex = SafeExecutor(entry)
    decoded = [[[ex.parse(s) for s in t]] if t else [] for t in gt]
    truncated = _trajectories(entry, gt)["drop_last_turn_calls"]
    decoded_truncated = [[[ex.parse(s) for s in step] for step in turn] for turn in truncated]

    # The same ground-truth trajectory twice, and after a failing one: always valid with the reset.
    assert check_entry(decoded, entry, gt)["valid"] is True
    assert not _cached_instances()
    assert check_entry(decoded, entry, gt)["valid"] is True
    assert check_entry(decoded_truncated, entry, gt)["valid"] is False
    assert not _cached_instances()
    assert check_entry(decoded, entry, gt)["valid"] is True
    assert not _cached_instances()

    # Without the reset bfcl continues from the mutated (and here diverged) cached instances.
    strings = _one_step_per_turn(gt)
    assert multi_turn_checker(truncated, gt, entry, "multi_turn_base", "noreset")["valid"] is False
    assert _cached_instances()
    again = multi_turn_checker(strings, gt, entry, "multi_turn_base", "noreset")
    assert again["valid"] is False
    assert again["error_type"] == "multi_turn:instance_state_mismatch"
    reset_bfcl_instance_cache()
    assert not _cached_instances()
    assert multi_turn_checker(strings, gt, entry, "multi_turn_base", "noreset")["valid"] is True
