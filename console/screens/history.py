"""`r`: runs, iterations and evals from the core's store, read THROUGH THE CORE (`history` command).

The console never opens the TinyDB file: every table here is an ack result of a `history` command.
Enter opens a run (its iterations and evals); space marks a row; `c` puts two marked runs, or two
marked iterations, side by side; on two marked evals it asks the core to `compare` them (per-category
accuracy, B - A with its 95 % interval for paired data, and the entries that flipped with both outputs).
"""
from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Label

from console.link import LinkError, PendingCommand
from console.report_compare import category_rows, eval_label, output_text
from console.telemetry import BFCL_COLUMNS, COMPOSITION, heldout_of, history_rows, pct


class HistoryReply(Message):
    def __init__(self, command: PendingCommand) -> None:
        super().__init__()
        self.command = command


def flatten_iteration(doc: dict) -> dict[str, str]:
    """One iteration document -> {metric: shown value}, in a stable order."""
    out: dict[str, str] = {}
    ev = doc.get("eval") if isinstance(doc.get("eval"), dict) else {}
    scores = ev.get("scores") if isinstance(ev.get("scores"), dict) else {}
    held = heldout_of(ev)
    out["held-out"] = f"{held.correct}/{held.total}" if held else "-"
    out["held-out %"] = pct(held.accuracy) if held else "-"
    for label, key in BFCL_COLUMNS:
        out[f"BFCL {label}"] = pct(scores.get(key)) if isinstance(scores.get(key), (int, float)) else "-"
    out["BFCL categories"] = held.categories_label if held else "-"  # "partial, 4/17": the Overall counts the rest 0
    for cat, c in (held.per_category.items() if held else ()):
        out[f"held-out {cat}"] = f"{c['correct']}/{c['total']}"
    probe = doc.get("probe") if isinstance(doc.get("probe"), dict) else {}
    if isinstance(probe.get("samples"), int) and probe["samples"]:
        out["probe mastered %"] = pct(probe.get("mastered", 0) / probe["samples"])
    for kind, k in sorted((probe.get("by_kind") or {}).items()):
        if isinstance(k, dict) and k.get("total"):
            out[f"probe {kind} mastered %"] = pct(k.get("mastered", 0) / k["total"])
    for cls, n in (probe.get("failure_classes") or {}).items():
        out[f"failures {cls}"] = str(n)
    comp = doc.get("assemble") if isinstance(doc.get("assemble"), dict) else {}
    for key in COMPOSITION:
        out[key] = str(comp.get(key, "-"))
    judge = doc.get("judge") if isinstance(doc.get("judge"), dict) else {}
    for k, v in (judge.get("verdicts") or {}).items():
        out[f"judge {k}"] = str(v)
    out["label corrections"] = str(judge.get("label_corrections", "-"))
    train = doc.get("train") if isinstance(doc.get("train"), dict) else {}
    for k in ("loss", "train_loss", "reward_mean", "steps", "wall_s"):
        if isinstance(train.get(k), (int, float)):
            out[f"train {k}"] = f"{train[k]:.4g}"
    return out


def flatten_run(iter_docs: list[dict]) -> dict[str, str]:
    out: dict[str, str] = {}
    for doc in sorted(iter_docs, key=lambda d: d.get("iteration", 0)):
        flat = flatten_iteration(doc)
        for k in ("held-out %", "BFCL Overall", "error_seeds", "total", "label corrections"):
            out[f"iter {doc.get('iteration')} {k}"] = flat[k]
    return out


FLIP_CELL_CHARS = 60  # an output in the compare table: its start (the CLI shows more)
FLIPS_ASKED = 20  # flipped entries per direction the screen asks the core for


