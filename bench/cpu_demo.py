"""The cpu-demo evidence: the loop against static training on the embedded model, 2 CPU cores.

Runs `looptool core --config cpu-demo` and then `--config cpu-demo-static` (same model, same training
steps per iteration, seed data only) one after the other in one fresh $LOOPTOOL_HOME, and prints for each:
wall-clock time to the end of each iteration (from the run's start), the stage times, and the accuracy
on the held-out BFCL-v3 subset (seeded, non-live, never used for training) of the base model and after
every iteration, per category and overall (correct / entries). Targets: iteration 1 <= 20 min, two
iterations <= 45 min, +10 points over the base model after two iterations.

    .venv/bin/python bench/cpu_demo.py                       # both runs (about 1.5 h on 2 cores)
    .venv/bin/python bench/cpu_demo.py --presets cpu-demo    # one
    .venv/bin/python bench/cpu_demo.py --summarize RUN_DIR [RUN_DIR ...]   # report finished runs
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STAGES = ("seed", "train", "probe", "judge", "expand", "assemble", "eval")


def run_preset(preset: str, home: Path) -> Path:
    env = {**os.environ, "LOOPTOOL_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    env.setdefault("LOOPTOOL_MODELS", str(Path.home() / ".cache" / "looptool" / "models"))
    log = home / f"{preset}.log"
    print(f"running {preset} (log: {log}) ...", flush=True)
    with open(log, "w") as out:
        rc = subprocess.call([sys.executable, "-m", "console.cli", "core", "--no-bus", "--config", preset],
                             cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    if rc != 0:
        sys.exit(f"{preset} failed with exit code {rc}; see {log}")
    runs = sorted((home / "runs").glob(f"{preset}-*"), key=lambda p: p.stat().st_mtime)
    return runs[-1]


def accuracy(eval_done: Path) -> tuple[float, dict]:
    s = json.loads(eval_done.read_text())
    cats = s["per_category"]
    correct = sum(c["correct"] for c in cats.values())
    total = sum(c["total"] for c in cats.values())
    return 100.0 * correct / total, {k: f"{c['correct']}/{c['total']}" for k, c in cats.items()}


def summarize(run_dir: Path) -> dict:
    start = (run_dir / "config.toml").stat().st_mtime
    iters = sorted(int(p.name.split("-")[1]) for p in run_dir.glob("iter-*"))
    rows = {}
    for j in iters:
        d = run_dir / f"iter-{j}"
        if not (d / "eval.done").exists():
            continue
        acc, per_cat = accuracy(d / "eval.done")
        stage_s = {}
        for st in STAGES:
            f = d / f"{st}.done"
            if f.exists():
                stats = json.loads(f.read_text())
                if isinstance(stats, dict) and stats.get("wall_s") is not None:
                    stage_s[st] = round(float(stats["wall_s"]))
        rows[j] = {"elapsed_min": round(((d / "eval.done").stat().st_mtime - start) / 60, 1),
                   "accuracy": round(acc, 1), "per_category": per_cat, "stage_s": stage_s}
    return {"run": run_dir.name, "iterations": rows}


def report(summary: dict) -> None:
    rows = summary["iterations"]
    print(f"\n{summary['run']}")
    print(f"  {'iter':>4}  {'elapsed':>8}  {'acc %':>6}  per category / stage seconds")
    for j, r in rows.items():
        print(f"  {j:>4}  {r['elapsed_min']:>6.1f} m  {r['accuracy']:>6.1f}  {r['per_category']}  {r['stage_s']}")
    if 0 in rows and len(rows) > 1:
        last = max(rows)
        print(f"  after iteration {last}: {rows[last]['accuracy'] - rows[0]['accuracy']:+.1f} points vs base")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", nargs="+", default=["cpu-demo", "cpu-demo-static"])
    ap.add_argument("--summarize", nargs="+", type=Path, metavar="RUN_DIR", help="report finished runs only")
    ap.add_argument("--json", type=Path, help="also write the summaries here")
    args = ap.parse_args()
    if args.summarize:
        run_dirs = args.summarize
    else:
        home = Path(tempfile.mkdtemp(prefix="looptool-cpu-demo-"))
        run_dirs = [run_preset(p, home) for p in args.presets]
    summaries = [summarize(d) for d in run_dirs]
    for s in summaries:
        report(s)
    if len(summaries) == 2:
        a, b = (s["iterations"] for s in summaries)
        last = min(max(a), max(b))
        print(f"\n{summaries[0]['run']} vs {summaries[1]['run']} after iteration {last}: "
              f"{a[last]['accuracy']:.1f} vs {b[last]['accuracy']:.1f} ({a[last]['accuracy'] - b[last]['accuracy']:+.1f})")
    if args.json:
        args.json.write_text(json.dumps(summaries, indent=2))


if __name__ == "__main__":
    main()
