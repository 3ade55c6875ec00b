"""`looptool runs ...`: read the runs in the results store."""
from __future__ import annotations

import json

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


@runs_app.command("show")
def runs_show(run_id: str = typer.Argument(..., help="Run id."),
              json_out: bool = typer.Option(False, "--json", help="Print JSON.")):
    """One run: per-iteration BFCL-v3 scores, dataset composition, judge verdicts, probe mastery per kind,
    failure classes, eval error types per category and the train curve."""
    from core.store import ResultStore

    with ResultStore(read_only=True) as store:  # a snapshot: no lock, a running core never blocks it
        runs = store.get_docs("runs", run_id=run_id)
        if not runs:
            raise UserError(f"no run {run_id!r} (see `looptool runs list`)")
        iters = sorted(store.get_docs("iterations", run_id=run_id), key=lambda d: d["iteration"])
        evals = [e for e in store.list_evals() if e.get("run_id") == run_id]
    evals = sorted(evals, key=lambda e: e.get("iteration", 0))
    from console.report import print_run, run_instruments
    from core.run_scores import subset_accuracy

    doc = {"run": runs[0], "iterations": iters,
           "evals": [{"iteration": e.get("iteration"), "eval_id": e["eval_id"], "scores": e["scores"],
                      "accuracy": subset_accuracy(e),
                      "error_types": {cat: c["error_types"] for cat, c in (e.get("per_category") or {}).items()
                                      if c.get("error_types")},
                      **({"acebench_skipped": e["acebench_skipped"]} if e.get("acebench_skipped") else {})}
                     for e in evals if e.get("benchmark") != "acebench"],
           "acebench": [{"iteration": e.get("iteration"), "eval_id": e["eval_id"], "scores": e["scores"]}
                        for e in evals if e.get("benchmark") == "acebench"]}
    doc["instruments"] = run_instruments(doc)
    if json_out:
        typer.echo(json.dumps(doc, indent=2))
        return
    print_run(doc)

