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
    evals = sorted(evals + _marker_evals(runs[0], evals), key=lambda e: e.get("iteration", 0))
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


def _marker_evals(run: dict, stored: list[dict]) -> list[dict]:
    """The run's own evals (iter-j/eval.done, core.run_scores) that the store lists under another run: an
    eval's id is its configuration, so two runs on one base model share their iteration-0 eval, and the
    store's document names the newer run only."""
    from core.run_scores import iteration_scores

    if not run.get("run_dir") or not isinstance(run.get("iterations"), int):
        return []
    have = {(e.get("iteration"), e.get("benchmark")) for e in stored if not e.get("on_demand")}
    found = []
    for score in iteration_scores(run["run_id"], Path(run["run_dir"]), run["iterations"], []):
        for summary in (score.bfcl, score.acebench):
            if summary and (score.iteration, summary.get("benchmark")) not in have and summary.get("eval_id"):
                found.append({**summary, "run_id": run["run_id"], "iteration": score.iteration})
    return found


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


@runs_app.command("samples")
def runs_samples(run_id: str = typer.Argument(..., help="Run id (see `looptool runs list`)."),
                 iteration: int = typer.Option(..., "--iteration", "-i", min=0, help="Which iteration."),
                 stage: str = typer.Option(..., "--stage", "-s",
                                           help="probe (the policy's replies and failure classes), judge (verdicts, "
                                                "reasons, relabels), expand (new samples beside their seed) or eval "
                                                "(the iteration's benchmark records)."),
                 filters: list[str] = typer.Option(None, "--filter", "-f",
                                                   help="key=value, repeatable. probe: id, kind, failure, mastered; "
                                                        "judge: id, verdict, outcome, by; expand: id, seed, kind, "
                                                        "variation; eval: id, benchmark, category, error_type, valid "
                                                        "(category = kind, error_type = failure where a stage has "
                                                        "those). Case is ignored; error classes match by prefix."),
                 offset: int = typer.Option(0, "--offset", min=0, help="Rows to skip (paging)."),
                 limit: int = typer.Option(20, "--limit", min=1, help="Rows to show, at most 50."),
                 prompt_id: str = typer.Option(None, "--prompt",
                                               help="Print this sample's prompt as the policy saw it instead of a "
                                                    "page (loads the run's tokenizer)."),
                 json_out: bool = typer.Option(False, "--json", help="Print JSON.")):
    """An iteration's examples, a page at a time: label and prediction side by side, the judge's reasons,
    expansions beside their seed, eval replies beside what was decoded. Long texts are cut with a marker."""
    from core import samples
    from core.store import ResultStore

    with ResultStore(read_only=True) as store:  # a snapshot: no lock, a running core never blocks it
        run_dir = samples.run_dir_of(store.get_docs("runs", run_id=run_id), run_id)
        evals = samples.evals_of(store.get_docs("evals", run_id=run_id), run_id, run_dir, iteration) \
            if stage == "eval" else None
    if prompt_id is not None:
        doc = samples.prompt(run_dir, iteration, stage, prompt_id, evals=evals)
        if json_out:
            typer.echo(json.dumps(doc, indent=2))
        elif doc["prompt"] is None:
            typer.echo(doc["note"])
        else:
            typer.echo(doc["prompt"])
        return
    doc = samples.page(run_dir, iteration, stage, samples.parse_filters(filters), offset, limit, evals=evals)
    if json_out:
        typer.echo(json.dumps(doc, indent=2))
        return
    print_samples(doc)


def print_samples(doc: dict) -> None:
    """A page as a rich table: the stage's columns, then its two sides next to each other."""
    import sys

    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text  # cells are data: "[f(a=1)]" must not be read as rich markup

    shown = f"{doc['offset'] + 1}-{doc['offset'] + len(doc['rows'])}" if doc["rows"] else "none"
    filters = " ".join(f"{k}={v}" for k, v in doc["filters"].items())
    t = Table(title=escape(f"{doc['run_id']} iteration {doc['iteration']} {doc['stage']}: {shown} of {doc['total']}"
                           + (f" ({filters})" if filters else "")), title_justify="left", show_lines=True)
    for col in doc["columns"]:
        t.add_column(col, overflow="fold")
    left, right = doc["sides"]
    t.add_column(left, ratio=1, overflow="fold")
    t.add_column(right, ratio=1, overflow="fold")
    for row in doc["rows"]:
        cells = [Text("" if row.get(c) is None else str(row.get(c))) for c in doc["columns"]]
        t.add_row(*cells, Text(row["left"]), Text(row["right"] + (f"\n\n{row['detail']}" if row.get("detail") else "")))
    (Console() if sys.stdout.isatty() else Console(width=200)).print(t)
    if doc["offset"] + len(doc["rows"]) < doc["total"]:
        typer.echo(f"next page: --offset {doc['offset'] + len(doc['rows'])}")
