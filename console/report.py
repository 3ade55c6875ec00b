"""Rendering evaluation summaries as terminal tables (rich)."""
from __future__ import annotations

from rich.console import Console
from rich.table import Table

from evals.bfcl_metrics import LEADERBOARD_COLUMNS


def pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}"


def print_bfcl_summary(summary: dict, console: Console | None = None) -> None:
    console = console or Console()
    per = summary["per_category"]
    t = Table(title=f"BFCL-v3 per category  [{summary['eval_id']}]", title_justify="left")
    t.add_column("category")
    t.add_column("correct", justify="right")
    t.add_column("total", justify="right")
    t.add_column("accuracy %", justify="right")
    for cat, c in per.items():
        t.add_row(cat, str(c["correct"]), str(c["total"]), pct(c["accuracy"]))
    console.print(t)
    s = summary["scores"]
    lb = Table(title="BFCL-v3 leaderboard columns (v3 formula; categories not evaluated count 0)",
               title_justify="left")
    for label, _ in LEADERBOARD_COLUMNS:
        lb.add_column(label, justify="right")
    lb.add_row(*(pct(s[k]) for _, k in LEADERBOARD_COLUMNS))
    console.print(lb)
    n_eval = len(per)
    facts = [f"model {summary.get('model')}", f"backend {summary.get('backend')}",
             f"mode {summary.get('mode')}", f"{n_eval}/17 categories",
             f"{sum(c['total'] for c in per.values())} samples"]
    if summary.get("adapter"):
        facts.append(f"adapter {summary['adapter']}")
    _print_footer(console, summary, facts)


def _print_footer(console: Console, summary: dict, facts: list[str]) -> None:
    """Run facts (+ wall time, tokens/s), the resume hint when incomplete, the records path."""
    if summary.get("wall_s") is not None:
        facts.append(f"{summary['wall_s']} s")
    if summary.get("tokens_per_s"):
        facts.append(f"{summary['tokens_per_s']} tok/s")
    console.print("  ".join(facts))
    if not summary.get("complete", True):
        console.print("[yellow]incomplete: rerun the same command to resume[/yellow]")
    if summary.get("records"):
        console.print(f"records: {summary['records']}")


def print_acebench_summary(summary: dict, console: Console | None = None) -> None:
    from evals.acebench.metrics import LEADERBOARD_COLUMNS as ACE_COLUMNS

    def pct1(x):
        return "-" if x is None else f"{100 * x:.1f}"

    if console is None:
        console = Console()
        if not console.is_terminal:
            console = Console(width=160)  # a pipe or a file: keep category names and column labels whole
    t = Table(title=f"ACEBench (en) per category  [{summary['eval_id']}]", title_justify="left")
    for col in ("category", "correct", "total", "accuracy %", "strict %", "process %"):
        t.add_column(col, justify="left" if col == "category" else "right")
    for cat, c in summary["per_category"].items():
        t.add_row(cat, str(c["correct"]), str(c["total"]), pct1(c["accuracy"]), pct1(c.get("strict_accuracy")),
                  pct1(c.get("process_accuracy")))
    console.print(t)
    lb = Table(title="leaderboard columns (compat scorer; categories not evaluated count 0)", title_justify="left")
    lb.add_column("scorer")
    for label, _ in ACE_COLUMNS:
        lb.add_column(label, justify="right")
    for name, key in (("compat", "scores"), ("strict", "scores_strict")):
        lb.add_row(name, *(pct1(summary[key][k]) for _, k in ACE_COLUMNS))
    console.print(lb)
    facts = [f"model {summary.get('model')}", f"backend {summary.get('backend')}", f"mode {summary.get('mode')}",
             f"{len(summary['per_category'])}/17 categories"]
    sim = summary.get("simulator")
    if sim:
        facts.append(f"user simulator {sim.get('model')} ({sim.get('backend')})")
    _print_footer(console, summary, facts)


def print_eval_list(rows: list[dict], console: Console | None = None) -> None:
    console = console or Console()
    t = Table(title="evaluations (newest first)", title_justify="left")
    for col in ("eval id", "started", "benchmark", "model", "backend", "mode", "samples", "Overall %"):
        t.add_column(col)
    for r in rows:
        samples = sum((r.get("categories") or {}).values())
        t.add_row(r["eval_id"], str(r.get("started_at", "")), str(r.get("benchmark", "")),
                  str(r.get("model", "")), str(r.get("backend", "")), str(r.get("mode", "")),
                  str(samples), pct((r.get("scores") or {}).get("overall")))
    console.print(t)


def print_run(doc: dict, console: Console | None = None) -> None:
    console = console or Console()
    r = doc["run"]
    console.print(f"run {r['run_id']}  state {r['state']}  model {r.get('model')}  dir {r.get('run_dir')}")
    t = Table(title="BFCL-v3 held-out subset per iteration", title_justify="left")
    t.add_column("iteration", justify="right")
    t.add_column("subset acc", justify="right")
    for label, _ in LEADERBOARD_COLUMNS:
        t.add_column(label, justify="right")
    for e in doc["evals"]:
        t.add_row(str(e["iteration"]), pct(e.get("accuracy")),
                  *(pct(e["scores"].get(k)) for _, k in LEADERBOARD_COLUMNS))
    console.print(t)
    if doc.get("acebench"):
        a = Table(title="ACEBench per iteration", title_justify="left")
        for col in ("iteration", "Normal", "Special", "Agent", "Overall"):
            a.add_column(col, justify="right")
        for e in doc["acebench"]:
            sc = e["scores"]
            a.add_row(str(e["iteration"]), *(pct(sc.get(k)) for k in ("normal", "special", "agent", "overall")))
        console.print(a)
    c = Table(title="dataset composition and judge verdicts", title_justify="left")
    for col in ("iteration", "train", "mastered", "judge verdicts", "expansions", "next dataset"):
        c.add_column(col)
    for it in doc["iterations"]:
        tr, pr, ju, ex, asm = (it.get(k) or {} for k in ("train", "probe", "judge", "expand", "assemble"))
        c.add_row(str(it["iteration"]), f"{tr.get('method', '')} {tr.get('steps', '')} steps",
                  f"{pr.get('mastered', '')}/{pr.get('samples', '')}",
                  " ".join(f"{k}={v}" for k, v in (ju.get("verdicts") or {}).items()),
                  str(ex.get("kept", "")),
                  " ".join(f"{k}={asm[k]}" for k in ("error_seeds", "expansions", "high_ppl", "fresh_seeds")
                           if k in asm))
    console.print(c)
