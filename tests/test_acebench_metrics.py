"""The ACEBench summary formula against the published rows (reference/acebench.md §7-8), and per-file
accuracy (rounding, dialogue-level multi-turn scoring, process accuracy)."""
from __future__ import annotations

import pytest

from evals.acebench import data, metrics

# model: (Atom, Single, Multi, SimAPI, Pref, Normal, Special, Agent, Overall), percent, English table.
ROWS = {
    "GPT-4o (2024-11-20)": (90.0, 78.0, 68.0, 80.0, 78.0, 82.5, 92.7, 56.0, 81.1),
    "Kimi-K2-0711": (87.0, 78.5, 62.0, 70.0, 74.0, 78.9, 81.3, 65.0, 77.4),
    "LoopTool-8B": (86.0, 76.0, 58.0, 74.0, 78.0, 78.0, 80.7, 43.3, 73.4),
    "ToolACE-2.5-Llama-3.1-8B": (87.7, 75.5, 62.0, 74.0, 66.0, 78.3, 76.0, 35.9, 71.1),
    "Qwen3-8B": (80.3, 68.5, 52.0, 70.0, 58.0, 70.9, 78.0, 34.2, 67.1),
    "Qwen2.5-7B-Instruct": (70.3, 57.0, 49.0, 62.0, 58.0, 62.8, 49.3, 15.0, 51.8),
    "Watt-Tool-8B": (84.7, 71.5, 57.0, 70.0, 62.0, 74.8, 2.0, 1.5, 44.0),
    "Llama-3.1-8B-Instruct": (51.0, 49.5, 28.0, 60.0, 56.0, 48.1, 15.3, 6.5, 32.9),
}


def test_gpt4o_and_qwen3_8b_rows():
    assert metrics.overall(0.825, 0.927, 0.560) == 0.811
    assert metrics.overall(0.709, 0.780, 0.342) == 0.671


# The published ToolACE-2.5 row's Normal (78.3) does not follow from its own columns (78.43); its Overall does
# follow from Normal/Special/Agent.
NORMAL_INCONSISTENT = {"ToolACE-2.5-Llama-3.1-8B"}


@pytest.mark.parametrize("model", sorted(ROWS))
def test_leaderboard_rows(model):
    atom, single, multi, sim, pref, normal, special, agent, overall = (x / 100 for x in ROWS[model])
    from_columns = metrics.normal_from_columns(atom, single, multi, sim, pref)
    # the columns are published with one decimal, so the recomputed Normal may differ in the last digit
    assert (from_columns == pytest.approx(normal, abs=0.0006)) is (model not in NORMAL_INCONSISTENT), from_columns
    assert metrics.overall(normal, special, agent) == pytest.approx(overall, abs=1e-9)


def test_summary_scores_from_file_accuracies():
    acc = {c: 0.9 for c in data.ATOM}
    acc.update({"normal_single_turn_single_function": 0.8, "normal_single_turn_parallel_function": 0.76,
                "normal_multi_turn_user_adjust": 0.7, "normal_multi_turn_user_switch": 0.66,
                "normal_similar_api": 0.8, "normal_preference": 0.78, "special_incomplete": 0.94,
                "special_error_param": 0.92, "special_irrelevant": 0.92, "agent_multi_turn": 0.6,
                "agent_multi_step": 0.52})
    s = metrics.summary_scores(acc)
    assert (s["atom"], s["single_turn"], s["multi_turn"]) == (0.9, 0.78, 0.68)
    assert s["normal"] == 0.825 and s["special"] == 0.927 and s["agent"] == 0.56
    assert s["overall"] == 0.811
    assert metrics.summary_scores({})["overall"] == 0.0  # categories not evaluated count 0
    only_special = metrics.summary_scores({c: 1.0 for c in data.SPECIAL})
    assert only_special["special"] == 1.0 and only_special["overall"] == 0.268


def _entry(eid, cat):
    return data.Entry(eid, cat, "", [], {})


def test_per_category_rounding_dialogues_and_process():
    entries = [_entry(f"normal_atom_bool_{i}", "normal_atom_bool") for i in range(3)]
    entries += [_entry(f"special_irrelevant_{i}", "special_irrelevant") for i in range(3)]
    turns = [("0_0", True), ("0_1", True), ("1_0", True), ("1_1", False), ("1_2", True), ("2_0", False)]
    entries += [_entry(f"normal_multi_turn_user_adjust_{t}", "normal_multi_turn_user_adjust") for t, _ in turns]
    entries += [_entry(f"agent_multi_step_{i}", "agent_multi_step") for i in range(2)]
    records = {"normal_atom_bool_0": {"valid": True}, "normal_atom_bool_1": {"valid": False},
               "special_irrelevant_0": {"valid": True, "strict": {"valid": False}},
               "agent_multi_step_0": {"valid": True, "process_score": 1.0, "strict": {"valid": True, "process_score": 1}},
               "agent_multi_step_1": {"valid": False, "process_score": 0.5, "strict": {"valid": False,
                                                                                      "process_score": 0.5}}}
    records.update({f"normal_multi_turn_user_adjust_{t}": {"valid": ok} for t, ok in turns})
    per = metrics.per_category(entries, records)
    assert list(per) == ["normal_atom_bool", "normal_multi_turn_user_adjust", "special_irrelevant",
                         "agent_multi_step"]  # benchmark order
    assert per["normal_atom_bool"] == {"correct": 1, "total": 3, "accuracy": 0.333}  # missing record = wrong
    assert per["special_irrelevant"]["accuracy"] == 1 / 3  # special files are not rounded
    mt = per["normal_multi_turn_user_adjust"]
    assert (mt["correct"], mt["total"], mt["turns_correct"], mt["turns_total"]) == (1, 3, 4, 6)
    assert mt["accuracy"] == 0.333 and mt["process_accuracy"] == round((1 + 2 / 3 + 0) / 3, 3)
    assert per["agent_multi_step"]["accuracy"] == 0.5 and per["agent_multi_step"]["process_accuracy"] == 0.75
    strict = metrics.per_category(entries, records, "strict")
    assert strict["special_irrelevant"]["correct"] == 0 and strict["normal_atom_bool"]["correct"] == 0
