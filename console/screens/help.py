"""`?`: every binding with the key it has now (after the user's keymap), plus the palette."""
from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from console.keymap import BINDINGS, keymap_path


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > Vertical { width: 76; height: auto; border: thick $primary; background: $surface; padding: 1 2; }
    """
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close", id="help-close")]

    def __init__(self, read_only: bool = False) -> None:
        super().__init__()
        self.read_only = read_only

    def compose(self) -> ComposeResult:
        keymap = getattr(self.app, "_keymap", {}) or {}
        self.rows = []
        for b in BINDINGS:
            note = " (disabled: read-only)" if self.read_only and b.id in ("pause", "evaluate", "stop",
                                                                          "history", "examples") else ""
            self.rows.append((_pretty(keymap.get(b.id, b.key)), b.id, DESCRIPTIONS.get(b.id, b.description) + note))
        self.rows.append(("ctrl+p", "", "command palette: every action above by name"))
        t = Table(box=None, show_header=True, header_style="bold")
        for col in ("key", "id", "does"):
            t.add_column(col)
        for row in self.rows:
            t.add_row(*row)
        with Vertical():
            yield Static("[b]looptool console: keys[/b]\n")
            yield Static(t, id="help-table")
            yield Static(f"\nRebind keys in {keymap_path()} as  binding_id = \"key\"  (e.g. pause = \"space\").\n"
                         "Detaching never stops the core. Esc closes this help.")

    async def action_dismiss(self, result=None) -> None:
        self.dismiss(None)


DESCRIPTIONS = {
    "pause": "pause the run at the next safe point, or resume it",
    "evaluate": "evaluate a checkpoint (BFCL-v3 or ACEBench) on the core",
    "stop": "stop the run (asks first; training saves a checkpoint)",
    "history": "runs, iterations and evals from the core's store; compare two",
    "examples": "an iteration's probe failures, judge verdicts, expansions and eval records, page by page",
    "filter": "filter the event log",
    "help": "this help",
    "detach": "leave the console; the core keeps running",
}


def _pretty(keys: str) -> str:
    names = {"question_mark": "?", "slash": "/", "space": "space"}
    return ",".join(names.get(k, k) for k in keys.split(","))
