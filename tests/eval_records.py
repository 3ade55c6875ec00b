"""Hand-written eval records and summaries for the eval-compare tests (test_eval_compare.py, the history
screen's Pilot test): eval A and eval B of one BFCL run, with known flips and an entry in each alone.

    simple_python_0  right -> right      multiple_0  right -> wrong
    simple_python_1  right -> wrong      multiple_1  wrong -> wrong
    simple_python_2  wrong -> right      multiple_2  only in A (right)
    simple_python_3  wrong -> wrong      multiple_3  only in B (wrong)
"""
from __future__ import annotations

import json
from pathlib import Path

from core.store import ResultStore


def rec(rid: str, valid: bool, raw: str, category: str | None = None, error_type: str = "value_error:string"):
    return {"id": rid, "category": category or rid.rsplit("_", 1)[0], "raw": raw, "valid": valid,
            "error_type": None if valid else error_type, "decoded": None}


A_RECORDS = [rec("simple_python_0", True, "[f(a=1)]"), rec("simple_python_1", True, "[f(a=2)]"),
             rec("simple_python_2", False, "I cannot help", error_type="ast_decoder:decoder_failed:syntax"),
             rec("simple_python_3", False, "[f(a='x')]"), rec("multiple_0", True, "[g(b=1)]"),
             rec("multiple_1", False, "[h()]"), rec("multiple_2", True, "[g(b=3)]")]
B_RECORDS = [rec("simple_python_0", True, "[f(a=1)]"), rec("simple_python_1", False, "[f(a=22)]"),
             rec("simple_python_2", True, "[f(a=3)]"), rec("simple_python_3", False, "[f(a='y')]"),
             rec("multiple_0", False, "[g(b=1), g(b=1)]", error_type="multiple_function_checker:wrong_count"),
             rec("multiple_1", False, "[h()]"), rec("multiple_3", False, "[q()]")]


def write_eval(home: Path, store: ResultStore, eval_id: str, records: list[dict], **summary) -> None:
    d = home / "evals" / eval_id
    d.mkdir(parents=True)
    (d / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    store.add_eval({"eval_id": eval_id, "benchmark": "bfcl-v3", "run_id": "run-x", "decoding": "official",
                    "complete": True, "records": str(d / "records.jsonl"), **summary})
