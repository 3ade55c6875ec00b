"""The console against a real broker (looptool's embedded amqtt broker on loopback) and a small
publisher that plays the core's side of the bus contract: retained online/status, acks on reply_to,
status and events after each command. Console and core exchange pause/resume/eval/history with acks;
a read-only console puts nothing at all on the broker; a detach clears the console's presence."""
from __future__ import annotations

import asyncio

from brokers import ThreadedEmbeddedBroker, embedded_broker, run_async  # noqa: F401
from textual.widgets import DataTable, Input

from console.app import LoopConsole
from console.link import MqttLink
from console.screens.evaluate import EvaluateScreen
from console.screens.history import HistoryScreen
from core import busproto as bp
from core.bus import BusClient

SIZE = (140, 45)


class PlayedCore:
    """The core side, as core/daemon.py speaks it, reduced to what the console exercises."""

    def __init__(self, url: str, core_id: str):
        self.core_id = core_id
        self.bus = BusClient(url, f"core-{core_id}", will=(bp.topic(core_id, "online"), b"false"))
        self.bus.subscribe(bp.topic(core_id, "cmd", "#"), self.on_cmd)
        self.bus.subscribe(f"{bp.PREFIX}/{bp.CONSOLE_SPACE}/#", self.on_presence)
        self.bus.on_connection(self.on_connection)
        self.received: list[tuple[str, bp.Command]] = []
        self.presence: list[tuple[str, bytes]] = []
        self.state, self.seq = "running", 0

    def topic(self, kind, *rest):
        return bp.topic(self.core_id, kind, *rest)

    def on_connection(self, up: bool) -> None:
        if up:
            self.bus.publish_nowait(self.topic("online"), b"true", qos=1, retain=True)
            self.status()

    def status(self) -> None:
        self.seq += 1
        st = bp.Status(core_id=self.core_id, run_id="itest-run", state=self.state, iteration=1, iterations=2,
                       stage="train", paused=self.state == "paused", seq=self.seq,
                       progress=bp.Progress(stage="train", iteration=1, done=5, total=20, eta_s=30.0))
        self.bus.publish_nowait(self.topic("status"), st.dump(), qos=1, retain=True)

    def on_presence(self, topic: str, payload: bytes, retained: bool) -> None:
        self.presence.append((topic, payload))

    def on_cmd(self, topic: str, payload: bytes, retained: bool) -> None:
        verb = topic.rsplit("/", 1)[1]
        cmd, args = bp.parse_command(verb, payload, topic)
        self.received.append((verb, cmd))

        def ack(status, detail="", result=None):
            self.bus.publish_nowait(cmd.reply_to, bp.Ack(id=cmd.id, verb=verb, status=status, detail=detail,
                                                         result=result).dump(), qos=1)

        ack("accepted")
        if verb in ("pause", "resume"):
            self.state = "paused" if verb == "pause" else "running"
            self.status()
            self.bus.publish_nowait(self.topic("events"), bp.Event(event=verb + "d").dump(), qos=1)
            ack("done", verb + "d")
        elif verb == "eval":
            scores = {"overall": 0.42, "non_live_ast": 0.5, "live": 0.4, "multi_turn": 0.0, "relevance": 1.0,
                      "irrelevance": 0.8}
            brief = {"benchmark": args.benchmark, "iteration": args.iteration, "scores": scores}
            self.bus.publish_nowait(self.topic("metrics", "accuracy"),
                                    bp.Metrics(stream="accuracy", stage="eval", **brief).dump(), qos=1)
            self.bus.publish_nowait(self.topic("events"), bp.Event(event="eval_done", **brief).dump(), qos=1)
            ack("done", f"{args.benchmark} iteration {args.iteration}: overall 0.4200", brief)
        elif verb == "history":
            rows = [{"run_id": "itest-run", "state": "running", "iterations": 2, "model": "embedded"}]
            ack("done", "1 runs", {"table": args.table, "rows": rows if args.table == "runs" else []})

    async def close(self) -> None:
        await self.bus.publish(self.topic("status"), b"", retain=True)  # leave the broker clean for the next test
        await self.bus.publish(self.topic("online"), b"", retain=True)
        await self.bus.close()


