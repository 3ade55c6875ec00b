"""The cpu-demo evidence: the loop against static training on the embedded model, 2 CPU cores.

Runs `looptool core --config cpu-demo` and then `--config cpu-demo-static` (same model, same training
steps per iteration, seed data only) one after the other in one fresh $LOOPTOOL_HOME, and prints for each:
wall-clock time to the end of each iteration (from the run's start), the stage times, and, for the base
model and after every iteration, the accuracy on the held-out BFCL-v3 subset (seeded, non-live, never used
for training) and on the ACEBench subset (or why ACEBench was skipped). The bar (issue 9): base eval and
iteration 1 within 25 min, two iterations within 60 min, +10 points over the base model after two
iterations with irrelevance no lower than the base's - 15, the loop >= cpu-demo-static + 3 points.

Statistics (bench/intervals.py), all 95 %:
  * per category: correct / entries with its Wilson score interval;
  * the run's metric, the mean of the per-category accuracies, with a Wilson interval at the effective
    sample size (with equal category sizes: the pooled Wilson interval);
  * loop - static after the last iteration both finished: Newcombe's hybrid score interval (method 10)
    for a difference of two independent proportions, built from the two metrics' Wilson intervals. Both
    runs evaluate the same held-out entries (same categories, per_category and holdout_seed), so the two
    results are positively correlated and this independent-samples interval is conservative (wider than
    a paired one);
  * ACEBench: the subset's scored units (entries; dialogues in the multi-turn files) correct with the
    Wilson interval, the mean over its categories with its interval, and the Normal / Special columns.

    .venv/bin/python bench/cpu_demo.py                       # both runs (about 1.5 h on 2 cores)
    .venv/bin/python bench/cpu_demo.py --presets cpu-demo    # one
    .venv/bin/python bench/cpu_demo.py --acebench-data /work/shared/acebench/data_en   # with ACEBench offline
    .venv/bin/python bench/cpu_demo.py --seed 1 --holdout-seed 99     # another seed and held-out draw
    .venv/bin/python bench/cpu_demo.py --summarize RUN_DIR [RUN_DIR ...]   # report finished runs

--acebench-data DIR runs each preset from a temporary copy of its config with eval.acebench_data_dir = DIR
(ACEBench's English data_en folder, checked against the project's sha256 values before anything runs).
Without it the runs use the download in the fresh $LOOPTOOL_HOME, and offline they skip ACEBench and say so.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.intervals import Estimate, mean_of_proportions, newcombe_difference, wilson  # noqa: E402

from core.stages import STAGES  # noqa: E402


# -- running ------------------------------------------------------------------------------------------

def with_setting(config_text: str, section: str, key: str, value: str | int) -> str:
    """The config text with ``[section] key = value`` (replacing the value it had in that section)."""
    lines, current, at = [], None, None
    for ln in config_text.splitlines():
        stripped = ln.strip()
        if stripped.startswith("["):
            current = stripped.strip("[]").strip()
        elif current == section and stripped.split("=")[0].strip() == key:
            continue
        lines.append(ln)
        if current == section and at is None:
            at = len(lines)
    setting = f"{key} = {json.dumps(value)}"  # a JSON string or integer is a TOML one
    if at is None:
        lines += ["", f"[{section}]", setting]
    else:
        lines.insert(at, setting)
    return "\n".join(lines) + "\n"


def with_acebench_data(config_text: str, data_dir: Path) -> str:
    """The config text with ``eval.acebench_data_dir = data_dir`` (replacing any value it had)."""
    return with_setting(config_text, "eval", "acebench_data_dir", str(data_dir))


def preset_config(preset: str, acebench_data: Path | None, home: Path, seed: int | None = None,
                  holdout_seed: int | None = None) -> str:
    """What ``--config`` gets: the preset's name, or a temporary copy with the ACEBench data folder,
    run.seed and eval.holdout_seed set where given."""
    if acebench_data is None and seed is None and holdout_seed is None:
        return preset
    from core import config

    text = config.preset_text(preset)
    if acebench_data is not None:
        text = with_acebench_data(text, acebench_data)
    if seed is not None:
        text = with_setting(text, "run", "seed", seed)
    if holdout_seed is not None:
        text = with_setting(text, "eval", "holdout_seed", holdout_seed)
    cfg = config.parse(text, preset)
    assert acebench_data is None or cfg.eval.acebench_data_dir == str(acebench_data)
    assert seed is None or cfg.run.seed == seed
    assert holdout_seed is None or cfg.eval.holdout_seed == holdout_seed
    path = home / f"{preset}.toml"
    path.write_text(text)
    return str(path)


def run_preset(preset: str, home: Path, acebench_data: Path | None = None, seed: int | None = None,
               holdout_seed: int | None = None) -> Path:
    env = {**os.environ, "LOOPTOOL_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    env.setdefault("LOOPTOOL_MODELS", str(Path.home() / ".cache" / "looptool" / "models"))
    log = home / f"{preset}.log"
    config = preset_config(preset, acebench_data, home, seed, holdout_seed)
    print(f"running {preset} (config: {config}; log: {log}) ...", flush=True)
    with open(log, "w") as out:
        rc = subprocess.call([sys.executable, "-m", "console.cli", "core", "--no-bus", "--config", config],
                             cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    if rc != 0:
        sys.exit(f"{preset} failed with exit code {rc}; see {log}")
    runs = sorted((home / "runs").glob(f"{preset}-*"), key=lambda p: p.stat().st_mtime)
    return runs[-1]


# -- summarizing --------------------------------------------------------------------------------------

def _counts(per_category: dict) -> dict[str, tuple[int, int]]:
    return {k: (int(c["correct"]), int(c["total"])) for k, c in per_category.items() if c.get("total")}


def benchmark_parts(eval_done: dict) -> tuple[dict, dict]:
    """(summaries, skipped) by benchmark of one eval.done (core/stages/eval.py). Runs recorded before the
    eval stage kept each benchmark apart (bench/results/ has some) stored the BFCL summary at the top
    with ACEBench's under "acebench" or its reason under "acebench_skipped"."""
    if "summaries" in eval_done:
        return eval_done["summaries"], eval_done.get("skipped", {})
    summaries = {"bfcl": eval_done, **({"acebench": eval_done["acebench"]} if eval_done.get("acebench") else {})}
    return summaries, ({"acebench": eval_done["acebench_skipped"]} if eval_done.get("acebench_skipped") else {})


