"""`x`: an iteration's examples, asked of the core a page at a time (`samples` command).

The console never opens a run's files: each page is the ack result of a `samples` command, which the core
answers from the run directory with a bounded page (core.samples). Pick the stage, the iteration and
`key=value` filters at the top (enter asks again); the table lists the page's rows; the selected row's two
sides (label | prediction, seed | expansion, raw reply | decoded) are shown next to each other with the
judge's reason or the eval's error below. `n` / `b` turn the page, `o` asks for the selected sample's
prompt as the policy saw it (again: back to the two sides).
"""
from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Label, Select, Static

from console.link import LinkError, PendingCommand
from core.busproto import MAX_SAMPLES_LIMIT, SAMPLE_STAGES

PAGE = 20
STAGE_HINTS = {  # the filter keys the core accepts per stage (core.samples.FILTERS)
    "probe": "e.g. failure=no_call kind=simple mastered=false",
    "judge": "e.g. verdict=LABEL_WRONG by=rule",
    "expand": "e.g. seed=syn-0-67 variation=persona",
    "eval": "e.g. category=simple_python error_type=ast_decoder valid=false",
}


class SamplesReply(Message):
    def __init__(self, command: PendingCommand) -> None:
        super().__init__()
        self.command = command


def parse_filter_text(text: str) -> dict[str, str]:
    """`key=value key2=value2` (spaces or commas between) -> {key: value}; ValueError naming a bad pair."""
    out: dict[str, str] = {}
    for pair in text.replace(",", " ").split():
        key, sep, value = pair.partition("=")
        if not sep or not key or not value:
            raise ValueError(f"filter {pair!r}: expected key=value")
        out[key] = value
    return out


