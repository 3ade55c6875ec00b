"""The operator console: a Textual app that watches one core and sends it commands.

It talks to the core only through a `console.link.Link` (MQTT in use, in memory in tests): the
link's worker runs on the app's loop and posts typed messages (console.messages); handlers fold
them into reactives and widgets. High-rate telemetry is coalesced twice: the link posts one
`MetricsReceived` until the UI releases it, and the panels are redrawn by a 4 Hz timer in one
`batch_update`, so 1,000 messages/s cost the UI a handful of redraws per second.

Keys (ids in console/keymap.py, rebindable in $LOOPTOOL_HOME/keymap.toml): p pause/resume,
e evaluate, s stop (confirm), r runs history, x an iteration's examples, / filter events, ? help, q detach (never stops the
core). Every action is in the command palette too. `read_only` hides the command actions and the
link refuses to publish anything.
"""
from __future__ import annotations

import gc
from functools import partial
from typing import Iterable

from textual import work
from textual.worker import Worker, WorkerState
from textual.app import App, ComposeResult, SystemCommand
from textual.command import CommandPalette
from textual.containers import Horizontal
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Footer, Input, Label, ProgressBar

from console.keymap import BINDINGS
from console.link import Link, LinkError
from console.messages import (BadMessage, BusConnectionChanged, CommandUpdated, CoreOnlineChanged, EventRaised,
                              MetricsReceived, StatusChanged)
from console.screens.confirm import ConfirmScreen
from console.screens.evaluate import EvaluateScreen
from console.screens.help import HelpScreen
from console.screens.history import HistoryScreen
from console.screens.samples import SamplesScreen
from console.widgets.eventlog import EventLog
from console.widgets.header import CoreHeader
from console.widgets.panels import AccuracyPanel, CommandsPanel, DataPanel, HardwarePanel, ThroughputPanel

COMMAND_ACTIONS = ("toggle_pause", "evaluate", "stop", "history", "examples")
TERMINAL = ("stopped", "finished", "failed")
PALETTE = [  # (action, title, help)
    ("toggle_pause", "Pause / resume the run", "Pause at the next safe point, or resume (p)"),
    ("evaluate", "Evaluate a checkpoint", "BFCL-v3 or ACEBench on a chosen iteration's weights (e)"),
    ("stop", "Stop the run", "Ask the core to stop at the next safe point, after a confirmation (s)"),
    ("history", "Runs history", "Runs, iterations and evals from the core's store; compare two (r)"),
    ("examples", "Examples of an iteration", "Probe failures, judge verdicts, expansions, eval records, "
     "a page at a time from the core (x)"),
    ("focus_filter", "Filter the event log", "Type words that every shown event must contain (/)"),
    ("help", "Keys", "List every key binding (?)"),
    ("detach", "Detach", "Leave the console; the core keeps running (q)"),
]