def bfcl_result(eval_done: dict) -> dict:
    """Per-category counts and the metric (mean of per-category accuracies) of one eval.done."""
    bfcl = benchmark_parts(eval_done)[0]["bfcl"]
    counts = _counts(bfcl["per_category"])
    return {"per_category": counts, "metric": asdict(mean_of_proportions(list(counts.values()))),
            "selection": {k: bfcl.get("config", {}).get(k) for k in ("categories", "per_category", "seed")}}


def acebench_result(eval_done: dict) -> dict | None:
    """The ACEBench part of one eval.done: counts, pooled and mean accuracy, Normal/Special; or the
    reason it was skipped; None when the run did not ask for ACEBench."""
    summaries, skipped = benchmark_parts(eval_done)
    if skipped.get("acebench"):
        return {"skipped": skipped["acebench"]}
    ace = summaries.get("acebench")
    if not ace:
        return None
    counts = _counts(ace["per_category"])
    if not counts:
        return {"skipped": "no ACEBench entries were scored"}
    correct, total = (sum(c for c, _ in counts.values()), sum(n for _, n in counts.values()))
    scores = ace.get("scores") or {}
    return {"per_category": counts, "pooled": asdict(wilson(correct, total)),
            "metric": asdict(mean_of_proportions(list(counts.values()))),
            "normal": scores.get("normal"), "special": scores.get("special"), "wall_s": ace.get("wall_s")}


def summarize(run_dir: Path) -> dict:
    start = (run_dir / "config.toml").stat().st_mtime
    static = bool(tomllib.loads((run_dir / "config.toml").read_text()).get("assemble", {}).get("static"))
    iters = sorted(int(p.name.split("-")[1]) for p in run_dir.glob("iter-*"))
    rows = {}
    for j in iters:
        d = run_dir / f"iter-{j}"
        if not (d / "eval.done").exists():
            continue
        done = json.loads((d / "eval.done").read_text())
        stage_s = {}
        for st in STAGES:
            f = d / f"{st}.done"
            if f.exists():
                stats = json.loads(f.read_text())
                if isinstance(stats, dict) and stats.get("wall_s") is not None:
                    stage_s[st] = round(float(stats["wall_s"]))
        rows[j] = {"elapsed_min": round(((d / "eval.done").stat().st_mtime - start) / 60, 1),
                   "stage_s": stage_s, "bfcl": bfcl_result(done), "acebench": acebench_result(done)}
    return {"run": run_dir.name, "static": static, "iterations": rows}


def _estimate(d: dict) -> Estimate:
    return Estimate(d["value"], d["low"], d["high"])


def report(summary: dict) -> None:
    rows = summary["iterations"]
    print(f"\n{summary['run']}{' (static)' if summary['static'] else ''}")
    said = None
    for j, r in rows.items():
        bfcl = r["bfcl"]
        cats = bfcl["per_category"]
        stages = " ".join(f"{k} {v} s" for k, v in r["stage_s"].items())
        print(f"  iteration {j}   {r['elapsed_min']:.1f} min from the start   {stages}")
        print(f"    BFCL held-out, mean over {len(cats)} categories: {_estimate(bfcl['metric']).as_percent()}")
        width = max(len(k) for k in cats)
        for cat, (correct, total) in cats.items():
            print(f"      {cat:<{width}}  {correct:>3}/{total:<3}  {wilson(correct, total).as_percent()}")
        ace = r["acebench"]
        if ace is None:
            continue
        if "skipped" in ace:
            print(f"    ACEBench: skipped{' (as above)' if ace['skipped'] == said else ': ' + ace['skipped']}")
            said = ace["skipped"]
            continue
        correct = sum(c for c, _ in ace["per_category"].values())
        total = sum(n for _, n in ace["per_category"].values())
        columns = "  ".join(f"{k} {ace[k]:.3f}" for k in ("normal", "special") if ace.get(k) is not None)
        took = f"; {round(ace['wall_s'])} s" if ace.get("wall_s") is not None else ""
        print(f"    ACEBench subset: {correct}/{total} scored units {_estimate(ace['pooled']).as_percent()}; "
              f"mean over {len(ace['per_category'])} categories {_estimate(ace['metric']).as_percent()}"
              f"{'; ' + columns if columns else ''}{took}")
    if 0 in rows and len(rows) > 1:
        last = max(rows)
        gain = _estimate(rows[last]["bfcl"]["metric"]).value - _estimate(rows[0]["bfcl"]["metric"]).value
        print(f"  after iteration {last}: {100 * gain:+.1f} points vs base (BFCL mean over categories)")


