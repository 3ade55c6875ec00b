"""The dashboard's panels: throughput sparklines, accuracy, data composition, hardware, commands.

Panels are redrawn by the app's 4 Hz timer; the per-iteration ones (accuracy, data) return at once
unless `Telemetry.results_version` moved, so a metrics flood costs them nothing.
"""
from __future__ import annotations

from dataclasses import dataclass

from rich.cells import cell_len
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Grid, Horizontal, Vertical
from textual.widgets import DataTable, Label, Sparkline, Static

from console.telemetry import (ACE_COLUMNS, BFCL_COLUMNS, BFCL_V3_CATEGORY_COUNT, COMPOSITION, SERIES, VERDICTS,
                               HeldOut, Telemetry, pct, previous)

MAX_ROWS = 64


def _fmt(v: float | None) -> str:
    if v is None:
        return "-"
    a = abs(v)
    return f"{v:.3g}" if a < 10 else f"{v:,.0f}" if a >= 1000 else f"{v:.1f}"


class ThroughputPanel(Grid):
    DEFAULT_CSS = """
    ThroughputPanel { grid-size: 2; grid-columns: 26 1fr; grid-rows: 1; grid-gutter: 0 1; height: auto;
                      border: round $primary; border-title-color: $text; padding: 0 1; }
    ThroughputPanel Sparkline { height: 1; }
    ThroughputPanel Label { width: 100%; }
    """

    def compose(self) -> ComposeResult:
        for key in SERIES:
            yield Label(id=f"tp-{key}-label")
            yield Sparkline([], id=f"tp-{key}")

    def on_mount(self) -> None:
        self.border_title = "Throughput & training"
        self._labels: dict[str, str] = {}
        self.show(Telemetry())

    def show(self, tel: Telemetry) -> None:
        for key, (label, _, _) in SERIES.items():
            data = tel.series[key]
            latest = data[-1] if data else None
            stage = tel.series_stage.get(key, "")
            text = f"{label:9s} {_fmt(latest):>8s} {stage[:6]:>6s}"
            if self._labels.get(key) != text:
                self._labels[key] = text
                self.query_one(f"#tp-{key}-label", Label).update(text, layout=False)
            self.query_one(f"#tp-{key}", Sparkline).data = list(data)


SHORT = {"Non-Live AST": "NL-AST", "Multi-Turn": "Multi-T", "Relevance": "Relev", "Irrelevance": "Irrel"}
BREAKDOWN = tuple((label, key) for label, key in BFCL_COLUMNS if key != "overall")
TOP_ERRORS = 3  # eval error types named under the accuracy table
TOP_KIND_FAILURES = 4  # (kind, failure class) pairs named under the data table


@dataclass
class TableView:
    """What a panel's DataTable shows: columns (key, label) and rows (key, cells in column order)."""
    columns: list[tuple[str, str]]
    rows: list[tuple[str, list[str]]]


def fill_table(t: DataTable, view: TableView) -> None:
    """Make `t` show `view`: rebuilt when its columns or rows changed, else only the cells that differ."""
    keys = [k for k, _ in view.columns]
    same_columns = [(c.key.value, str(c.label)) for c in t.ordered_columns] == view.columns
    if not same_columns or [r.key.value for r in t.ordered_rows] != [k for k, _ in view.rows]:
        t.clear(columns=not same_columns)
        if not same_columns:
            for key, label in view.columns:
                t.add_column(label, key=key)
        for key, cells in view.rows:
            t.add_row(*cells, key=key)
        t.scroll_end(animate=False)  # the latest iteration in sight
        return
    for key, cells in view.rows:
        for col, v in zip(keys, cells):
            if t.get_cell(key, col) != v:
                t.update_cell(key, col, v)


