"""The loop end to end on the embedded model (tests/data/tiny-run.toml): every stage's output, the store,
`runs show` / `runs list`, and the operator's tools on the finished run. The core runs as `looptool
core` does by default: on the bus, with its embedded broker. The kill/resume test is in
test_engine_resume.py and compares with the same reference run (tests/loop_runs.py)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from loop_runs import counts, shared_reference

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory, worker_id, embedded_path):
    return shared_reference(tmp_path_factory, worker_id)


def test_tiny_loop_runs_every_stage_and_stores_results(reference_run):
    home, run_dir, log = reference_run
    assert "run_finished" in log
    for stage in ("train", "probe", "judge", "expand", "eval"):
        assert (run_dir / "iter-1" / f"{stage}.done").exists(), stage
    assert (run_dir / "iter-1" / "assemble.done").exists()
    assert (run_dir / "iter-2" / "eval.done").exists() and (run_dir / "iter-0" / "eval.done").exists()
    assert (run_dir / "iter-1" / "policy" / "adapter_config.json").exists()
    c = counts(run_dir)
    assert len(c["iter-1/dataset.jsonl"]) == len(c["iter-2/dataset.jsonl"]) == 8
    assert c["iter-1/probe.jsonl"] == c["iter-1/dataset.jsonl"]  # every sample of D_1 probed once
    comp = c["iter-1/composition.json"]
    assert comp["total"] == 8 and comp["budget"] == 8
    assert comp["error_seeds"] + comp["expansions"] + comp["high_ppl"] + comp["fresh_seeds"] + \
        comp.get("topped_up", 0) == 8
    train2 = json.loads((run_dir / "iter-2" / "train.done").read_text())
    assert train2["method"] == "grpo"  # tiny-run: SFT first, then GRPO
    env = {**os.environ, "LOOPTOOL_HOME": str(home)}
    show = subprocess.run([sys.executable, "-m", "console.cli", "runs", "show", run_dir.name, "--json"],
                          capture_output=True, text=True, env=env, check=True)
    doc = json.loads(show.stdout)
    assert doc["run"]["state"] == "finished"
    assert [e["iteration"] for e in doc["evals"]] == [0, 1, 2]
    assert [i["iteration"] for i in doc["iterations"]] == [1, 2]
    listed = subprocess.run([sys.executable, "-m", "console.cli", "runs", "list"], capture_output=True,
                            text=True, env=env, check=True).stdout
    assert run_dir.name in listed


def test_resume_unknown_run_and_double_start(tmp_path):
    env = {**os.environ, "LOOPTOOL_HOME": str(tmp_path)}
    p = subprocess.run([sys.executable, "-m", "console.cli", "core", "--resume", "nope"], capture_output=True,
                       text=True, env=env)
    assert p.returncode == 2 and "no such run" in p.stderr
    p = subprocess.run([sys.executable, "-m", "console.cli", "core"], capture_output=True, text=True, env=env)
    assert p.returncode == 2 and "exactly one of" in p.stderr


# -- report (issue 14) --

MAGENTA = (255, 0, 255)  # in no plot: matplotlib's tab10 and tab20 colours, black, greys and white


def test_run_report_renders_its_plots_in_chromium_and_tensorboard_reads_the_trackers(reference_run, tmp_path):
    """`looptool runs report` on the reference run, opened in a real headless Chromium: every embedded PNG
    decodes, and the browser paints each one pixel for pixel where the page lays it out (found through a
    second page whose images are magenta stand-ins of the same sizes, so the layout is the same). Then
    the run's TensorBoard files (tiny-run.toml: report_to = ["tensorboard"]), read back with tensorboard's
    own EventAccumulator: the train loss continues over both iterations' optimizer steps with the curve
    files' values, GRPO's reward is there for iteration 2, the eval scalars for iterations 0..2."""
    import base64
    import io
    import re

    import numpy as np
    from PIL import Image
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from core.train_curve import CURVE_FILE, read_curve
    from browser import rectangles_of, screenshot, solid_png_uri

    home, run_dir, _ = reference_run
    env = {**os.environ, "LOOPTOOL_HOME": str(home)}
    report = tmp_path / "report.html"
    p = subprocess.run([sys.executable, "-m", "console.cli", "runs", "report", run_dir.name, "--out", str(report)],
                       capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    page = report.read_text(encoding="utf-8")
    assert not list(tmp_path.glob("*.tmp"))
    assert "<script" not in page.lower() and not re.search(r"""(src|href)=["']?(https?:|//)""", page)
    uris = re.findall(r'<img src="(data:image/png;base64,[^"]+)"', page)
    # held-out accuracy, BFCL columns, composition of D2, judge verdicts, loss + reward, mastery per kind
    assert len(uris) == 6, len(uris)
    assert "ACEBench is not part of this run" in page  # eval.acebench is off: a sentence, not an empty plot
    images = []
    for uri in uris:
        with Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1], validate=True))) as img:
            img.load()
            assert img.format == "PNG" and img.width == 900 and img.height >= 250, img.size
            images.append(img.convert("RGB"))
            colors = img.getcolors(1 << 16)  # None: more colours than that
            assert colors is None or len(colors) > 20, "a blank image"

    shot = screenshot(report, tmp_path / "report.png")
    stand_in = tmp_path / "stand-in.html"
    swapped = page
    for uri, img in zip(uris, images):
        swapped = swapped.replace(uri, solid_png_uri(img.width, img.height, MAGENTA), 1)
    stand_in.write_text(swapped, encoding="utf-8")
    boxes = rectangles_of(screenshot(stand_in, tmp_path / "stand-in.png"), MAGENTA)
    assert [(r - l, b - t) for l, t, r, b in boxes] == [img.size for img in images], boxes
    assert boxes[-1][3] < shot.height, "the page is longer than the screenshot"
    for box, img in zip(boxes, images):
        painted = np.asarray(shot.crop(box), dtype=np.int16)
        drawn = np.asarray(img, dtype=np.int16)
        assert np.abs(painted - drawn).mean() < 2.0, f"the image at {box} is not painted as drawn"

    curve = [read_curve(run_dir / f"iter-{j}" / CURVE_FILE) for j in (1, 2)]
    steps = [json.loads((run_dir / f"iter-{j}" / "train.done").read_text())["steps"] for j in (1, 2)]
    train = EventAccumulator(str(run_dir / "tracker" / "train"))
    train.Reload()
    loss = train.Scalars("train/loss")
    assert [e.step for e in loss] == list(range(1, steps[0] + steps[1] + 1))  # continued, not restarted
    assert [e.value for e in loss] == pytest.approx([pt["loss"] for c in curve for pt in c], rel=1e-6, abs=1e-7)
    reward = train.Scalars("train/reward")  # iteration 2 is GRPO
    assert [e.step for e in reward] == [steps[0] + pt["step"] for pt in curve[1]]
    assert [e.value for e in reward] == pytest.approx([pt["reward"] for pt in curve[1]], rel=1e-6, abs=1e-6)

    show = json.loads(subprocess.run([sys.executable, "-m", "console.cli", "runs", "show", run_dir.name, "--json"],
                                     capture_output=True, text=True, env=env, check=True).stdout)
    evals = EventAccumulator(str(run_dir / "tracker" / "eval"))
    evals.Reload()
    for tag, key in (("heldout/bfcl/simple_python", lambda e: e["per_category"]["simple_python"]),
                     ("heldout/bfcl/mean", lambda e: e["accuracy"]), ("bfcl/overall", lambda e: e["scores"]["overall"])):
        logged = evals.Scalars(tag)
        assert [e.step for e in logged] == [0, 1, 2], tag
        assert [e.value for e in logged] == pytest.approx([key(e) for e in show["evals"]], abs=1e-6), tag


