"""core/eval_compare.py on hand-written records: the per-category paired counts and differences, the flips
with both outputs, entries in only one eval, ACEBench dialogues compared whole, naming evals as RUN:J, the
errors; `looptool eval compare` printing it; the `compare` bus verb's bounds."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core import busproto as bp
from core.errors import UserError
from core.eval_compare import compare, cut
from core.stats import mean_difference, paired_difference
from core.store import ResultStore

from eval_records import A_RECORDS, B_RECORDS, rec, write_eval

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("LOOPTOOL_HOME", str(tmp_path))
    with ResultStore(tmp_path / "looptool.db.json") as store:
        write_eval(tmp_path, store, "bfcl-aaaa1111", A_RECORDS, iteration=1, started_at="2026-01-01T01:00:00")
        write_eval(tmp_path, store, "bfcl-bbbb2222", B_RECORDS, iteration=2, started_at="2026-01-01T02:00:00")
    return tmp_path


def run_compare(home: Path, a: str, b: str, **kw) -> dict:
    with ResultStore(home / "looptool.db.json", read_only=True) as store:
        return compare(store, a, b, **kw)


def test_per_category_paired_counts_differences_and_the_mean(home):
    r = run_compare(home, "bfcl-aaaa1111", "bfcl-bbbb2222")
    rows = {c["category"]: c for c in r["categories"]}
    assert list(rows) == ["simple_python", "multiple"]  # the order of A's records
    sp, mu = rows["simple_python"], rows["multiple"]
    assert (sp["n"], sp["correct_a"], sp["correct_b"], sp["right_to_wrong"], sp["wrong_to_right"]) == (4, 2, 2, 1, 1)
    assert (mu["n"], mu["correct_a"], mu["correct_b"], mu["right_to_wrong"], mu["wrong_to_right"]) == (2, 1, 0, 1, 0)
    # B - A: the table (both, B only, A only, neither) of each category
    assert sp["difference"] == paired_difference(1, 1, 1, 1).as_dict()
    assert mu["difference"] == paired_difference(0, 0, 1, 1).as_dict() and mu["difference"]["value"] == -0.5
    o = r["overall"]
    assert (o["categories"], o["n"], o["correct_a"], o["correct_b"]) == (2, 6, 3, 2)
    assert (o["accuracy_a"], o["accuracy_b"]) == (0.5, 0.25)  # the mean of the categories' accuracies
    assert o["difference"] == mean_difference([paired_difference(1, 1, 1, 1), paired_difference(0, 0, 1, 1)]).as_dict()
    assert o["pooled_difference"] == paired_difference(1, 1, 2, 2).as_dict()


def test_flips_carry_both_outputs_and_error_types(home):
    r = run_compare(home, "bfcl-aaaa1111", "bfcl-bbbb2222")
    broke = r["right_to_wrong"]
    assert (broke["count"], broke["listed"]) == (2, 2)
    assert [f["id"] for f in broke["entries"]] == ["simple_python_1", "multiple_0"]
    f = broke["entries"][1]
    assert f["a"] == {"valid": True, "error_type": None, "raw": "[g(b=1)]"}
    assert f["b"] == {"valid": False, "error_type": "multiple_function_checker:wrong_count", "raw": "[g(b=1), g(b=1)]"}
    fixed = r["wrong_to_right"]
    assert fixed["count"] == 1 and fixed["entries"][0]["a"]["error_type"] == "ast_decoder:decoder_failed:syntax"
    assert fixed["entries"][0]["b"]["raw"] == "[f(a=3)]"


def test_entries_in_only_one_eval_are_reported_not_dropped(home):
    r = run_compare(home, "bfcl-aaaa1111", "bfcl-bbbb2222")
    assert r["only_in_a"] == {"count": 1, "ids": ["multiple_2"]}
    assert r["only_in_b"] == {"count": 1, "ids": ["multiple_3"]}
    assert any("1 unit(s) only in A and 1 only in B" in w for w in r["warnings"])


def test_limit_category_and_cut_outputs(home):
    r = run_compare(home, "bfcl-aaaa1111", "bfcl-bbbb2222", max_flips=1, raw_chars=4)
    assert (r["right_to_wrong"]["count"], r["right_to_wrong"]["listed"]) == (2, 1)
    assert r["right_to_wrong"]["entries"][0]["b"]["raw"] == "[f(a ... [5 more characters]"
    only = run_compare(home, "bfcl-aaaa1111", "bfcl-bbbb2222", category="multiple")
    assert [c["category"] for c in only["categories"]] == ["multiple"]
    assert [f["id"] for f in only["right_to_wrong"]["entries"]] == ["multiple_0"] and not only["wrong_to_right"]["count"]
    with pytest.raises(UserError, match="--category 'live_simple': neither eval has it; they have multiple, "
                                        "simple_python"):
        run_compare(home, "bfcl-aaaa1111", "bfcl-bbbb2222", category="live_simple")
    assert cut(["step one", "step two"], 100) == '["step one", "step two"]'  # multi-turn raws are lists


def test_the_latest_copy_of_a_record_counts_and_a_torn_line_is_left_out(home):
    path = home / "evals" / "bfcl-bbbb2222" / "records.jsonl"
    with open(path, "a") as fh:  # a resumed eval wrote simple_python_1 again; a crash tore the last line
        fh.write(json.dumps(rec("simple_python_1", True, "[f(a=2)]")) + "\n" + '{"id": "multiple_1", "val')
    r = run_compare(home, "bfcl-aaaa1111", "bfcl-bbbb2222")
    assert [f["id"] for f in r["right_to_wrong"]["entries"]] == ["multiple_0"]
    assert {c["category"]: c["correct_b"] for c in r["categories"]} == {"simple_python": 3, "multiple": 0}


def test_acebench_dialogues_are_compared_whole(tmp_path, monkeypatch):
    monkeypatch.setenv("LOOPTOOL_HOME", str(tmp_path))
    turn = "normal_multi_turn_user_adjust_3_"
    a = [rec(turn + "0", True, "[A(x=1)]", "normal_multi_turn_user_adjust"),
         rec(turn + "1", True, "[B(y=2)]", "normal_multi_turn_user_adjust"),
         rec("normal_atom_bool_1", False, "no", error_type="wrong_output_format")]
    b = [rec(turn + "0", True, "[A(x=1)]", "normal_multi_turn_user_adjust"),
         rec(turn + "1", False, "[B(y=3)]", "normal_multi_turn_user_adjust", error_type="wrong_value"),
         rec("normal_atom_bool_1", True, "[C(z=True)]")]
    with ResultStore(tmp_path / "looptool.db.json") as store:
        write_eval(tmp_path, store, "acebench-aaaa", a, benchmark="acebench", iteration=1)
        write_eval(tmp_path, store, "acebench-bbbb", b, benchmark="acebench", iteration=2)
        write_eval(tmp_path, store, "bfcl-cccc", A_RECORDS, iteration=2)
        r = compare(store, "run-x:1:acebench", "run-x:2:acebench")
        with pytest.raises(UserError, match="eval acebench-aaaa is acebench and eval bfcl-cccc is bfcl-v3: "
                                            "compare two evals of one benchmark"):
            compare(store, "acebench-aaaa", "bfcl-cccc")
    rows = {c["category"]: (c["n"], c["correct_a"], c["correct_b"]) for c in r["categories"]}
    assert rows == {"normal_multi_turn_user_adjust": (1, 1, 0), "normal_atom_bool": (1, 0, 1)}  # a dialogue is one
    (flip,) = r["right_to_wrong"]["entries"]
    assert flip["id"] == "normal_multi_turn_user_adjust_3" and flip["b"]["error_type"] == "wrong_value"
    assert flip["b"]["raw"] == f"{turn}0: [A(x=1)]\n{turn}1: [B(y=3)]"


def test_evals_named_by_run_and_iteration_and_the_errors(home):
    with ResultStore(home / "looptool.db.json") as store:  # an on-demand eval of iteration 1 is not the loop's
        write_eval(home, store, "bfcl-dddd4444", B_RECORDS, iteration=1, on_demand=True,
                   started_at="2026-01-01T03:00:00")
        r = compare(store, "run-x:1", "run-x:2")
        assert (r["a"]["eval_id"], r["b"]["eval_id"]) == ("bfcl-aaaa1111", "bfcl-bbbb2222")
        assert compare(store, "bfcl-aaaa", "bfcl-bbbb")["a"]["eval_id"] == "bfcl-aaaa1111"  # prefixes
        for ref, message in (("run-x:7", "run run-x has no bfcl eval of iteration 7; it has bfcl-v3 of iteration 1, "
                                         "bfcl-v3 of iteration 2"),
                             ("run-x:one", "expected RUN:J with J an iteration number"),
                             ("run-y:1", "no stored evals of run 'run-y'"),
                             ("nothing", "no evaluation with id 'nothing'")):
            with pytest.raises(UserError, match=message):
                compare(store, ref, "bfcl-bbbb2222")
        os.unlink(home / "evals" / "bfcl-bbbb2222" / "records.jsonl")
        with pytest.raises(UserError, match="eval bfcl-bbbb2222: its records file is missing"):
            compare(store, "bfcl-aaaa1111", "bfcl-bbbb2222")


def test_run_zero_of_the_older_of_two_runs_sharing_a_base_eval_is_that_eval(home):
    """Runs on one base model with one eval config share their iteration-0 eval id, and the store's
    document names the newer run; the older run's RUN:0 (compare, and `runs samples --stage eval`) is
    found through its own iter-0/eval.done."""
    from core.samples import evals_of
    from core.stages.base import mark_done

    with ResultStore(home / "looptool.db.json") as store:
        for run in ("run-old", "run-x"):  # run-x, the newer, is the store's run_id of bfcl-aaaa1111
            (home / "runs" / run / "iter-0").mkdir(parents=True)
            shared = {k: v for k, v in store.get_eval("bfcl-aaaa1111").items() if k != "run_id"}
            shared["iteration"] = 0  # as the eval stage writes it: run_dir and iteration, no run_id
            mark_done(home / "runs" / run / "iter-0", "eval", {"iteration": 0, "summaries": {"bfcl": shared}})
        store.update_eval("bfcl-aaaa1111", iteration=0)
        r = compare(store, "run-old:0", "run-x:2")
        assert (r["a"]["eval_id"], r["a"]["run_id"], r["a"]["iteration"]) == ("bfcl-aaaa1111", "run-old", 0)
        assert r["b"]["eval_id"] == "bfcl-bbbb2222" and r["overall"]["n"] > 0
        assert compare(store, "run-x:0", "run-x:2")["a"]["eval_id"] == "bfcl-aaaa1111"
        docs = store.get_docs("evals", run_id="run-old")
        assert docs == []  # the store alone knows nothing of run-old: the marker is what finds it
        assert [d["eval_id"] for d in evals_of(docs, "run-old", home / "runs" / "run-old", 0)] == ["bfcl-aaaa1111"]
        with pytest.raises(UserError, match="run run-old has no bfcl eval of iteration 1"):
            compare(store, "run-old:1", "run-x:2")


def test_records_are_found_under_a_moved_home(home):
    with ResultStore(home / "looptool.db.json") as store:
        store.update_eval("bfcl-aaaa1111", records="/elsewhere/evals/bfcl-aaaa1111/records.jsonl")
        assert compare(store, "bfcl-aaaa1111", "bfcl-bbbb2222")["a"]["records"] == str(
            home / "evals" / "bfcl-aaaa1111" / "records.jsonl")


def looptool(home: Path, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "console.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "LOOPTOOL_HOME": str(home), "COLUMNS": "160"}, timeout=120)


def test_the_command_prints_the_table_and_the_flips_with_their_outputs(home):
    p = looptool(home, "eval", "compare", "run-x:1", "bfcl-bbbb2222")
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert "A = bfcl-aaaa1111 (run-x iter 1)" in out and "B = bfcl-bbbb2222 (run-x iter 2)" in out
    line = next(x for x in out.splitlines() if x.strip().startswith("multiple "))
    assert line.split()[:5] == ["multiple", "2", "1/2", "50.0%", "0/2"] and "-50.0 [" in line
    assert "right -> wrong (regressions): 2" in out and "wrong -> right (fixes): 1" in out
    # outputs are printed as they are: a call list in brackets is not taken for console markup
    assert "B wrong (multiple_function_checker:wrong_count): [g(b=1), g(b=1)]" in out
    assert "only in A: 1: multiple_2" in out
    doc = json.loads(looptool(home, "eval", "compare", "bfcl-aaaa1111", "bfcl-bbbb2222", "--json",
                              "--limit", "1").stdout)
    assert doc["right_to_wrong"]["count"] == 2 and len(doc["right_to_wrong"]["entries"]) == 1
    p = looptool(home, "eval", "compare", "bfcl-aaaa1111", "nothing")
    assert p.returncode == 2 and p.stderr.startswith("error: no evaluation with id 'nothing'")


def test_the_compare_verb_is_bounded():
    def parse(args: dict):
        cmd = bp.Command(reply_to="looptool/v1/c1/ack/con", args=args)
        return bp.parse_command("compare", cmd.dump(), "looptool/v1/c1/cmd/compare")[1]

    assert parse({"a": "bfcl-1", "b": "run-x:2"}).limit == 20
    for args, where in (({"a": "bfcl-1"}, "args.b"), ({"a": "x", "b": "y", "limit": bp.MAX_COMPARE_FLIPS + 1},
                                                       "args.limit"),
                        ({"a": "x\n", "b": "y"}, "args.a"), ({"a": "x", "b": "y", "rows": 1}, "args.rows")):
        with pytest.raises(bp.BadPayload, match=where):
            parse(args)