def accuracy_view(tel: Telemetry) -> TableView:
    """One row per evaluated iteration: the held-out subset's correct/total, %, and change from the
    previous iteration (columns absent until some eval brought per-category counts), the BFCL-v3
    Overall (marked partial over a subset; its v3 breakdown only where an eval covered every
    category), ACEBench when it has scores, and correct/total per held-out category."""
    iters = sorted(set(tel.accuracy) | set(tel.heldout))[-MAX_ROWS:]
    cats = list(dict.fromkeys(c for j in iters if j in tel.heldout for c in tel.heldout[j].per_category))
    shows_breakdown = any(not _partial(tel, j) and any(k in tel.accuracy.get(j, {}).get("bfcl", {})
                                                        for _, k in BREAKDOWN) for j in iters)
    shows_ace = any("acebench" in tel.accuracy.get(j, {}) for j in iters)
    columns = [("iter", "iter")]
    if any(j in tel.heldout for j in iters):  # a core that sends no per-category counts has none
        columns += [("held", "held-out"), ("pct", "%"), ("delta", "Δ")]
    columns += [("bfcl:overall", "Overall")]
    if shows_breakdown:
        columns += [(f"bfcl:{k}", SHORT.get(label, label)) for label, k in BREAKDOWN]
    ace_columns = [(f"ace:{k}", f"ACE {label[:4]}") for label, k in ACE_COLUMNS] if shows_ace else []
    cat_columns = [(f"cat:{c}", c) for c in cats]
    # a subset's categories right after the Overall; all 17 never fit, so then ACEBench comes first
    columns += ace_columns + cat_columns if shows_breakdown else cat_columns + ace_columns
    rows = []
    for j in iters:
        held, bfcl = tel.heldout.get(j), tel.accuracy.get(j, {}).get("bfcl", {})
        _, before = previous(tel.heldout, j)
        overall = held.overall if held is not None and held.overall is not None else bfcl.get("overall")
        cells = {"iter": str(j), "held": _count(held), "pct": pct(held.accuracy) if held else "-",
                 "delta": _delta_pts(held, before),
                 "bfcl:overall": pct(overall) + (" (partial)" if overall is not None and _partial(tel, j) else "")}
        for _, k in BREAKDOWN:
            cells[f"bfcl:{k}"] = "-" if _partial(tel, j) else pct(bfcl.get(k))
        ace = tel.accuracy.get(j, {}).get("acebench", {})
        for _, k in ACE_COLUMNS:
            cells[f"ace:{k}"] = pct(ace.get(k)) if ace or j not in tel.acebench_skipped else "skipped"
        for c in cats:
            cells[f"cat:{c}"] = _count(held.per_category.get(c)) if held is not None else "-"
        rows.append((str(j), [cells[k] for k, _ in columns]))
    return TableView(columns, rows)


def accuracy_notes(tel: Telemetry) -> list[Text]:
    """The lines under the accuracy table: what "partial" means, why ACEBench is missing, and the
    latest eval's most frequent error types."""
    notes = []
    partial = sorted({len(h.per_category) for h in tel.heldout.values() if h.partial})
    if partial:
        n = BFCL_V3_CATEGORY_COUNT
        shown = str(partial[0]) if len(partial) == 1 else f"{partial[0]}-{partial[-1]}"
        rest = f"the other {n - partial[0]}" if len(partial) == 1 else "the others"
        notes.append(Text.assemble((f"Overall (partial, {shown}/{n} categories)", "bold"),
                                   f": BFCL-v3's formula, {rest} count as 0"))
    j = max(tel.acebench_skipped, default=None)
    if j is not None and not any("acebench" in scores for i, scores in tel.accuracy.items() if i >= j):
        reason = " ".join(tel.acebench_skipped[j].split())
        notes.append(Text.assemble(("ACEBench: not evaluated", "bold yellow"), f" — {_clip(reason, 200)}"))
    latest = max((j for j, h in tel.heldout.items() if h.top_errors(1)), default=None)
    if latest is not None:
        errs = " · ".join(f"{cat}: {et} {k}" for cat, et, k in tel.heldout[latest].top_errors(TOP_ERRORS))
        notes.append(Text.assemble((f"eval errors, iter {latest}: ", "dim"), errs))
    return notes


def _partial(tel: Telemetry, j: int) -> bool:
    held = tel.heldout.get(j)
    return held is not None and held.partial


