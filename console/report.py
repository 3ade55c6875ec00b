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
    from evals.leaderboard_ast import other_decoding

    primary = summary.get("decoding", "official")
    other = other_decoding(primary)
    has_other = all(other in (c.get("by_decoding") or {}) for c in per.values()) and bool(per)
    if has_other:  # the same replies decoded the other way: how much of the score is formatting
        t.add_column(f"{other} %", justify="right")
    for cat, c in per.items():
        row = [cat, str(c["correct"]), str(c["total"]), pct(c["accuracy"])]
        if has_other:
            row.append(pct(c["by_decoding"][other] / c["total"] if c["total"] else 0.0))
        t.add_row(*row)
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
             f"mode {summary.get('mode')}", f"decoding {primary}", f"{n_eval}/17 categories",
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
    from evals.leaderboard_ast import other_decoding

    other = other_decoding(summary.get("decoding", "official"))
    for col in ("category", "correct", "total", "accuracy %", f"{other} %", "strict %", "process %"):
        t.add_column(col, justify="left" if col == "category" else "right")
    for cat, c in summary["per_category"].items():
        t.add_row(cat, str(c["correct"]), str(c["total"]), pct1(c["accuracy"]), pct1(c.get(f"{other}_accuracy")),
                  pct1(c.get("strict_accuracy")), pct1(c.get("process_accuracy")))
    console.print(t)
    lb = Table(title="leaderboard columns (compat scorer; categories not evaluated count 0)", title_justify="left")
    lb.add_column("scorer")
    for label, _ in ACE_COLUMNS:
        lb.add_column(label, justify="right")
    for name, key in (("compat", "scores"), (f"compat, {other} decoding", f"scores_{other}"),
                      ("strict", "scores_strict")):
        if key in summary:
            lb.add_row(name, *(pct1(summary[key][k]) for _, k in ACE_COLUMNS))
    console.print(lb)
    facts = [f"model {summary.get('model')}", f"backend {summary.get('backend')}", f"mode {summary.get('mode')}",
             f"decoding {summary.get('decoding', 'official')}", f"{len(summary['per_category'])}/17 categories"]
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
    skipped = acebench_skipped(doc)
    if not doc.get("acebench"):
        for reason in skipped:
            console.print(f"ACEBench: not evaluated — {reason}")
    else:
        a = Table(title="ACEBench per iteration", title_justify="left")
        for col in ("iteration", "Normal", "Special", "Agent", "Overall"):
            a.add_column(col, justify="right")
        for e in doc["acebench"]:
            sc = e["scores"]
            a.add_row(str(e["iteration"]), *(pct(sc.get(k)) for k in ("normal", "special", "agent", "overall")))
        console.print(a)
        for reason in skipped:
            console.print(f"ACEBench: not evaluated in some iterations — {reason}")
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
    print_instruments(doc.get("instruments") or run_instruments(doc), console)


# -- the loop's instruments (`looptool runs show`) ------------------------------------------------

def acebench_skipped(doc: dict) -> list[str]:
    """Distinct reasons, in iteration order, why ACEBench was configured but not evaluated."""
    reasons = [e.get("acebench_skipped") for e in doc.get("evals", [])]
    reasons += [(it.get("eval") or {}).get("acebench_skipped") for it in doc.get("iterations", [])]
    return list(dict.fromkeys(r for r in reasons if r))


def _curve_summary(curve: list[dict]) -> dict:
    """steps logged, first/last loss; under GRPO first/last reward and mean frac_reward_zero_std."""
    losses = [p["loss"] for p in curve if p.get("loss") is not None]
    rewards = [p["reward"] for p in curve if p.get("reward") is not None]
    zero_std = [p["frac_reward_zero_std"] for p in curve if p.get("frac_reward_zero_std") is not None]
    return {"steps": len(curve), "first_loss": losses[0] if losses else None,
            "last_loss": losses[-1] if losses else None,
            "first_reward": rewards[0] if rewards else None, "last_reward": rewards[-1] if rewards else None,
            "mean_frac_reward_zero_std": sum(zero_std) / len(zero_std) if zero_std else None}


