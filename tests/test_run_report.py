"""`looptool runs report`'s page on hand-written run docs (the shape `runs show --json` prints), without a
browser: every plot a decodable PNG inside the page, nothing fetched or scripted, every string from the
run escaped, a sentence where data is missing, the file written whole or not at all. The page in a real
Chromium, on a real run: tests/test_engine_e2e.py."""
from __future__ import annotations

import base64
import io
import json
import os
import re
import subprocess
import sys

import pytest

from console.run_report import build_report, train_curves, write_report
from core.errors import UserError

HOSTILE = '<script>alert("x")</script>&amp;'


def bfcl_eval(iteration: int, correct: dict[str, int], total: int = 4) -> dict:
    per = {c: n / total for c, n in correct.items()}
    return {"iteration": iteration, "eval_id": f"bfcl-{iteration}", "accuracy": sum(correct.values()) / (total * len(correct)),
            "per_category": per, "error_types": {},
            "scores": {"overall": 0.1 * iteration, "non_live_ast": 0.2, "non_live": 0.3, "live_ast": 0.0, "live": 0.0,
                       "multi_turn": 0.0, "relevance": 0.0, "irrelevance": 0.5}}


def iteration(j: int, method: str, curve: list[dict], verdicts: dict | None = None) -> dict:
    doc = {"iteration": j, "run_id": "r", "key": f"r/{j}",
           "train": {"method": method, "steps": len(curve), "curve": curve},
           "probe": {"samples": 8, "mastered": 3, "by_kind": {"simple": {"mastered": 2, "total": 4},
                                                             HOSTILE: {"mastered": 1, "total": 4}}},
           "assemble": {"error_seeds": 3, "expansions": 2, "high_ppl": 1, "fresh_seeds": 2, "total": 8}}
    if verdicts is not None:
        doc["judge"] = {"judged": sum(verdicts.values()), "verdicts": verdicts}
    return doc


def run_doc(run_dir, **changes) -> dict:
    from console.report import run_instruments

    sft = [{"step": s, "loss": 2.0 / s} for s in (1, 2, 3)]
    doc = {"run": {"run_id": f"tiny-{HOSTILE}", "state": "finished", "model": "embedded", "iterations": 2,
                   "run_dir": str(run_dir), "updated_at": "2026-12-01T00:00:00+00:00"},
           "iterations": [iteration(1, "sft", sft, {"PRED_WRONG": 3, "LABEL_WRONG": 1})],
           "evals": [bfcl_eval(0, {"simple_python": 1, HOSTILE: 0}), bfcl_eval(1, {"simple_python": 3, HOSTILE: 2})],
           "acebench": []}
    doc.update(changes)
    doc["instruments"] = run_instruments(doc)
    return doc


def embedded_pngs(page: str) -> list:
    from PIL import Image

    images = []
    for uri in re.findall(r'<img src="data:image/png;base64,([^"]+)"', page):
        with Image.open(io.BytesIO(base64.b64decode(uri, validate=True))) as img:
            img.load()
            assert img.format == "PNG"
            images.append(img.size)
    return images


def test_report_embeds_one_png_per_plot_escapes_the_run_and_fetches_nothing(tmp_path):
    doc = run_doc(tmp_path)
    page = build_report(doc, train_curves(doc))
    sizes = embedded_pngs(page)
    # held-out per category, BFCL columns, composition, verdicts, loss (no reward: SFT only), mastery
    assert len(sizes) == 6 and all(w == 900 and h >= 250 for w, h in sizes), sizes
    assert page.count("<img ") == 6
    assert "<script" not in page and HOSTILE not in page
    assert html_escaped(HOSTILE) in page  # the category, the kind and the run id, shown escaped
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", page) and "<link" not in page
    assert "No GRPO iteration has logged a reward" in page
    assert "ACEBench is not part of this run" in page
    assert "<td>75.0</td>" in page  # simple_python at iteration 1: 3 of 4


