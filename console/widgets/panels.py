"""The dashboard's panels: throughput sparklines, accuracy, data composition, hardware, commands."""
from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Grid, Horizontal, Vertical
from textual.widgets import DataTable, Label, Sparkline, Static

from console.telemetry import ACE_COLUMNS, BFCL_COLUMNS, COMPOSITION, SERIES, VERDICTS, Telemetry, pct

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


class AccuracyPanel(Horizontal):
    DEFAULT_CSS = """
    AccuracyPanel { height: 10; border: round $primary; }
    AccuracyPanel DataTable { width: 3fr; height: 100%; }
    AccuracyPanel #accuracy-plot { width: 1fr; height: 100%; }
    """

    def compose(self) -> ComposeResult:
        yield DataTable(id="accuracy-table", zebra_stripes=True, cursor_type="none")
        yield _plot_widget()

    def on_mount(self) -> None:
        self.border_title = "Accuracy (%): BFCL-v3 │ ACEBench"
        t = self.query_one(DataTable)
        t.add_column("iter", key="iter")
        for label, key in BFCL_COLUMNS:
            t.add_column(SHORT.get(label, label), key=f"bfcl:{key}")
        for label, key in ACE_COLUMNS:
            t.add_column(f"ACE {label[:4]}", key=f"ace:{key}")
        self._plotted = None

    def show(self, tel: Telemetry) -> None:
        t = self.query_one(DataTable)
        for j in sorted(tel.accuracy)[-MAX_ROWS:]:
            b = tel.accuracy[j].get("bfcl", {})
            a = tel.accuracy[j].get("acebench", {})
            cells = {"iter": str(j)}
            cells.update({f"bfcl:{k}": pct(b.get(k)) for _, k in BFCL_COLUMNS})
            cells.update({f"ace:{k}": pct(a.get(k)) for _, k in ACE_COLUMNS})
            key = str(j)
            if key in t.rows:
                for col, v in cells.items():
                    if t.get_cell(key, col) != v:
                        t.update_cell(key, col, v)
            else:
                t.add_row(*cells.values(), key=key)
        if len(t.rows) and [str(j) for j in sorted(tel.accuracy)] != [r.value for r in t.rows]:
            t.sort("iter", key=int)
        points = {bench: [(j, tel.accuracy[j][bench]["overall"]) for j in sorted(tel.accuracy)
                          if "overall" in tel.accuracy[j].get(bench, {})] for bench in ("bfcl", "acebench")}
        if points != self._plotted:
            self._plotted = points
            self.query_one("#accuracy-plot").show(points)


class DataPanel(Vertical):
    DEFAULT_CSS = """
    DataPanel { height: 8; border: round $primary; }
    DataPanel DataTable { height: 100%; }
    """

    HEADERS = (("ES", "error_seeds"), ("EE", "expansions"), ("HPPL", "high_ppl"), ("fresh", "fresh_seeds"),
               ("top-up", "topped_up"), ("total", "total"))
    JUDGE = (("pred✗", "PRED_WRONG"), ("label✗", "LABEL_WRONG"), ("both✓", "BOTH_CORRECT"),
             ("both✗", "BOTH_WRONG"), ("j-fail", "JUDGE_FAILED"))

    def compose(self) -> ComposeResult:
        yield DataTable(id="data-table", zebra_stripes=True, cursor_type="none")

    def on_mount(self) -> None:
        self.border_title = "Data: composition of D(j+1) │ judge verdicts │ label fixes"
        t = self.query_one(DataTable)
        t.add_column("iter", key="iter")
        for label, key in self.HEADERS:
            t.add_column(label, key=key)
        for label, key in self.JUDGE:
            t.add_column(label, key=key)
        t.add_column("relabel", key="relabel")
        assert {k for _, k in self.HEADERS} == set(COMPOSITION) and {k for _, k in self.JUDGE} == set(VERDICTS)

    def show(self, tel: Telemetry) -> None:
        t = self.query_one(DataTable)
        for j in sorted(set(tel.composition) | set(tel.judge))[-MAX_ROWS:]:
            comp = tel.composition.get(j, {})
            judge = tel.judge.get(j, {})
            verdicts = judge.get("verdicts", {})
            cells = {"iter": str(j)}
            cells.update({k: _int(comp.get(k)) for _, k in self.HEADERS})
            cells.update({k: _int(verdicts.get(k)) for _, k in self.JUDGE})
            cells["relabel"] = _int(judge.get("label_corrections"))
            key = str(j)
            if key in t.rows:
                for col, v in cells.items():
                    if t.get_cell(key, col) != v:
                        t.update_cell(key, col, v)
            else:
                t.add_row(*cells.values(), key=key)
                t.sort("iter", key=int)


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
