"""An eval comparison (core/eval_compare.py's result, as `looptool eval compare --json` prints it and the
`compare` bus verb answers) as text: the helpers the history screen's table uses, and rich tables for the
command line. Plain dicts in, no core imports: the console app uses this too."""
from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

CELL_CHARS = 200  # an output in a table cell: the start of it says what the model did


def points(x: float, signed: bool = True) -> str:
    return f"{100 * x:{'+' if signed else ''}.1f}"


def difference_text(d: dict | None) -> str:
    """``"+6.0 [-2.1, +14.0]"``: a difference in percentage points with its interval."""
    if not isinstance(d, dict):
        return "-"
    return f"{points(d['value'])} [{points(d['low'])}, {points(d['high'])}]"


def accuracy_text(correct: int, n: int) -> str:
    """``"12/50 24.0%"``."""
    return f"{correct}/{n} {points(correct / n, signed=False)}%" if n else "-"


def eval_label(side: dict) -> str:
    """``"bfcl-9bc8fd5e0d (cpu-demo-... iter 2)"``."""
    where = " ".join(str(x) for x in (side.get("run_id"), f"iter {side['iteration']}" if side.get("iteration")
                                       is not None else None) if x)
    return f"{side.get('eval_id')}" + (f" ({where})" if where else "")


def output_text(side: dict, limit: int = CELL_CHARS) -> str:
    """One side of a flip in a cell: the verdict (the error type when wrong) and the start of the output."""
    verdict = "right" if side.get("valid") else f"wrong ({side.get('error_type') or '?'})"
    raw = " ⏎ ".join(str(side.get("raw") or "").splitlines())
    if len(raw) > limit:
        raw = raw[:limit] + " ..."
    return f"{verdict}: {raw}" if raw else verdict


def category_rows(result: dict) -> list[tuple[str, ...]]:
    """(category, n, A, B, difference [interval], right->wrong, wrong->right) per category, then the mean."""
    rows = [(c["category"], str(c["n"]), accuracy_text(c["correct_a"], c["n"]), accuracy_text(c["correct_b"], c["n"]),
             difference_text(c["difference"]), str(c["right_to_wrong"]), str(c["wrong_to_right"]))
            for c in result.get("categories") or []]
    o = result.get("overall")
    if o:
        rows.append((f"mean of {o['categories']}", str(o["n"]), f"{points(o['accuracy_a'], signed=False)}%",
                     f"{points(o['accuracy_b'], signed=False)}%", difference_text(o["difference"]),
                     str(result["right_to_wrong"]["count"]), str(result["wrong_to_right"]["count"])))
    return rows


FLIP_TITLES = {"right_to_wrong": "right -> wrong (regressions)", "wrong_to_right": "wrong -> right (fixes)"}


def print_compare(result: dict, console: Console | None = None) -> None:
    console = console or Console()
    a, b = result["a"], result["b"]
    console.print(Text(f"A = {eval_label(a)}\nB = {eval_label(b)}\n{result['benchmark']}"
                       + (f", category {result['category']}" if result.get("category") else "")))
    t = Table(title="accuracy per category; B - A in points with its 95 % interval (paired data)",
              title_justify="left", box=box.SIMPLE_HEAD)
    for col in ("category", "n", "A", "B", "B - A [95 %]", "R->W", "W->R"):
        t.add_column(col, justify="left" if col == "category" else "right", no_wrap=col != "category")
    rows = category_rows(result)
    for i, row in enumerate(rows):
        t.add_row(*row, end_section=result.get("overall") is not None and i == len(rows) - 2)
    console.print(t)
    o = result.get("overall")
    if o:
        console.print(Text(f"pooled over {o['n']} shared entries: {accuracy_text(o['correct_a'], o['n'])} -> "
                           f"{accuracy_text(o['correct_b'], o['n'])}, {difference_text(o['pooled_difference'])}"))
    for key, title in FLIP_TITLES.items():
        flips = result[key]
        shown = "" if flips["listed"] == flips["count"] else f", {flips['listed']} listed (--limit)"
        console.print(Text(f"\n{title}: {flips['count'] or 'none'}{shown}", style="bold"))
        for f in flips["entries"]:  # outputs as plain Text: a call list in brackets is no markup
            console.print(Text(f"  {f['id']}" + (f"  ({f['category']})" if f["category"] not in f["id"] else "")))
            console.print(Text(f"    A {output_text(f['a'])}"))
            console.print(Text(f"    B {output_text(f['b'])}"))
    for key, label in (("only_in_a", "only in A"), ("only_in_b", "only in B")):
        only = result[key]
        if only["count"]:
            more = f" (+{only['count'] - len(only['ids'])} more)" if only["count"] > len(only["ids"]) else ""
            console.print(Text(f"{label}: {only['count']}: {', '.join(only['ids'])}{more}"))
    for w in result.get("warnings") or []:
        console.print(Text(w, style="yellow"))