def eval_compare_rows(result: dict) -> list[tuple[str, str, str, str]]:
    """A compare ack's result as (what, A, B, delta) rows: a row per category and the mean, then a row
    per flipped entry with the start of both outputs."""
    rows = [(f"{cat} (n={n})", a, b, f"{diff}  R->W {broke} W->R {fixed}")
            for cat, n, a, b, diff, broke, fixed in category_rows(result)]
    for key, arrow in (("right_to_wrong", "right -> wrong"), ("wrong_to_right", "wrong -> right")):
        flips = result.get(key) or {}
        more = flips.get("count", 0) - len(flips.get("entries") or [])
        rows.append((f"{arrow}: {flips.get('count', 0)}", "", "", f"(+{more} not listed)" if more > 0 else ""))
        for f in flips.get("entries") or []:
            rows.append((f"  {f['id']}", output_text(f["a"], FLIP_CELL_CHARS), output_text(f["b"], FLIP_CELL_CHARS),
                         arrow))
    for key, label in (("only_in_a", "only in A"), ("only_in_b", "only in B")):
        if (result.get(key) or {}).get("count"):
            rows.append((label, str(result[key]["count"]), "", ", ".join(result[key]["ids"][:5])))
    return rows


def side_by_side(a: dict[str, str], b: dict[str, str]) -> list[tuple[str, str, str, str]]:
    rows = []
    for key in list(a) + [k for k in b if k not in a]:
        va, vb = a.get(key, "-"), b.get(key, "-")
        try:
            delta = f"{float(vb.replace(',', '')) - float(va.replace(',', '')):+.4g}"
        except ValueError:
            delta = ""
        rows.append((key, va, vb, delta))
    return rows


