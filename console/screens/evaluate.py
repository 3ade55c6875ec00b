"""`e`: ask the core to evaluate a checkpoint. Dismisses with EvalArgs as a dict, or None.

The arguments are checked with the core's own model (core.busproto.EvalArgs) before anything is
sent, so a bad value is reported in the dialog, next to the field, not by a rejected command.
"""
from __future__ import annotations

from pydantic import ValidationError
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select

from core.busproto import EvalArgs

BENCHMARKS = [("BFCL-v3", "bfcl"), ("ACEBench", "acebench")]
SUBSET_HINT = {"bfcl": "e.g. non_live, live, simple_python,multiple (empty: the run's held-out subset)",
               "acebench": "e.g. normal, special, agent (empty: the run's subset)"}


class EvaluateScreen(ModalScreen[dict | None]):
    DEFAULT_CSS = """
    EvaluateScreen { align: center middle; }
    EvaluateScreen > Vertical { width: 84; height: auto; border: thick $primary; background: $surface; padding: 1 2; }
    EvaluateScreen Grid { grid-size: 2; grid-columns: 18 1fr; grid-rows: 3; height: auto; }
    EvaluateScreen Grid Label { padding-top: 1; }
    EvaluateScreen #eval-error { color: $error; height: auto; }
    EvaluateScreen Horizontal { height: auto; align-horizontal: right; }
    EvaluateScreen Button { margin-left: 2; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="eval-cancel"),
                Binding("ctrl+s", "submit", "Run", id="eval-submit")]

    def __init__(self, latest_iteration: int | None = None) -> None:
        super().__init__()
        self.latest_iteration = latest_iteration

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("[b]Evaluate a checkpoint on the core[/b]")
            with Grid():
                yield Label("benchmark")
                yield Select(BENCHMARKS, value="bfcl", allow_blank=False, id="eval-benchmark")
                yield Label("subset")
                yield Input(placeholder=SUBSET_HINT["bfcl"], id="eval-subset")
                yield Label("per category")
                yield Input(placeholder="all entries (or N per category)", id="eval-per-category",
                            type="integer")
                yield Label("iteration")
                latest = "" if self.latest_iteration is None else f" (now {self.latest_iteration})"
                yield Input(placeholder=f"latest finished{latest}; 0 = base model", id="eval-iteration",
                            type="integer")
            yield Label("", id="eval-error")
            with Horizontal():
                yield Button("Cancel (esc)", id="cancel")
                yield Button("Evaluate (ctrl+s)", id="run", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#eval-benchmark", Select).focus()

    def on_select_changed(self, event: Select.Changed) -> None:
        self.query_one("#eval-subset", Input).placeholder = SUBSET_HINT.get(str(event.value), "")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "run":
            self.action_submit()
        else:
            self.action_cancel()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_submit()

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_submit(self) -> None:
        args = self.collect()
        if args is not None:
            self.dismiss(args)

    def collect(self) -> dict | None:
        """The validated arguments, or None after showing what is wrong."""
        raw = {"benchmark": self.query_one("#eval-benchmark", Select).value,
               "subset": self.query_one("#eval-subset", Input).value.strip() or None,
               "per_category": self.query_one("#eval-per-category", Input).value.strip() or None,
               "iteration": self.query_one("#eval-iteration", Input).value.strip() or None}
        try:
            args = EvalArgs.model_validate(raw)
        except ValidationError as e:
            err = e.errors()[0]
            field = ".".join(str(p) for p in err["loc"]).replace("_", " ")
            self.query_one("#eval-error", Label).update(f"{field}: {err['msg']}")
            return None
        return args.model_dump(exclude_none=True)