def compare(loop: dict, static: dict) -> dict | None:
    """loop - static after the last iteration both finished, on the BFCL metric (and ACEBench's, when
    both have it), with Newcombe's interval; None when they share no finished iteration."""
    common = set(loop["iterations"]) & set(static["iterations"])
    if not common:
        return None
    last = max(common)
    a, b = loop["iterations"][last], static["iterations"][last]
    sizes = lambda row: {k: n for k, (_, n) in row["bfcl"]["per_category"].items()}  # noqa: E731
    out = {"iteration": last, "loop": loop["run"], "static": static["run"],
           "same_entries": a["bfcl"]["selection"] == b["bfcl"]["selection"] and sizes(a) == sizes(b)}
    out["bfcl"] = {"loop": a["bfcl"]["metric"], "static": b["bfcl"]["metric"],
                   "difference": asdict(newcombe_difference(_estimate(a["bfcl"]["metric"]),
                                                            _estimate(b["bfcl"]["metric"])))}
    ace_a, ace_b = a["acebench"], b["acebench"]
    if ace_a and ace_b and "metric" in ace_a and "metric" in ace_b:
        out["acebench"] = {"loop": ace_a["metric"], "static": ace_b["metric"],
                           "difference": asdict(newcombe_difference(_estimate(ace_a["metric"]),
                                                                    _estimate(ace_b["metric"])))}
    return out


def report_comparison(c: dict) -> None:
    print(f"\n{c['loop']} - {c['static']} after iteration {c['iteration']} "
          f"(95 % interval: Newcombe, independent samples; conservative for shared entries):")
    for bench in ("bfcl", "acebench"):
        if bench in c:
            x = c[bench]
            print(f"  {'BFCL held-out' if bench == 'bfcl' else 'ACEBench subset'}: "
                  f"{_estimate(x['loop']).as_percent()} vs {_estimate(x['static']).as_percent()}: "
                  f"{_estimate(x['difference']).as_percent(signed=True)}")
    if not c["same_entries"]:
        print("  note: the two runs evaluated different held-out selections")


def _loop_and_static(summaries: list[dict]) -> tuple[dict, dict]:
    a, b = summaries
    return (b, a) if a["static"] and not b["static"] else (a, b)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", nargs="+", default=["cpu-demo", "cpu-demo-static"])
    ap.add_argument("--summarize", nargs="+", type=Path, metavar="RUN_DIR", help="report finished runs only")
    ap.add_argument("--acebench-data", type=Path, metavar="DIR",
                    help="ACEBench's English data_en folder: set as eval.acebench_data_dir in a temporary copy "
                         "of each preset's config")
    ap.add_argument("--seed", type=int, help="run.seed for every preset (default: the presets' own)")
    ap.add_argument("--holdout-seed", type=int, help="eval.holdout_seed for every preset: another held-out draw")
    ap.add_argument("--json", type=Path, help="also write the summaries (and the comparison) here")
    args = ap.parse_args()
    precision = None  # of the machine that ran the presets: unknown for runs only summarized here
    if args.summarize:
        run_dirs = args.summarize
    else:
        acebench_data = None
        if args.acebench_data is not None:
            from core.errors import UserError
            from evals.acebench import fetch

            acebench_data = args.acebench_data.resolve()
            try:
                fetch.verify(acebench_data)  # before an hour of training, not at the first eval
            except UserError as e:
                sys.exit(f"--acebench-data: {e}")
        from core.hardware import cpu_precision

        # the README's timings were measured with native bf16: say which this machine gets before it starts
        precision = cpu_precision()
        print(f"precision: {precision}", flush=True)
        home = Path(tempfile.mkdtemp(prefix="looptool-cpu-demo-"))
        run_dirs = [run_preset(p, home, acebench_data, args.seed, args.holdout_seed) for p in args.presets]
    summaries = [summarize(d) for d in run_dirs]
    for s in summaries:
        report(s)
    comparison = compare(*_loop_and_static(summaries)) if len(summaries) == 2 else None
    if comparison is not None:
        report_comparison(comparison)
    if args.json:
        args.json.write_text(json.dumps({"runs": summaries, "comparison": comparison, "precision": precision},
                                        indent=2))


if __name__ == "__main__":
    main()