def _count(c) -> str:
    if c is None:
        return "-"
    return f"{c.correct}/{c.total}" if isinstance(c, HeldOut) else f"{c['correct']}/{c['total']}"


def _delta_pts(held: HeldOut | None, before: HeldOut | None) -> str:
    if held is None or before is None or held.accuracy is None or before.accuracy is None:
        return ""
    return f"{(held.accuracy - before.accuracy) * 100:+.1f}"


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[:n - 1] + "…"


class AccuracyPanel(Horizontal):
    DEFAULT_CSS = """
    AccuracyPanel { height: 11; border: round $primary; }
    AccuracyPanel #accuracy-left { width: 1fr; height: 100%; }
    AccuracyPanel DataTable { height: 1fr; }
    AccuracyPanel #accuracy-notes { height: auto; max-height: 3; padding: 0 1;
                                    text-wrap: nowrap; text-overflow: ellipsis; }
    AccuracyPanel #accuracy-plot { width: 34; height: 100%; margin-left: 1; }
    """

    def compose(self) -> ComposeResult:
        with Vertical(id="accuracy-left"):
            yield DataTable(id="accuracy-table", zebra_stripes=True, cursor_type="none")
            yield Static(id="accuracy-notes")
        yield _plot_widget()

    def on_mount(self) -> None:
        self.border_title = "Accuracy (%): held-out subset of the run │ BFCL-v3 │ ACEBench"
        self._drawn = -1
        self._plotted = None
        self._notes: list[Text] | None = None

    def show(self, tel: Telemetry) -> None:
        if tel.results_version == self._drawn:
            return  # nothing this panel shows changed (metrics floods do not reach here)
        self._drawn = tel.results_version
        fill_table(self.query_one(DataTable), accuracy_view(tel))
        notes = accuracy_notes(tel)
        if notes != self._notes:
            self._notes = notes
            box = self.query_one("#accuracy-notes", Static)
            box.update(Text("\n").join(notes))
            box.display = bool(notes)
        points = {bench: [(j, tel.accuracy[j][bench]["overall"]) for j in sorted(tel.accuracy)
                          if "overall" in tel.accuracy[j].get(bench, {})] for bench in ("bfcl", "acebench")}
        points["heldout"] = [(j, h.accuracy) for j, h in sorted(tel.heldout.items()) if h.accuracy is not None]
        if points["heldout"]:
            del points["bfcl"]  # a subset's Overall counts the other categories 0: the held-out % instead
        if points != self._plotted:
            self._plotted = points
            self.query_one("#accuracy-plot").show(points)


def probe_summary(tel: Telemetry) -> RenderableType:
    """The latest probe: mastered/total overall and per sample kind, the failure classes of the
    mismatched replies, and the (kind, class) pairs that missed most. "(+n)" is the change from the
    previous probe."""
    if not tel.probe:
        return Text("probe: no mastery by kind yet (it comes with each probe stage)", style="dim")
    j = max(tel.probe)
    p = tel.probe[j]
    i, before = previous(tel.probe, j)
    head = Text.assemble((f"probe iter {j}: ", "bold"), f"{p.mastered:,}/{p.samples:,} mastered")
    if p.samples:
        rate = p.mastered / p.samples
        head.append(f" ({rate * 100:.1f}%")
        if before is not None and before.samples:
            head.append(f", {(rate - before.mastered / before.samples) * 100:+.1f} vs iter {i}")
        head.append(")")
    grid = Table.grid(padding=(0, 1))
    grid.add_column(style="dim", no_wrap=True)
    grid.add_column()
    was = before.by_kind if before is not None else {}
    kinds = [f"{k} {v['mastered']}/{v['total']}" + _change(v["mastered"], was.get(k, {}).get("mastered"))
             for k, v in sorted(p.by_kind.items(), key=lambda kv: (-kv[1]["total"], kv[0]))]
    grid.add_row("kinds", Packed(kinds))
    was = before.failure_classes if before is not None else {}
    classes = sorted({c for c, n in p.failure_classes.items() if n} | {c for c, n in was.items() if n},
                     key=lambda c: (-p.failure_classes.get(c, 0), c))
    fails = [f"{c} {p.failure_classes.get(c, 0)}" + _change(p.failure_classes.get(c, 0), was.get(c)) for c in classes]
    if p.unclassified:
        fails.append(f"unclassified {p.unclassified}")
    grid.add_row("fails", Packed(fails))
    pairs = sorted(((k, c, n) for k, per in p.by_kind_failures.items() for c, n in per.items() if n),
                   key=lambda f: (-f[2], f[0], f[1]))[:TOP_KIND_FAILURES]
    by_kind: dict[str, list[str]] = {}
    for k, c, n in pairs:
        by_kind.setdefault(k, []).append(f"{c} {n}")
    if by_kind:
        grid.add_row("worst", Packed([f"{k}: {', '.join(v)}" for k, v in by_kind.items()]))
    return Group(head, grid)