class SamplesScreen(Screen):
    DEFAULT_CSS = """
    SamplesScreen #samples-status { height: 1; padding: 0 1; background: $panel; }
    SamplesScreen #samples-controls { height: 3; }
    SamplesScreen #samples-stage { width: 16; }
    SamplesScreen #samples-iteration { width: 14; }
    SamplesScreen #samples-filter { width: 1fr; }
    SamplesScreen DataTable { height: 1fr; border: round $primary; }
    SamplesScreen #samples-sides { height: 1fr; }
    SamplesScreen #samples-sides VerticalScroll { width: 1fr; border: round $secondary; }
    SamplesScreen #samples-detail { height: auto; max-height: 5; padding: 0 1; color: $text-muted; }
    SamplesScreen #samples-prompt-box { height: 1fr; border: round $accent; display: none; }
    """
    BINDINGS = [Binding("escape", "back", "Back", id="samples-back"),
                Binding("n", "next_page", "Next page", id="samples-next"),
                Binding("b", "previous_page", "Previous page", id="samples-previous"),
                Binding("o", "prompt", "Prompt", id="samples-prompt"),
                Binding("ctrl+r", "reload", "Reload", id="samples-reload")]

    def __init__(self, link, iteration: int = 1, stage: str = "probe") -> None:
        super().__init__()
        self.link = link
        self.iteration = iteration
        self.stage = stage
        self.filters: dict[str, str] = {}
        self.first_row = 0
        self.page: dict | None = None  # the last page the core sent
        self.rows: list[dict] = []
        self._pending: dict[str, str] = {}  # command id -> "page" | "prompt"
        self.prompt_shown = False

    def compose(self) -> ComposeResult:
        yield Label("examples: asking the core ...", id="samples-status")
        with Horizontal(id="samples-controls"):
            yield Select([(s, s) for s in SAMPLE_STAGES], value=self.stage, allow_blank=False, id="samples-stage")
            yield Input(str(self.iteration), placeholder="iteration", type="integer", id="samples-iteration")
            yield Input(placeholder=STAGE_HINTS[self.stage], id="samples-filter")
        yield DataTable(id="samples-table", cursor_type="row", zebra_stripes=True)
        with Horizontal(id="samples-sides"):
            with VerticalScroll(id="samples-left-box"):
                yield Static("", id="samples-left", markup=False)
            with VerticalScroll(id="samples-right-box"):
                yield Static("", id="samples-right", markup=False)
        with VerticalScroll(id="samples-prompt-box"):
            yield Static("", id="samples-prompt", markup=False)
        yield Static("", id="samples-detail", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#samples-prompt-box").border_title = "Prompt (o: back to the sides)"
        self.query_one(DataTable).focus()
        self.ask()

    # -- asking the core ------------------------------------------------------------------------

    def _send(self, args: dict, kind: str) -> bool:
        try:
            pc = self.link.send("samples", args, on_update=lambda c: self.post_message(SamplesReply(c)))
        except LinkError as e:
            self.status(f"examples unavailable: {e}")
            return False
        self._pending[pc.id] = kind
        return True

    def ask(self) -> None:
        args = {"iteration": self.iteration, "stage": self.stage, "offset": self.first_row,
                "limit": min(PAGE, MAX_SAMPLES_LIMIT)}
        if self.filters:
            args["filters"] = self.filters
        if self._send(args, "page"):
            self.status(f"asking the core for iteration {self.iteration} {self.stage} from row {self.first_row + 1} ...")

    def on_samples_reply(self, msg: SamplesReply) -> None:
        pc = msg.command
        kind = self._pending.get(pc.id)
        if kind is None or pc.state in ("pending", "accepted"):
            return
        del self._pending[pc.id]
        if pc.state != "done" or not isinstance(pc.result, dict):
            self.status(f"examples: {pc.state}{' - ' + pc.detail if pc.detail else ''}")
            return
        if kind == "page":
            self.show_page(pc.result)
        else:
            self.show_prompt(pc.result)

    # -- drawing --------------------------------------------------------------------------------

    def show_page(self, page: dict) -> None:
        self.page = page
        self.rows = [r for r in page.get("rows", []) if isinstance(r, dict)]
        columns = [str(c) for c in page.get("columns", [])]
        sides = [str(s) for s in page.get("sides", ["left", "right"])][:2]
        t = self.query_one(DataTable)
        t.clear(columns=True)
        for col in columns:
            t.add_column(col, key=col)
        for i, row in enumerate(self.rows):
            t.add_row(*(Text(_cell(row.get(c))) for c in columns), key=str(i))
        total, offset = page.get("total", 0), page.get("offset", 0)
        shown = f"{offset + 1}-{offset + len(self.rows)}" if self.rows else "none"
        t.border_title = f"iteration {page.get('iteration')} {page.get('stage')}: {shown} of {total}" + (
            f" ({' '.join(f'{k}={v}' for k, v in page.get('filters', {}).items())})" if page.get("filters") else "")
        self.query_one("#samples-left-box").border_title = sides[0]
        self.query_one("#samples-right-box").border_title = sides[-1]
        self.show_sides(True)
        self.show_row(0)
        more = "n: next page" if offset + len(self.rows) < total else "last page"
        self.status(f"{len(self.rows)} of {total} row(s) from the core; {more}, b: previous, o: prompt")

    def show_row(self, index: int) -> None:
        row = self.rows[index] if 0 <= index < len(self.rows) else {}
        self.query_one("#samples-left", Static).update(Text(str(row.get("left", ""))))
        self.query_one("#samples-right", Static).update(Text(str(row.get("right", ""))))
        self.query_one("#samples-detail", Static).update(Text(str(row.get("detail", ""))))

    def show_prompt(self, reply: dict) -> None:
        text = reply.get("prompt")
        body = text if isinstance(text, str) else f"(no prompt) {reply.get('note', '')}"
        self.query_one("#samples-prompt", Static).update(Text(body))
        self.query_one("#samples-prompt-box").border_title = (
            f"Prompt of {reply.get('id')} ({reply.get('mode', '-')} mode; o: back to the sides)")
        self.show_sides(False)
        self.status(f"prompt of {reply.get('id')}: {reply.get('note', '')}")

    def show_sides(self, sides: bool) -> None:
        self.prompt_shown = not sides
        self.query_one("#samples-sides").display = sides
        self.query_one("#samples-prompt-box").display = not sides

    def status(self, text: str) -> None:
        self.query_one("#samples-status", Label).update(Text(text))

    def selected(self) -> dict | None:
        t = self.query_one(DataTable)
        if not self.rows or not t.row_count:
            return None
        return self.rows[min(t.cursor_row, len(self.rows) - 1)]

    # -- events and actions ---------------------------------------------------------------------

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value is not None:
            self.show_row(int(event.row_key.value))

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "samples-stage" and event.value != self.stage:
            self.stage = str(event.value)
            self.query_one("#samples-filter", Input).placeholder = STAGE_HINTS.get(self.stage, "")
            self.apply()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.apply()
        self.query_one(DataTable).focus()

    def apply(self) -> None:
        """Read the controls and ask for the first page they describe."""
        raw_iter = self.query_one("#samples-iteration", Input).value.strip()
        try:
            self.filters = parse_filter_text(self.query_one("#samples-filter", Input).value)
            self.iteration = int(raw_iter) if raw_iter else self.iteration
        except ValueError as e:
            self.status(str(e))
            return
        self.first_row = 0
        self.ask()

    def action_next_page(self) -> None:
        if self.page and self.first_row + len(self.rows) < self.page.get("total", 0):
            self.first_row += len(self.rows)
            self.ask()
        else:
            self.status("this is the last page")

    def action_previous_page(self) -> None:
        if self.first_row > 0:
            self.first_row = max(0, self.first_row - PAGE)
            self.ask()
        else:
            self.status("this is the first page")

    def action_prompt(self) -> None:
        if self.prompt_shown:
            self.show_sides(True)
            return
        row = self.selected()
        if row is None:
            self.status("no row selected")
            return
        args = {"iteration": self.iteration, "stage": self.stage, "prompt_id": str(row.get("id"))}
        if self._send(args, "prompt"):
            self.status(f"asking the core for the prompt of {row.get('id')} ...")

    def action_reload(self) -> None:
        self.ask()

    def action_back(self) -> None:
        if self.prompt_shown:
            self.show_sides(True)
        else:
            self.app.pop_screen()


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)