async def until(pilot, cond, timeout: float = 10.0, what: str = "") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what or cond}")
        await pilot.pause(0.05)


def test_console_and_core_exchange_commands_over_the_broker(embedded_broker):
    async def go():
        core = PlayedCore(embedded_broker.core_url, "itest")
        core_task = asyncio.create_task(core.bus.run())
        link = MqttLink(embedded_broker.core_url, "itest", console_id="console-itest", ack_timeout=5.0)
        app = LoopConsole(link, ask_history=False)
        try:
            async with app.run_test(size=SIZE) as pilot:
                await until(pilot, lambda: app.connected and app.state == "running" and app.core_online,
                            what="retained online/status")
                await until(pilot, lambda: ("looptool/v1/console/console-itest/online", b"true") in core.presence,
                            what="console presence")
                await pilot.press("p")
                await until(pilot, lambda: app.paused and any(c.verb == "pause" and c.state == "done"
                                                              for c in link.commands.values()), what="paused")
                verb, cmd = core.received[0]
                assert verb == "pause" and cmd.reply_to == "looptool/v1/itest/ack/console-itest"
                assert cmd.sender == "console-itest"
                await pilot.press("p")
                await until(pilot, lambda: not app.paused and app.state == "running", what="resumed")
                await pilot.press("e")
                await until(pilot, lambda: isinstance(app.screen, EvaluateScreen), what="eval dialog")
                app.screen.query_one("#eval-per-category", Input).value = "2"
                app.screen.query_one("#eval-iteration", Input).value = "1"
                await pilot.press("ctrl+s")
                await until(pilot, lambda: any(c.verb == "eval" and c.state == "done" for c in link.commands.values()),
                            what="eval done")
                eval_cmd = next(c for c in link.commands.values() if c.verb == "eval")
                assert eval_cmd.result["scores"]["overall"] == 0.42
                assert core.received[-1][1].args == {"benchmark": "bfcl", "per_category": 2, "iteration": 1}
                await until(pilot, lambda: app.query_one("#accuracy-table", DataTable).row_count == 1,
                            what="accuracy row")
                assert app.query_one("#accuracy-table", DataTable).get_cell("1", "bfcl:overall") == "42.0"
                await pilot.press("r")
                await until(pilot, lambda: isinstance(app.screen, HistoryScreen)
                            and app.screen.query_one("#runs", DataTable).row_count == 1, what="history runs")
                await pilot.press("escape")
                assert [v for v, _ in core.received] == ["pause", "resume", "eval", "history"]
                await pilot.press("q")
                await until(pilot, lambda: ("looptool/v1/console/console-itest/online", b"") in core.presence,
                            what="presence cleared on detach")
            assert app.return_value == "detached"
            assert core.state == "running"  # detaching never stops the core
        finally:
            await core.close()
            await asyncio.gather(core_task, return_exceptions=True)

    run_async(go(), timeout=60)


def test_read_only_console_publishes_nothing_on_the_broker(embedded_broker):
    async def go():
        core = PlayedCore(embedded_broker.core_url, "itest-ro")
        core_task = asyncio.create_task(core.bus.run())
        link = MqttLink(embedded_broker.url_as("viewer"), "itest-ro", console_id="viewer-1", read_only=True)
        app = LoopConsole(link)
        try:
            async with app.run_test(size=SIZE) as pilot:
                await until(pilot, lambda: app.connected and app.state == "running", what="status")
                await pilot.press("p", "e", "s", "r", "y", "enter")
                await pilot.pause(0.5)
                assert len(app.screen_stack) == 1
                await pilot.press("q")
            await asyncio.sleep(0.3)
            assert core.received == [] and core.presence == []
            assert core.state == "running"
        finally:
            await core.close()
            await asyncio.gather(core_task, return_exceptions=True)

    run_async(go(), timeout=60)


