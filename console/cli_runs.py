"""`looptool runs ...`: read the runs in the results store."""
from __future__ import annotations

import json
from pathlib import Path

import typer

from core.errors import UserError

runs_app = typer.Typer(help="Read the runs in the store.", no_args_is_help=True)


@runs_app.command("list")
def runs_list(json_out: bool = typer.Option(False, "--json", help="Print JSON.")):
    """Runs in the store, newest first."""
    from core.store import ResultStore

    with ResultStore(read_only=True) as store:  # a snapshot: no lock, a running core never blocks it
        rows = sorted(store.get_docs("runs"), key=lambda r: r.get("updated_at", ""), reverse=True)
    if json_out:
        typer.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        typer.echo(f"{r['run_id']}  {r['state']:9s}  {r.get('model', '')}  {r.get('run_dir', '')}")


def run_doc(run_id: str) -> dict:
    """What the store holds on one run, as `runs show --json` prints it and `runs report` draws it:
    {run, iterations, evals (BFCL-v3, trimmed), acebench, instruments}."""
    from core.run_scores import subset_accuracy
    from core.store import ResultStore

    with ResultStore(read_only=True) as store:  # a snapshot: no lock, a running core never blocks it
        runs = store.get_docs("runs", run_id=run_id)
        if not runs:
            raise UserError(f"no run {run_id!r} (see `looptool runs list`)")
        iters = sorted(store.get_docs("iterations", run_id=run_id), key=lambda d: d["iteration"])
        evals = [e for e in store.list_evals() if e.get("run_id") == run_id]
    evals = sorted(evals, key=lambda e: e.get("iteration", 0))
    from console.report import run_instruments

    def per_category(e: dict) -> dict:
        return {cat: c.get("accuracy") for cat, c in (e.get("per_category") or {}).items()}

    def on_demand(e: dict) -> dict:  # the operator's own evals (console), beside the loop's
        return {"on_demand": True} if e.get("on_demand") else {}

    doc = {"run": runs[0], "iterations": iters,
           "evals": [{"iteration": e.get("iteration"), "eval_id": e["eval_id"], "scores": e["scores"],
                      "accuracy": subset_accuracy(e), "per_category": per_category(e),
                      "error_types": {cat: c["error_types"] for cat, c in (e.get("per_category") or {}).items()
                                      if c.get("error_types")},
                      **({"acebench_skipped": e["acebench_skipped"]} if e.get("acebench_skipped") else {}),
                      **on_demand(e)}
                     for e in evals if e.get("benchmark") != "acebench"],
           "acebench": [{"iteration": e.get("iteration"), "eval_id": e["eval_id"], "scores": e["scores"],
                         "per_category": per_category(e), **on_demand(e)}
                        for e in evals if e.get("benchmark") == "acebench"]}
    doc["instruments"] = run_instruments(doc)
    return doc


@runs_app.command("show")
def runs_show(run_id: str = typer.Argument(..., help="Run id."),
              json_out: bool = typer.Option(False, "--json", help="Print JSON.")):
    """One run: per-iteration BFCL-v3 scores, dataset composition, judge verdicts, probe mastery per kind,
    failure classes, eval error types per category and the train curve."""
    doc = run_doc(run_id)
    if json_out:
        typer.echo(json.dumps(doc, indent=2))
        return
    from console.report import print_run

    print_run(doc)


@runs_app.command("report")
def runs_report(run_id: str = typer.Argument(..., help="Run id (see `looptool runs list`)."),
                out: Path = typer.Option(..., "--out", help="The HTML file to write (replaced if it exists).")):
    """One self-contained HTML page on a run (no scripts, nothing fetched: the plots are PNG images inside
    it): held-out accuracy per iteration and category, the BFCL-v3 and ACEBench columns, dataset
    composition, judge verdicts, training loss and reward, probe mastery per kind. It reads what `runs
    show` reads, plus each iteration's train_curve.jsonl in the run directory; works on a running run."""
    from console.run_report import write_report

    write_report(run_doc(run_id), out)
    typer.echo(f"wrote {out}")