class LoopConsole(App):
    TITLE = "looptool console"
    CSS = """
    Screen { layout: vertical; }
    #progress-row { height: 1; padding: 0 1; }
    #progress-label { width: 44; }
    #progress { width: 1fr; }
    #row-a, #row-b, #row-c { height: auto; }
    #row-a ThroughputPanel { width: 2fr; }
    #row-a HardwarePanel { width: 1fr; }
    #row-b AccuracyPanel { width: 1fr; }
    #row-c DataPanel { width: 2fr; }
    #row-c CommandsPanel { width: 1fr; height: 13; }
    """
    BINDINGS = BINDINGS
    ENABLE_COMMAND_PALETTE = True
    AUTO_FOCUS = None  # keys go to the app; tables and the filter take focus when asked

    connected = reactive(False, bindings=True)
    core_online: reactive[bool | None] = reactive(None, bindings=True)
    stale = reactive(False)
    paused = reactive(False, bindings=True)
    state = reactive("unknown", bindings=True)

    def __init__(self, link: Link, *, keymap: dict[str, str] | None = None, stale_after: float = 30.0,
                 redraw_hz: float = 4.0, ask_history: bool = True) -> None:
        super().__init__()
        self.link = link
        self.read_only = link.read_only
        self.stale_after = stale_after
        self.redraw_hz = redraw_hz
        self.ask_history = ask_history
        self._user_keymap = dict(keymap or {})
        self._metrics_dirty = False
        self._progress_dirty = False
        self._progress_text = ""
        self._drawn_version = -1
        self._history_asked_for: str | None = None

    # -- layout -------------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield CoreHeader(id="header")
        with Horizontal(id="progress-row"):
            yield Label("waiting for the core", id="progress-label")
            yield ProgressBar(id="progress", show_eta=False)
        with Horizontal(id="row-a"):
            yield ThroughputPanel(id="throughput")
            yield HardwarePanel(id="hardware")
        with Horizontal(id="row-b"):
            yield AccuracyPanel(id="accuracy")
        with Horizontal(id="row-c"):
            yield DataPanel(id="data")
            yield CommandsPanel(id="commands")
        yield EventLog(id="events")
        yield Footer()

    def on_mount(self) -> None:
        if self._user_keymap:
            self.set_keymap(self._user_keymap)
        self.link.attach(self.post_message)
        self.run_link()
        self.set_interval(1 / self.redraw_hz, self.redraw)
        self.set_interval(0.5, self.tick)
        self.show_header()
        self.query_one("#progress", ProgressBar).display = False
        self.query_one(CommandsPanel).show([], self.read_only)
        self.call_after_refresh(self._freeze_heap)

    @staticmethod
    def _freeze_heap() -> None:
        """Leave the objects the console starts with (Textual, Rich, pydantic, the widgets: most of the
        heap) out of every later garbage collection: a full collection walks every tracked object, and a
        1,000 msg/s flood brought 14-16 of them in 30 s at up to 230-290 ms each, a key press waiting
        behind them (bench/console_flood.py: key -> screen p95 8.0 ms frozen, 23.4 ms not). Undone on
        unmount."""
        gc.collect()
        gc.freeze()

    @work(exclusive=True, group="link", exit_on_error=False, description="bus link")
    async def run_link(self) -> None:
        await self.link.run()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group == "link" and event.state == WorkerState.ERROR:
            err = event.worker.error
            self.link.telemetry.note("link", f"the bus link stopped: {err}", "error")
            self.query_one(EventLog).drain(self.link.telemetry)
            self.notify(f"the bus link stopped: {err}", severity="error", timeout=30)

    async def on_unmount(self) -> None:
        gc.unfreeze()
        await self.link.close()

    # -- link messages ------------------------------------------------------------------------------

    def on_status_changed(self, msg: StatusChanged) -> None:
        st = self.link.status
        self.link.release("status")
        if st is None:
            return
        with self.batch_update():
            self.state = st.state
            self.paused = st.paused or st.state == "paused"
            self.stale = self.link.is_stale(self.stale_after)
            self.show_header()  # redrawn only when what it says changed
        self._progress_dirty = True  # progress numbers move with every status: drawn by the timer
        if self.ask_history and st.run_id and st.run_id != self._history_asked_for and self.connected \
                and not self.read_only:
            # attached late: the per-iteration tables come from the core's store
            self._history_asked_for = st.run_id
            try:
                self.link.send("history", {"table": "iterations", "run_id": st.run_id})
            except LinkError:
                self._history_asked_for = None

    def on_metrics_received(self, msg: MetricsReceived) -> None:
        self._metrics_dirty = True  # drawn by the redraw timer, which releases the link

    def on_event_raised(self, msg: EventRaised) -> None:
        self.link.release("events")
        self.query_one(EventLog).drain(self.link.telemetry)
        if msg.event.event in ("error", "run_failed"):
            self.notify(f"core: {msg.event.event}", severity="error", timeout=10)
        elif msg.event.event == "fault":  # the core paused itself: say why and what to do
            why = (msg.event.model_extra or {}).get("message", "")
            self.notify(f"core paused: {why} -- fix it, then resume (p)",
                        severity="error", timeout=60)
        self._metrics_dirty = True  # stage_finished events carry composition and scores

    def on_bad_message(self, msg: BadMessage) -> None:
        self.link.release("bad")
        self.query_one(EventLog).drain(self.link.telemetry)

    def on_command_updated(self, msg: CommandUpdated) -> None:
        pc = msg.command
        with self.batch_update():
            self.query_one(CommandsPanel).show(self.link.commands.values(), self.read_only)
            self.query_one(EventLog).drain(self.link.telemetry)
            if pc.state in ("rejected", "failed", "unconfirmed") and pc.verb != "history":
                self.notify(pc.describe(), severity="warning" if pc.state == "unconfirmed" else "error")
            self._metrics_dirty = self._metrics_dirty or pc.verb == "history"
        self.refresh_bindings()

    def on_bus_connection_changed(self, msg: BusConnectionChanged) -> None:
        self.connected = msg.connected
        if not msg.connected:
            self._history_asked_for = None
        self.query_one(EventLog).drain(self.link.telemetry)

    def on_core_online_changed(self, msg: CoreOnlineChanged) -> None:
        self.core_online = msg.online
        self.query_one(EventLog).drain(self.link.telemetry)

    def watch_connected(self) -> None:
        self.show_header()

    def watch_core_online(self) -> None:
        self.show_header()

    def watch_stale(self) -> None:
        self.show_header()

    # -- drawing ------------------------------------------------------------------------------------

    def show_header(self) -> None:
        if not self.is_mounted:
            return
        self.query_one(CoreHeader).show(self.link.core_id, self.link.status, connected=self.connected,
                                        online=self.core_online, stale=self.stale, read_only=self.read_only)

    def show_progress(self, st) -> None:
        """The stage's progress bar, tokens/s and ETA: the core's own estimates (progress.tok_s, eta_s)."""
        label = self.query_one("#progress-label", Label)
        bar = self.query_one("#progress", ProgressBar)
        p = st.progress
        if p is None or not p.total:
            text = f"{st.stage or st.state}"
            if bar.display:
                bar.display = False
        else:
            if not bar.display:
                bar.display = True
            bar.update(total=p.total, progress=p.done)
            text = f"{p.stage or st.stage} {p.done:,}/{p.total:,}"
            tok_s = getattr(p, "tok_s", None)
            if isinstance(tok_s, (int, float)):
                text += f"  {tok_s:,.0f} tok/s"
            eta = getattr(p, "eta_s", None)
            if isinstance(eta, (int, float)):  # None until the core knows enough (core/eta.py)
                text += f"  ETA {_eta(eta)}"
        if text != self._progress_text:
            self._progress_text = text
            label.update(text, layout=False)  # fixed width

    def redraw(self) -> None:
        """Timer: redraw the telemetry panels when something changed; then take the next metrics."""
        if not self.is_running:
            return  # shutting down: the timer can still fire while the dashboard's widgets are removed
        tel = self.link.telemetry
        if self._progress_dirty and self.link.status is not None:
            self._progress_dirty = False
            self.show_progress(self.link.status)
        if self._metrics_dirty or tel.version != self._drawn_version:
            self._metrics_dirty = False
            self._drawn_version = tel.version
            with self.batch_update():
                self.query_one(ThroughputPanel).show(tel)
                self.query_one(HardwarePanel).show(tel)
                self.query_one(AccuracyPanel).show(tel)
                self.query_one(DataPanel).show(tel)
        self.link.release("metrics")

    def tick(self) -> None:
        """Timer: commands without an ack become `unconfirmed`; a status that stopped moving is `stale`."""
        self.link.expire()
        stale = self.link.is_stale(self.stale_after)
        if stale != self.stale:
            self.stale = stale
            if stale:
                self.notify(f"no status from core {self.link.core_id} for {self.stale_after:g}s", severity="warning")

    # -- actions ------------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in COMMAND_ACTIONS:
            if self.read_only:
                return False
            if not self.on_dashboard():
                return False  # a dialog or the history screen is on top
            if not self.connected or self.core_online is False:
                return None
            stopping = self.state == "stopping" or any(
                c.verb == "stop" and c.state in ("pending", "accepted") for c in self.link.commands.values())
            if action in ("toggle_pause", "stop") and (self.state in TERMINAL or stopping):
                return None
            if action == "evaluate" and stopping:
                return None
        if action == "focus_filter" and not self.on_dashboard():
            return False
        return True

    def on_dashboard(self) -> bool:
        """Nothing but the command palette is over the dashboard."""
        return all(isinstance(s, CommandPalette) for s in self.screen_stack[1:])

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for action, title, help_text in PALETTE:
            if self.check_action(action, ()):
                yield SystemCommand(title, help_text, partial(self.run_action, action))

    def _send(self, verb: str, args: dict | None = None) -> None:
        try:
            pc = self.link.send(verb, args)
        except LinkError as e:
            self.notify(str(e), severity="error")
            return
        self.notify(f"{verb}: sent, waiting for the core's ack", timeout=3)
        del pc

    def action_toggle_pause(self) -> None:
        self._send("resume" if self.paused else "pause")

    def action_evaluate(self) -> None:
        st = self.link.status
        self.push_screen(EvaluateScreen(latest_iteration=st.iteration if st else None), self._eval_chosen)

    def _eval_chosen(self, args: dict | None) -> None:
        if args is not None:
            self._send("eval", args)

    def action_stop(self) -> None:
        st = self.link.status
        run = st.run_id if st and st.run_id else "the run"
        resume = st.run_id if st and st.run_id else "RUN_ID"
        if st is not None and st.state == "finished":  # the core stays up after its run (looptool run)
            self.push_screen(ConfirmScreen(f"Stop core {self.link.core_id}?",
                                           f"{run} has finished; the core is serving history, on-demand evals "
                                           "and export. Stopping it ends that (the results stay in the "
                                           f"store; `looptool export {resume}` works without a core).",
                                           yes="Stop core"), self._stop_confirmed)
            return
        self.push_screen(ConfirmScreen(f"Stop {run}?",
                                       "The core stops at the next safe point (training saves a checkpoint "
                                       f"first).\nContinue it later with: looptool core --resume {resume}",
                                       yes="Stop"),
                         self._stop_confirmed)

    def _stop_confirmed(self, yes: bool | None) -> None:
        if yes:
            self._send("stop")

    def action_history(self) -> None:
        self.push_screen(HistoryScreen(self.link))

    def action_examples(self) -> None:
        st = self.link.status
        # the iteration before the current one: its probe, judge and expansions are complete
        self.push_screen(SamplesScreen(self.link, iteration=max(1, st.iteration - 1) if st else 1))

    def action_help(self) -> None:
        self.push_screen(HelpScreen(read_only=self.read_only))

    def action_focus_filter(self) -> None:
        self.query_one("#event-filter", Input).focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "event-filter":
            self.query_one(EventLog).refilter(self.link.telemetry, event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "event-filter":
            self.screen.set_focus(None)

    async def action_detach(self) -> None:
        await self.link.close()
        self.exit(result="detached")


def _eta(seconds) -> str:
    if not isinstance(seconds, (int, float)) or seconds < 0:
        return "--:--"
    m, s = divmod(int(seconds + 0.5), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def reattach_hint(core_id: str, pid: int | None = None, finished_run: str | None = None) -> str:
    stop = f"kill -TERM {pid}" if pid else "press s in the console"
    head = (f"detached; core {core_id} finished run {finished_run} and keeps serving (history, evals, "
            f"looptool export {finished_run}).\n" if finished_run else f"detached; core {core_id} keeps running.\n")
    return (head + f"  reattach: looptool console --core-id {core_id}\n"
            f"  stop it:  looptool stop --core-id {core_id}  (or s in the console, or {stop})")


def exit_message(link: Link, pid: int | None = None) -> str:
    """What to print when the console ends: how to reattach, or that the core is gone."""
    st = link.status
    if link.core_online is False or (st is not None and st.state in TERMINAL and not link.connected):
        run = st.run_id if st is not None else None
        state = st.state if st is not None else "unknown"
        msg = f"core {link.core_id} is not running any more (run {run or '?'}: {state})."
        if run and state in ("stopped", "failed"):
            msg += f"\n  continue the run: looptool core --resume {run}"
        return msg
    finished = st.run_id if st is not None and st.state == "finished" else None
    return reattach_hint(link.core_id, pid, finished_run=finished)