def html_escaped(text: str) -> str:
    import html

    return html.escape(text, quote=True)


def test_missing_sections_are_sentences_and_a_live_curve_file_is_read(tmp_path):
    """A run still in its first iteration: no iteration record in the store yet, no judge, no probe, no
    ACEBench (skipped with a reason); iter-1/train_curve.jsonl, being written by a GRPO training, is."""
    curve = tmp_path / "iter-1" / "train_curve.jsonl"
    curve.parent.mkdir()
    curve.write_text("".join(json.dumps({"step": s, "loss": 0.1 * s, "reward": 0.25 * s}) + "\n" for s in (1, 2))
                     + '{"step": 3, "lo', encoding="utf-8")  # a torn last line
    doc = run_doc(tmp_path, iterations=[], evals=[{**bfcl_eval(0, {"simple_python": 1}),
                                                   "acebench_skipped": "offline: no ACEBench data"}])
    assert train_curves(doc) == {1: [{"step": 1, "loss": 0.1, "reward": 0.25}, {"step": 2, "loss": 0.2, "reward": 0.5}]}
    page = build_report(doc, train_curves(doc))
    assert len(embedded_pngs(page)) == 3  # held-out, BFCL columns, loss + reward
    for sentence in ("No iteration has assembled a next dataset", "No judge verdicts in this run",
                     "No iteration has probed its dataset yet", "ACEBench was not evaluated: offline: no ACEBench data"):
        assert sentence in page, sentence
    assert "No GRPO iteration" not in page


def test_no_evaluation_and_no_training_yet(tmp_path):
    doc = run_doc(tmp_path / "gone", iterations=[], evals=[])
    page = build_report(doc, train_curves(doc))
    assert embedded_pngs(page) == []
    assert "No evaluation has been stored for this run yet." in page
    assert "No training step has been logged in this run yet." in page


def test_acebench_columns_are_drawn_when_evaluated(tmp_path):
    ace = [{"iteration": j, "eval_id": f"ace-{j}", "per_category": {},
            "scores": {"normal": 0.1 * j, "special": 0.2, "agent": 0.0, "overall": 0.05 * j}} for j in (0, 1)]
    page = build_report(run_doc(tmp_path, acebench=ace), {})
    assert "ACEBench Normal, Special, Agent and Overall per iteration" in page
    assert len(embedded_pngs(page)) == 6  # no training curve given; ACEBench's plot instead


def test_write_report_is_atomic_and_names_a_bad_out_path(tmp_path):
    out = tmp_path / "report.html"
    out.write_text("old report")
    write_report(run_doc(tmp_path), out)
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]
    with pytest.raises(UserError, match="does not exist"):
        write_report(run_doc(tmp_path), tmp_path / "no-such-folder" / "r.html")
    with pytest.raises(UserError, match="is a folder"):
        write_report(run_doc(tmp_path), tmp_path)


def test_runs_report_command_on_an_unknown_run(tmp_path):
    env = {**os.environ, "LOOPTOOL_HOME": str(tmp_path)}
    p = subprocess.run([sys.executable, "-m", "console.cli", "runs", "report", "nope", "--out", str(tmp_path / "r.html")],
                       capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 2 and "no run 'nope'" in p.stderr
    assert not (tmp_path / "r.html").exists()


def test_on_demand_evals_are_named_not_drawn(tmp_path):
    odd = {**bfcl_eval(1, {"simple_python": 0, HOSTILE: 0}), "on_demand": True}
    plain = build_report(run_doc(tmp_path), {})
    page = build_report(run_doc(tmp_path, evals=run_doc(tmp_path)["evals"] + [odd]), {})
    assert "1 on-demand evaluation(s) of this run are not drawn here" in page
    assert page.count("<td>iter 1</td>") == plain.count("<td>iter 1</td>")
    assert "<th>iter 1</th>" in page and page.count("<th>iter 1</th>") == plain.count("<th>iter 1</th>")