class Packed:
    """Items on as few lines as the width allows, each kept whole, separated by " · " (a Rich
    renderable: it packs again at every width, so a resized terminal needs no redraw from us)."""

    def __init__(self, items: list[str]) -> None:
        self.items = items

    def __rich_console__(self, console, options):
        line = Text(no_wrap=True, overflow="ellipsis")
        for item in self.items or ["-"]:
            if line and line.cell_len + 3 + cell_len(item) > options.max_width:
                yield line
                line = Text(no_wrap=True, overflow="ellipsis")
            if line:
                line.append(" · ", "dim")
            line.append(item)
        yield line


def _change(now: int, before: int | None) -> str:
    return "" if before is None or before == now else f" ({now - before:+d})"


class DataPanel(Vertical):
    DEFAULT_CSS = """
    DataPanel { height: 13; border: round $primary; }
    DataPanel DataTable { height: 1fr; min-height: 3; }
    DataPanel #probe-summary { height: auto; max-height: 8; padding: 0 1; }
    """

    HEADERS = (("ES", "error_seeds"), ("EE", "expansions"), ("HPPL", "high_ppl"), ("fresh", "fresh_seeds"),
               ("top-up", "topped_up"), ("total", "total"))
    JUDGE = (("pred✗", "PRED_WRONG"), ("label✗", "LABEL_WRONG"), ("both✓", "BOTH_CORRECT"),
             ("both✗", "BOTH_WRONG"), ("j-fail", "JUDGE_FAILED"))

    def compose(self) -> ComposeResult:
        yield DataTable(id="data-table", zebra_stripes=True, cursor_type="none")
        yield Static(id="probe-summary")

    def on_mount(self) -> None:
        self.border_title = "Data: composition of D(j+1) │ judge verdicts │ label fixes │ probe by kind"
        assert {k for _, k in self.HEADERS} == set(COMPOSITION) and {k for _, k in self.JUDGE} == set(VERDICTS)
        self._drawn = -1
        self._probe: tuple | None = None  # what the probe summary shows: (iteration, stats, previous)
        self.show(Telemetry())

    def show(self, tel: Telemetry) -> None:
        if tel.results_version == self._drawn:
            return
        self._drawn = tel.results_version
        fill_table(self.query_one(DataTable), self.view(tel))
        j = max(tel.probe, default=None)
        shown = (j, tel.probe.get(j), previous(tel.probe, j) if j is not None else None)
        if shown != self._probe:
            self._probe = shown
            self.query_one("#probe-summary", Static).update(probe_summary(tel))

    def view(self, tel: Telemetry) -> TableView:
        columns = [("iter", "iter"), *((k, label) for label, k in self.HEADERS),
                   *((k, label) for label, k in self.JUDGE), ("relabel", "relabel")]
        rows = []
        for j in sorted(set(tel.composition) | set(tel.judge))[-MAX_ROWS:]:
            comp = tel.composition.get(j, {})
            judge = tel.judge.get(j, {})
            verdicts = judge.get("verdicts", {})
            cells = [str(j), *(_int(comp.get(k)) for _, k in self.HEADERS),
                     *(_int(verdicts.get(k)) for _, k in self.JUDGE), _int(judge.get("label_corrections"))]
            rows.append((str(j), cells))
        return TableView(columns, rows)