# -- export (issue 14) --

def test_export_of_the_reference_run_loads_scores_as_the_run_did_and_its_card_has_every_iteration_s_score(
        reference_run, tmp_path):
    from transformers import AutoModelForCausalLM

    home, run_dir, _ = reference_run
    out = tmp_path / "export"
    p = subprocess.run([sys.executable, "-m", "console.cli", "export", run_dir.name, "--out", str(out)],
                       capture_output=True, text=True, env={**os.environ, "LOOPTOOL_HOME": str(home)}, timeout=600)
    assert p.returncode == 0 and p.stdout.strip() == str(out), p.stderr
    assert "merging the LoRA adapter" in p.stderr and not (out / "adapter_config.json").exists()
    assert type(AutoModelForCausalLM.from_pretrained(out)).__name__ == "LlamaForCausalLM"
    card = (out / "README.md").read_text()
    for j in range(3):  # the held-out score of each iteration, as the run's eval.done has it
        per = json.loads((run_dir / f"iter-{j}" / "eval.done").read_text())["summaries"]["bfcl"]["per_category"]
        correct, total = sum(c["correct"] for c in per.values()), sum(c["total"] for c in per.values())
        rows = [ln for ln in card.splitlines() if ln.startswith((f"| {j} |", f"| **{j} (exported)** |"))
                and (" | trained | " in ln or " | base model | " in ln)]
        assert len(rows) == 1 and f"| {correct}/{total} ({100 * correct / total:.1f} %) |" in rows[0], card

    # the exported checkpoint, evaluated on its own as a user would (`looptool eval bfcl --model DIR`, in a
    # home of its own), gives the run's held-out replies and score for that iteration, entry by entry
    (exported,) = [j for j in range(3) if f"| **{j} (exported)** |" in card]
    run_eval = json.loads((run_dir / f"iter-{exported}" / "eval.done").read_text())["summaries"]["bfcl"]
    cfg = run_eval["config"]
    p = subprocess.run([sys.executable, "-m", "console.cli", "eval", "bfcl", "--model", str(out), "--mode", cfg["mode"],
                        "--categories", ",".join(cfg["categories"]), "--per-category", str(cfg["per_category"]),
                        "--seed", str(cfg["seed"]), "--max-new-tokens", str(cfg["max_new_tokens"]),
                        "--batch-size", "4", "--device", "cpu", "--no-progress", "--json"],
                       capture_output=True, text=True, timeout=600,
                       env={**os.environ, "LOOPTOOL_HOME": str(tmp_path / "user-home")})
    assert p.returncode == 0, p.stderr
    mine = json.loads(p.stdout)
    assert {k: (c["correct"], c["total"]) for k, c in mine["per_category"].items()} == \
        {k: (c["correct"], c["total"]) for k, c in run_eval["per_category"].items()}
    def replies(summary):
        return {r["id"]: (r["raw"], r.get("valid")) for r in map(json.loads, Path(summary["records"]).read_text().splitlines())}
    assert replies(mine) == replies(run_eval) and len(replies(mine)) == sum(c["total"] for c in mine["per_category"].values())