def run_instruments(doc: dict) -> dict:
    """Per-iteration instruments of a `runs show` doc (iteration docs + trimmed evals), as plain data:

    iterations        [{iteration, by_kind {kind: {mastered, total}}, failure_classes {class: n},
                        by_kind_failures {kind: {class: n}}, train_curve (see _curve_summary) or None}]
    eval_iterations   the iterations (str) of the BFCL-v3 evals, in order: the error-type columns
    eval_error_types  [{category, error_type, counts {iteration (str): n}}], sorted by category, type
    """
    from core.failures import FAILURE_CLASSES

    iterations = []
    for it in doc.get("iterations", []):
        probe = it.get("probe") or {}
        train = it.get("train") or {}
        iterations.append({
            "iteration": it["iteration"], "by_kind": probe.get("by_kind") or {},
            "failure_classes": {c: (probe.get("failure_classes") or {}).get(c, 0) for c in FAILURE_CLASSES}
            if probe.get("failure_classes") is not None else {},
            "by_kind_failures": probe.get("by_kind_failures") or {},
            "train_curve": _curve_summary(train["curve"]) if train.get("curve") else None,
        })
    rows: dict[tuple[str, str], dict[str, int]] = {}
    for e in doc.get("evals", []):
        for cat, types in (e.get("error_types") or {}).items():
            for et, n in types.items():
                rows.setdefault((cat, et), {})[str(e.get("iteration"))] = n
    return {"iterations": iterations,
            "eval_iterations": [str(e.get("iteration")) for e in doc.get("evals", [])],
            "eval_error_types": [{"category": c, "error_type": et, "counts": counts}
                                 for (c, et), counts in sorted(rows.items())]}


def _num(x, digits: int = 4) -> str:
    return "-" if x is None else f"{x:.{digits}g}"


def _per_iteration_table(title: str, first: str, iterations: list[dict]) -> Table:
    """A table with a row label column and one right-aligned column per iteration."""
    t = Table(title=title, title_justify="left")
    t.add_column(first)
    for i in iterations:
        t.add_column(f"iter {i['iteration']}", justify="right")
    return t


def print_instruments(inst: dict, console: Console | None = None) -> None:
    """Probe mastery per kind, failure classes, eval error types per category, train curve summary:
    one column per iteration, so what moved between iterations reads across a row."""
    console = console or Console()
    its = inst.get("iterations", [])
    probed = [i for i in its if i["by_kind"]]
    if probed:
        t = _per_iteration_table("probe: mastered per kind", "kind", probed)
        for kind in sorted({k for i in probed for k in i["by_kind"]}):
            cells = []
            for i in probed:
                k = i["by_kind"].get(kind)
                cells.append("-" if not k else f"{k['mastered']}/{k['total']}  "
                             f"{100 * k['mastered'] / k['total'] if k['total'] else 0:.1f}%")
            t.add_row(kind, *cells)
        console.print(t)
    classified = [i for i in its if i["failure_classes"]]
    if classified:
        t = _per_iteration_table("probe: failure classes", "class", classified)
        for cls in classified[0]["failure_classes"]:
            t.add_row(cls, *(str(i["failure_classes"].get(cls, 0)) for i in classified))
        console.print(t)
    errors = inst.get("eval_error_types", [])
    if errors:
        evals = list(dict.fromkeys(inst.get("eval_iterations") or [k for r in errors for k in r["counts"]]))
        t = Table(title="BFCL-v3 error types per category (failing entries)", title_justify="left")
        t.add_column("category")
        t.add_column("error type")
        for k in evals:
            t.add_column(f"iter {k}", justify="right")
        if len(evals) > 1:
            t.add_column("change", justify="right")
        for r in errors:
            counts = [r["counts"].get(k, 0) for k in evals]
            t.add_row(r["category"], r["error_type"], *map(str, counts),
                      *([f"{counts[-1] - counts[0]:+d}"] if len(evals) > 1 else []))
        console.print(t)
    curves = [i for i in its if i["train_curve"]]
    if curves:
        grpo = any(i["train_curve"]["first_reward"] is not None for i in curves)
        t = Table(title="train curve", title_justify="left")
        cols = ["iteration", "steps", "first loss", "last loss"]
        if grpo:
            cols += ["first reward", "last reward", "mean frac_reward_zero_std"]
        for col in cols:
            t.add_column(col, justify="right")
        for i in curves:
            c = i["train_curve"]
            row = [str(i["iteration"]), str(c["steps"]), _num(c["first_loss"]), _num(c["last_loss"])]
            if grpo:
                row += [_num(c["first_reward"]), _num(c["last_reward"]), _num(c["mean_frac_reward_zero_std"])]
            t.add_row(*row)
        console.print(t)
