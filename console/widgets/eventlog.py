"""The event log: core events, acks and link notes, newest at the bottom, with a filter input.

The filter is a case-insensitive substring (several words: all must match), applied to the lines
kept in memory (the last 500) and to new ones as they arrive.
"""
from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Input, RichLog

from console.telemetry import LogLine, Telemetry

SEVERITY_STYLE = {"error": "bold red", "warning": "yellow", "information": ""}


class EventLog(Vertical):
    DEFAULT_CSS = """
    EventLog { height: 1fr; min-height: 6; border: round $primary; }
    EventLog Input { height: 1; border: none; padding: 0 1; background: $boost; }
    EventLog RichLog { height: 1fr; padding: 0 1; }
    """

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self._seen = 0  # telemetry.events_total already written
        self._words: list[str] = []

    def compose(self) -> ComposeResult:
        yield Input(placeholder="filter events (press / ) ...", id="event-filter")
        yield RichLog(id="event-log", max_lines=1000, wrap=False, markup=False, auto_scroll=True)

    def on_mount(self) -> None:
        self.border_title = "Events"

    def matches(self, line: LogLine) -> bool:
        text = f"{line.name} {line.text}".lower()
        return all(w in text for w in self._words)

    def drain(self, tel: Telemetry) -> int:
        """Write the lines that arrived since the last call; returns how many were new."""
        new = tel.events_total - self._seen
        if new <= 0:
            return 0
        self._seen = tel.events_total
        log = self.query_one(RichLog)
        lines = list(tel.events)[-min(new, len(tel.events)):]
        for line in lines:
            if self.matches(line):
                log.write(Text(line.render(), SEVERITY_STYLE.get(line.severity, "")))
        return new

    def refilter(self, tel: Telemetry, query: str) -> None:
        self._words = query.lower().split()
        log = self.query_one(RichLog)
        log.clear()
        self._seen = tel.events_total
        for line in tel.events:
            if self.matches(line):
                log.write(Text(line.render(), SEVERITY_STYLE.get(line.severity, "")))

    def visible_text(self) -> str:
        return "\n".join(strip.text for strip in self.query_one(RichLog).lines)