class HistoryScreen(Screen):
    DEFAULT_CSS = """
    HistoryScreen #history-status { height: 1; padding: 0 1; background: $panel; }
    HistoryScreen DataTable { height: 1fr; border: round $primary; }
    HistoryScreen #history-top { height: 1fr; }
    HistoryScreen #history-bottom { height: 1fr; }
    """
    BINDINGS = [Binding("escape", "back", "Back", id="history-back"),
                Binding("space", "mark", "Mark", id="history-mark"),
                Binding("c", "compare", "Compare marked", id="history-compare"),
                Binding("ctrl+r", "reload", "Reload", id="history-reload")]

    def __init__(self, link) -> None:
        super().__init__()
        self.link = link
        self.runs: list[dict] = []
        self.iterations: dict[str, list[dict]] = {}  # run_id -> iteration docs
        self.evals: dict[str, list[dict]] = {}
        self.open_run: str | None = None
        self.marked_runs: list[str] = []
        self.marked_iters: list[str] = []
        self.marked_evals: list[str] = []
        self._pending: dict[str, tuple[str, str | None]] = {}  # command id -> (table, run_id)

    def compose(self) -> ComposeResult:
        yield Label("history: asking the core ...", id="history-status")
        with Horizontal(id="history-top"):
            yield DataTable(id="runs", cursor_type="row", zebra_stripes=True)
            yield DataTable(id="evals", cursor_type="row", zebra_stripes=True)
        with Horizontal(id="history-bottom"):
            yield DataTable(id="iterations", cursor_type="row", zebra_stripes=True)
            yield DataTable(id="compare", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        runs = self.query_one("#runs", DataTable)
        runs.border_title = "Runs (enter: open, space: mark, c: compare 2)"
        for col in ("✓", "run", "state", "iters", "model", "updated"):
            runs.add_column(col, key=col)
        its = self.query_one("#iterations", DataTable)
        its.border_title = "Iterations of the open run (space: mark, c: compare 2)"
        for col in ("✓", "iter", "held-out", "%", "BFCL Overall", "ES", "EE", "HPPL", "fresh", "relabel"):
            its.add_column(col, key=col)
        ev = self.query_one("#evals", DataTable)
        ev.border_title = "Evals of the open run (space: mark, c: compare 2)"
        for col in ("✓", "eval", "iter", "held-out", "Overall"):
            ev.add_column(col, key=col)
        cmp_ = self.query_one("#compare", DataTable)
        cmp_.border_title = "Side by side"
        for col in ("metric", "A", "B", "Δ"):
            cmp_.add_column(col, key=col)
        runs.focus()
        self.action_reload()

    # -- asking the core ------------------------------------------------------------------------

    def ask(self, table: str, run_id: str | None = None) -> None:
        args = {"table": table, "run_id": run_id, "limit": 200}
        try:
            pc = self.link.send("history", args, on_update=lambda c: self.post_message(HistoryReply(c)))
        except LinkError as e:
            self.status(f"history unavailable: {e}")
            return
        self._pending[pc.id] = (table, run_id)
        self.status(f"asking the core for {table}{' of ' + run_id if run_id else ''} ...")

    def on_history_reply(self, msg: HistoryReply) -> None:
        pc = msg.command
        if pc.id not in self._pending:
            return
        table, run_id = self._pending[pc.id]
        if pc.state in ("pending", "accepted"):
            return
        del self._pending[pc.id]
        if pc.state != "done":
            self.status(f"{'' if table == 'compare' else 'history '}{table}: {pc.state}"
                        f"{' - ' + pc.detail if pc.detail else ''}")
            return
        if table == "compare":
            self.show_eval_compare(pc.result if isinstance(pc.result, dict) else {}, pc.detail)
            return
        rows = history_rows(pc.result)
        if table == "runs":
            self.runs = rows
            self.fill_runs()
        elif table == "iterations":
            self.iterations[run_id] = rows
            if run_id == self.open_run:
                self.fill_iterations()
            self.maybe_compare_runs()
        elif table == "evals":
            self.evals[run_id] = rows
            if run_id == self.open_run:
                self.fill_evals()
        self.status(f"{table}: {len(rows)} row(s) from the core")

    # -- tables ---------------------------------------------------------------------------------

    def fill_runs(self) -> None:
        t = self.query_one("#runs", DataTable)
        t.clear()
        for r in self.runs:
            rid = str(r.get("run_id", "?"))
            t.add_row("✓" if rid in self.marked_runs else "", rid, str(r.get("state", "")),
                      str(r.get("iterations", "")), str(r.get("model", "")),
                      str(r.get("updated_at", ""))[:19], key=rid)

    def fill_iterations(self) -> None:
        t = self.query_one("#iterations", DataTable)
        t.clear()
        for doc in sorted(self.iterations.get(self.open_run, []), key=lambda d: d.get("iteration", 0)):
            flat = flatten_iteration(doc)
            key = str(doc.get("iteration"))
            overall = flat["BFCL Overall"] + (" (partial)" if flat["BFCL categories"].startswith("partial") else "")
            t.add_row("✓" if key in self.marked_iters else "", key, flat["held-out"], flat["held-out %"], overall,
                      flat["error_seeds"], flat["expansions"], flat["high_ppl"], flat["fresh_seeds"],
                      flat["label corrections"], key=key)

    def fill_evals(self) -> None:
        t = self.query_one("#evals", DataTable)
        t.clear()
        for e in self.evals.get(self.open_run, []):
            scores = e.get("scores") if isinstance(e.get("scores"), dict) else {}
            held = None if str(e.get("benchmark", "")).startswith("ace") else heldout_of(e)
            eid = str(e.get("eval_id", "?"))
            t.add_row("✓" if eid in self.marked_evals else "", eid, str(e.get("iteration", "-")),
                      f"{held.correct}/{held.total} {pct(held.accuracy)}%" if held else "-",
                      pct(scores.get("overall")) + (" (partial)" if held and held.partial else ""), key=eid)

    def status(self, text: str) -> None:
        self.query_one("#history-status", Label).update(text)

    # -- actions --------------------------------------------------------------------------------

    def action_reload(self) -> None:
        self.ask("runs")

    def action_back(self) -> None:
        self.app.pop_screen()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id == "runs" and event.row_key.value:
            self.open(event.row_key.value)

    def open(self, run_id: str) -> None:
        self.open_run = run_id
        self.marked_iters.clear()
        self.marked_evals.clear()
        self.query_one("#iterations", DataTable).border_title = f"Iterations of {run_id} (space: mark, c: compare 2)"
        self.query_one("#evals", DataTable).border_title = f"Evals of {run_id} (space: mark, c: compare 2)"
        self.fill_iterations()
        self.ask("iterations", run_id)
        self.ask("evals", run_id)

    def action_mark(self) -> None:
        focused = self.focused
        if not isinstance(focused, DataTable) or focused.id not in ("runs", "iterations", "evals") \
                or not focused.row_count:
            return
        key = focused.coordinate_to_cell_key(focused.cursor_coordinate).row_key.value
        marks, fill = {"runs": (self.marked_runs, self.fill_runs), "iterations": (self.marked_iters, self.fill_iterations),
                       "evals": (self.marked_evals, self.fill_evals)}[focused.id]
        if key in marks:
            marks.remove(key)
        else:
            marks.append(key)
            del marks[:-2]  # keep the last two
        fill()
        focused.move_cursor(row=focused.get_row_index(key))

    def action_compare(self) -> None:
        focused = self.focused.id if isinstance(self.focused, DataTable) else None
        if focused == "evals" or (len(self.marked_evals) == 2 and focused not in ("runs", "iterations")):
            if len(self.marked_evals) != 2:
                self.status("mark two evals with space first")
                return
            self.ask_compare(*self.marked_evals)
            return
        focused_iters = focused == "iterations"
        if focused_iters or (len(self.marked_iters) == 2 and len(self.marked_runs) != 2):
            if len(self.marked_iters) != 2:
                self.status("mark two iterations with space first")
                return
            docs = {str(d.get("iteration")): d for d in self.iterations.get(self.open_run, [])}
            a, b = self.marked_iters
            self.show_compare(f"iter {a}", f"iter {b}", flatten_iteration(docs.get(a, {})),
                              flatten_iteration(docs.get(b, {})))
            return
        if len(self.marked_runs) != 2:
            self.status("mark two runs (or two iterations) with space first")
            return
        for rid in self.marked_runs:
            if rid not in self.iterations:
                self.ask("iterations", rid)
        self.maybe_compare_runs(force_status=True)

    def maybe_compare_runs(self, force_status: bool = False) -> None:
        if len(self.marked_runs) != 2 or any(r not in self.iterations for r in self.marked_runs):
            return
        a, b = self.marked_runs
        self.show_compare(a, b, flatten_run(self.iterations[a]), flatten_run(self.iterations[b]))

    def ask_compare(self, a: str, b: str) -> None:
        """The core compares eval B with eval A from its store and their records (`compare` verb)."""
        try:
            pc = self.link.send("compare", {"a": a, "b": b, "limit": FLIPS_ASKED},
                                on_update=lambda c: self.post_message(HistoryReply(c)))
        except LinkError as e:
            self.status(f"compare unavailable: {e}")
            return
        self._pending[pc.id] = ("compare", None)
        self.status(f"asking the core to compare {b} with {a} ...")

    def show_eval_compare(self, result: dict, detail: str) -> None:
        t = self.query_one("#compare", DataTable)
        t.clear()
        if not result.get("a") or not result.get("b"):
            self.status(f"compare: the core's answer has no comparison ({detail})")
            return
        t.border_title = f"Evals: A = {eval_label(result['a'])}, B = {eval_label(result['b'])}; B - A [95 %]"
        for row in eval_compare_rows(result):
            t.add_row(*row)
        warn = "; ".join(result.get("warnings") or [])
        self.status(f"compare: {detail}" + (f" ({warn})" if warn else ""))

    def show_compare(self, label_a: str, label_b: str, a: dict, b: dict) -> None:
        t = self.query_one("#compare", DataTable)
        t.clear()
        t.border_title = f"Side by side: A = {label_a}, B = {label_b}"
        for row in side_by_side(a, b):
            t.add_row(*row)
        self.status(f"comparing {label_a} with {label_b}")