def test_console_drives_the_real_daemon_and_engine(embedded_broker, tmp_path):
    """The real CoreDaemon with the real Engine (tiny-run config) paused before its first stage, so no
    model is loaded: the console sees the paused run, reads the runs table through the core, and
    stops the run after a confirmation; the core then goes offline."""
    import uuid
    from pathlib import Path

    from core.config import load
    from core.daemon import CoreDaemon, will_for
    from core.engine import Engine
    from core.store import ResultStore

    store = ResultStore(tmp_path / "db.json")
    cfg = load(str(Path(__file__).parent / "data" / "tiny-run.toml"))
    engine = Engine(cfg, f"tiny-console-{uuid.uuid4().hex[:6]}", store=store)
    engine.pause()

    async def go():
        bus = BusClient(embedded_broker.core_url, "core-real-c1", will=will_for("real-c1"))
        daemon = CoreDaemon(engine, bus, "real-c1", store)
        core_task = asyncio.create_task(daemon.run())
        link = MqttLink(embedded_broker.core_url, "real-c1", console_id="console-real", ack_timeout=10.0)
        app = LoopConsole(link)
        try:
            async with app.run_test(size=SIZE) as pilot:
                await until(pilot, lambda: app.connected and app.state == "paused" and app.core_online,
                            timeout=20, what="the paused core")
                assert link.status.run_id == engine.run_id and link.status.iterations >= 1
                assert "PAUSED" in str(app.query_one("#header").render())
                # the retained run config: retained messages of different topics may arrive in any order
                await until(pilot, lambda: engine.run_id in link.telemetry.configs, timeout=10, what="the run config")
                await pilot.press("r")
                await until(pilot, lambda: isinstance(app.screen, HistoryScreen)
                            and app.screen.query_one("#runs", DataTable).row_count >= 1, what="runs from the store")
                assert app.screen.query_one("#runs", DataTable).get_row_at(0)[1] == engine.run_id
                await pilot.press("escape")
                await pilot.press("s")
                await pilot.pause(0.2)
                await pilot.press("y")
                await until(pilot, lambda: any(c.verb == "stop" and c.state == "done" for c in link.commands.values()),
                            timeout=20, what="stop done")
                await until(pilot, lambda: app.state == "stopped" and app.core_online is False, timeout=20,
                            what="stopped and offline")
                assert app.check_action("toggle_pause", ()) is None
                await pilot.press("q")
            assert await asyncio.wait_for(core_task, 20) == "stopped"
        finally:
            if not core_task.done():
                engine.stop()
                await asyncio.gather(core_task, return_exceptions=True)

    run_async(go(), timeout=90)
    store.close()


def test_a_killed_console_leaves_its_last_will(embedded_broker):
    """kill -9 of a console: the broker publishes its presence `false` (retained), as the will says."""
    import signal
    import subprocess
    import sys

    code = ("import asyncio, sys\n"
            "from console.link import MqttLink\n"
            "link = MqttLink(sys.stdin.readline().strip(), 'itest-will', console_id='console-doomed')\n"
            "asyncio.run(link.run())\n")

    async def go():
        core = PlayedCore(embedded_broker.core_url, "itest-will")
        core_task = asyncio.create_task(core.bus.run())
        proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, text=True)
        proc.stdin.write(embedded_broker.core_url + "\n")  # stdin, not argv: it holds a password
        proc.stdin.close()
        topic = "looptool/v1/console/console-doomed/online"
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 20
            while (topic, b"true") not in core.presence:
                assert loop.time() < deadline, core.presence
                await asyncio.sleep(0.05)
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            deadline = loop.time() + 20
            while (topic, b"false") not in core.presence:
                assert loop.time() < deadline, core.presence
                await asyncio.sleep(0.05)
            await core.bus.publish(topic, b"", retain=True)  # clear the retained will
        finally:
            if proc.poll() is None:
                proc.kill()
            await core.close()
            await asyncio.gather(core_task, return_exceptions=True)

    run_async(go(), timeout=60)