def _int(v) -> str:
    return "-" if v is None else f"{v:,}"


class HardwarePanel(Static):
    DEFAULT_CSS = """
    HardwarePanel { height: auto; min-height: 6; border: round $primary; padding: 0 1; }
    """

    def on_mount(self) -> None:
        self.border_title = "Hardware"
        self.show(Telemetry())

    def show(self, tel: Telemetry) -> None:
        """core.hardware's sample: cpu_pct, ram_used_mb/ram_total_mb/ram_pct, gpus[{index, util_pct,
        mem_used_mb, mem_total_mb}] (an `error` instead when a GPU fell off the bus)."""
        hw = tel.hardware
        if not hw:
            self._set(Text("no hardware telemetry yet", style="dim"))
            return
        t = Text()
        if _num(hw.get("cpu_pct")):
            cores = f" of {hw['cpu_count']} cores" if _num(hw.get("cpu_count")) else ""
            t.append(f"CPU  {_bar(hw['cpu_pct'])} {hw['cpu_pct']:5.1f}%{cores}\n")
        used, total, rp = hw.get("ram_used_mb"), hw.get("ram_total_mb"), hw.get("ram_pct")
        if not _num(rp) and _num(used) and total:
            rp = 100 * used / total
        if _num(rp):
            extra = f" {used / 1024:.1f}/{total / 1024:.0f} GB" if _num(used) and _num(total) else ""
            t.append(f"RAM  {_bar(rp)} {rp:5.1f}%{extra}\n")
        if _num(hw.get("core_rss_mb")):
            t.append(f"core RSS {hw['core_rss_mb'] / 1024:.1f} GB\n")
        gpus = hw.get("gpus")
        for i, g in enumerate(gpus if isinstance(gpus, list) else []):
            if not isinstance(g, dict):
                continue
            line = f"GPU{g.get('index', i)} "
            util, mu, mt = g.get("util_pct"), g.get("mem_used_mb"), g.get("mem_total_mb")
            if g.get("error"):
                line += f"error: {str(g['error'])[:40]}"
            else:
                line += f"{_bar(util)} {util:5.1f}%" if _num(util) else "util -"
                if _num(mu) and _num(mt) and mt:
                    line += f" {mu / 1024:.1f}/{mt / 1024:.0f} GB"
            t.append(line + "\n")
        t.rstrip()
        self._set(t if t.plain else Text("no hardware telemetry yet", style="dim"))

    def _set(self, t: Text) -> None:
        old = getattr(self, "_shown", None)
        if old is not None and old == t:
            return
        self._shown = t
        self.update(t, layout=old is None or old.plain.count("\n") != t.plain.count("\n"))


def _num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _bar(p, width: int = 10) -> str:
    p = max(0.0, min(100.0, float(p or 0)))
    n = round(p / 100 * width)
    return "█" * n + "░" * (width - n)


class CommandsPanel(Static):
    DEFAULT_CSS = """
    CommandsPanel { height: 1fr; min-height: 4; border: round $primary; padding: 0 1; }
    """
    STYLE = {"pending": "yellow", "accepted": "cyan", "done": "green", "rejected": "red", "failed": "bold red",
             "unconfirmed": "bold yellow"}

    def on_mount(self) -> None:
        self.border_title = "Commands"
        self.show([], read_only=False)

    def show(self, commands, read_only: bool) -> None:
        if read_only:
            self.update(Text("read-only: commands disabled", style="dim"), layout=False)
            return
        if not commands:
            self.update(Text("no commands sent", style="dim"), layout=False)
            return
        t = Text()
        for c in list(commands)[-6:]:
            t.append(f"{c.verb:8s}", "bold")
            t.append(f"{c.state:12s}", self.STYLE.get(c.state, ""))
            t.append(f"{c.detail[:60]}\n" if c.detail else "\n")
        t.rstrip()
        self.update(t, layout=False)  # a fixed-height box


def _plot_widget():
    from console.widgets.accuracy_plot import AccuracyPlot

    return AccuracyPlot(id="accuracy-plot")
