"""The top line: core, run, iteration j of N, stage, state, and the link's health."""
from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

STATE_STYLE = {"running": "bold green", "paused": "bold yellow", "evaluating": "bold cyan",
               "starting": "cyan", "stopping": "bold yellow", "stopped": "bold magenta",
               "finished": "bold blue", "failed": "bold red"}


class CoreHeader(Static):
    DEFAULT_CSS = """
    CoreHeader { height: 1; width: 100%; background: $panel; padding: 0 1; }
    """
    _shown = None

    def show(self, core_id: str, status, *, connected: bool, online: bool | None, stale: bool,
             read_only: bool) -> None:
        t = Text()
        t.append("looptool ", "bold")
        t.append(f"core {core_id}")
        if status is not None:
            t.append(f" │ run {status.run_id or '-'}")
            t.append(f" │ iteration {status.iteration} of {status.iterations}")
            t.append(f" │ stage {status.stage or '-'}")
            t.append(" │ ")
            t.append(status.state.upper(), STATE_STYLE.get(status.state, "bold"))
        else:
            t.append(" │ waiting for the core's status")
        t.append(" │ ")
        if not connected:
            t.append("● DISCONNECTED", "bold red")
        elif online is False:
            t.append("● CORE OFFLINE", "bold red")
        elif stale:
            t.append("● STALE", "bold yellow")
        else:
            t.append("● live", "green")
        if read_only:
            t.append(" │ ")
            t.append("READ-ONLY", "reverse")
        if t != self._shown:  # one line of fixed size: no layout pass needed
            self._shown = t
            self.update(t, layout=False)