# -- samples (issue 14) --

def test_runs_samples_pages_match_the_run_files(reference_run, embedded_path):
    """`looptool runs samples` on the tiny run: each stage's rows are its file's records in order, beside
    the dataset's labels; a filter narrows them; a bad key is one error line; --prompt prints the prompt
    the probe put to the policy."""
    from transformers import AutoTokenizer

    from core.prompt_format import label_text
    from core.schema import load_samples
    from core.stages.probe import build_prompt

    home, run_dir, _ = reference_run
    env = {**os.environ, "LOOPTOOL_HOME": str(home)}
    it = run_dir / "iter-1"

    def samples(*args, check=True):
        p = subprocess.run([sys.executable, "-m", "console.cli", "runs", "samples", run_dir.name, "--iteration", "1",
                            *args], capture_output=True, text=True, env=env)
        assert not check or p.returncode == 0, p.stderr
        return p

    def page(*args):
        return json.loads(samples(*args, "--json", "--limit", "50").stdout)

    def records(name):
        return [json.loads(x) for x in (it / name).read_text().splitlines()]

    dataset = {s.id: s for s in load_samples(it / "dataset.jsonl")}
    probe = records("probe.jsonl")
    doc = page("--stage", "probe")
    assert doc["total"] == len(probe) == len(dataset) and [r["id"] for r in doc["rows"]] == [r["id"] for r in probe]
    for row, rec in zip(doc["rows"], probe):
        assert (row["right"], row["failure"], row["mastered"]) == (rec["response"], rec["failure"], rec["mastered"])
        assert row["left"] == label_text(dataset[rec["id"]], "prompt")
    failed = next(r for r in probe if r["failure"])
    narrowed = page("--stage", "probe", "--filter", f"failure={failed['failure']}")
    assert [r["id"] for r in narrowed["rows"]] == [r["id"] for r in probe if r["failure"] == failed["failure"]]

    judge = records("judge.jsonl")
    doc = page("--stage", "judge")
    assert [(r["id"], r["verdict"]) for r in doc["rows"]] == [(r["id"], r["verdict"]) for r in judge]
    expand = records("expand.jsonl")
    doc = page("--stage", "expand")
    assert [(r["id"], r["seed"]) for r in doc["rows"]] == [(r["id"], r["parent"]) for r in expand]
    doc = page("--stage", "eval")
    mine = sorted((d for d in (home / "evals").iterdir() if (d / "config.json").exists()
                   and json.loads((d / "config.json").read_text()).get("adapter") == str(it / "policy")),
                  key=lambda d: not d.name.startswith("bfcl-"))  # iteration 1's evals, BFCL-v3 first
    expected = [(json.loads(x)["id"], "bfcl-v3" if d.name.startswith("bfcl-") else "acebench", json.loads(x)["raw"])
                for d in mine for x in (d / "records.jsonl").read_text().splitlines()]
    assert mine and [(r["id"], r["benchmark"], r["left"]) for r in doc["rows"]] == expected[:50]

    bad = samples("--stage", "probe", "--filter", "verdict=PRED_WRONG", check=False)
    assert bad.returncode == 2 and "error: filter 'verdict': not a key of stage probe" in bad.stderr
    table = samples("--stage", "probe", "--limit", "2").stdout
    assert "label" in table and "prediction" in table and probe[0]["id"] in table and "next page: --offset 2" in table

    shown = samples("--stage", "probe", "--prompt", failed["id"]).stdout
    assert shown == build_prompt(dataset[failed["id"]], AutoTokenizer.from_pretrained(embedded_path), "prompt") + "\n"


# -- eval compare (issue 14) --

def test_eval_compare_of_two_iterations_matches_their_records(reference_run):
    """`looptool eval compare` on the tiny run's held-out evals of iterations 1 and 2: every count it
    prints is the one the two records files give, and RUN:J names the same evals."""
    from core.store import ResultStore

    home, run_dir, _ = reference_run
    with ResultStore(home / "looptool.db.json", read_only=True) as store:
        by_iteration = {d["iteration"]: d for d in store.get_docs("evals", run_id=run_dir.name)
                        if d["benchmark"].startswith("bfcl")}
    first, second = by_iteration[1], by_iteration[2]
    env = {**os.environ, "LOOPTOOL_HOME": str(home)}
    p = subprocess.run([sys.executable, "-m", "console.cli", "eval", "compare", first["eval_id"], second["eval_id"],
                        "--json"], capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)

    def verdicts(summary: dict) -> dict[str, tuple[str, bool, object]]:
        lines = Path(summary["records"]).read_text().splitlines()
        return {r["id"]: (r["category"], r["valid"] is True, r["raw"]) for r in map(json.loads, lines)}

    a, b = verdicts(first), verdicts(second)
    assert set(a) == set(b) and len(a) == 2  # simple_python, 2 held-out entries in both
    shared = sorted(a)
    row = doc["categories"][0]
    assert [c["category"] for c in doc["categories"]] == ["simple_python"]
    assert (row["n"], row["correct_a"], row["correct_b"]) == (
        2, sum(a[i][1] for i in shared), sum(b[i][1] for i in shared))
    assert row["accuracy_b"] - row["accuracy_a"] == pytest.approx(row["difference"]["value"])
    assert row["difference"]["low"] <= row["difference"]["value"] <= row["difference"]["high"]
    broke = sorted(i for i in shared if a[i][1] and not b[i][1])
    fixed = sorted(i for i in shared if b[i][1] and not a[i][1])
    assert sorted(f["id"] for f in doc["right_to_wrong"]["entries"]) == broke
    assert sorted(f["id"] for f in doc["wrong_to_right"]["entries"]) == fixed
    for f in doc["right_to_wrong"]["entries"] + doc["wrong_to_right"]["entries"]:
        assert (f["a"]["raw"], f["b"]["raw"]) == (a[f["id"]][2], b[f["id"]][2])
    assert doc["only_in_a"]["count"] == doc["only_in_b"]["count"] == 0
    assert (doc["a"]["iteration"], doc["b"]["iteration"]) == (1, 2)
    again = subprocess.run([sys.executable, "-m", "console.cli", "eval", "compare", f"{run_dir.name}:1",
                            f"{run_dir.name}:2", "--json"], capture_output=True, text=True, env=env, check=True)
    assert json.loads(again.stdout) == doc
