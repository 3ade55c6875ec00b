"""The link without a broker, for Pilot tests and the flood benchmark.

`MemoryLink` has `Link`'s interface; inbound messages are fed as raw (topic, payload) pairs through
the same `on_message` parser the MQTT link uses, and commands land in `.sent` as parsed
`(verb, Command)` pairs. `FakeCore` is an optional responder that answers commands the way the
daemon does (accepted, then done; status paused/running), so screens can be driven end to end.
"""
from __future__ import annotations

import asyncio
import json

from core import busproto as bp
from console.link import Link


class MemoryLink(Link):
    def __init__(self, core_id: str = "test-core", console_id: str = "console-test", *, read_only: bool = False,
                 ack_timeout: float = 5.0, connected: bool = True, responder=None):
        super().__init__(core_id, console_id, read_only=read_only, ack_timeout=ack_timeout)
        self.sent: list[tuple[str, bp.Command]] = []
        self.published: list[tuple[str, bytes]] = []  # everything this console put on the "bus"
        self.responder = responder
        self._start_connected = connected
        self._closed: asyncio.Event | None = None

    async def run(self) -> None:
        self._closed = asyncio.Event()
        if self._start_connected:
            self.set_connected(True)
        await self._closed.wait()

    async def close(self) -> None:
        if self._closed is not None:
            self._closed.set()

    def _transmit(self, topic: str, payload: bytes) -> None:
        self.published.append((topic, payload))
        _, kind, rest = bp.split(topic)
        assert kind == "cmd", topic
        cmd, _ = bp.parse_command(rest[0], payload, topic)
        self.sent.append((rest[0], cmd))
        if self.responder is not None:
            asyncio.get_running_loop().call_soon(self.responder, self, rest[0], cmd)

    # -- feeding, as the core would publish ---------------------------------------------------------

    def feed(self, kind: str, payload, *rest: str, retained: bool = False) -> None:
        raw = payload.dump() if hasattr(payload, "dump") else (
            payload if isinstance(payload, bytes) else json.dumps(payload).encode())
        self.on_message(bp.topic(self.core_id, kind, *rest), raw, retained)

    def feed_status(self, **kw) -> bp.Status:
        st = bp.Status(core_id=self.core_id, **kw)
        self.feed("status", st, retained=True)
        return st

    def feed_metrics(self, stream: str, **kw) -> None:
        self.feed("metrics", bp.Metrics(stream=stream, **kw), stream)

    def feed_event(self, event: str, **kw) -> None:
        self.feed("events", bp.Event(event=event, **kw))

    def feed_ack(self, cmd_id: str, status: str, detail: str = "", result=None, verb: str | None = None) -> None:
        self.feed("ack", bp.Ack(id=cmd_id, status=status, detail=detail, result=result, verb=verb), self.console_id)

    def set_online(self, online: bool) -> None:
        self.feed("online", json.dumps(online).encode(), retained=True)


class FakeCore:
    """Answers commands like the daemon: pause/resume/stop/eval accepted then done (or rejected
    when they make no sense in the current state), history done with `history[table]` rows."""

    def __init__(self, history: dict | None = None, iterations: int = 4):
        self.history = history or {"runs": [], "iterations": [], "evals": []}
        self.seq = 100
        self.iterations = iterations
        self.state = "running"
        self.stage = "train"

    def status(self, link: MemoryLink) -> None:
        self.seq += 1
        link.feed_status(run_id="demo-run", state=self.state, iteration=1, iterations=self.iterations,
                         stage=self.stage, paused=self.state == "paused", seq=self.seq,
                         progress=bp.Progress(stage=self.stage, done=3, total=10))

    def __call__(self, link: MemoryLink, verb: str, cmd: bp.Command) -> None:
        def ack(status, detail="", result=None):
            link.feed_ack(cmd.id, status, detail, result, verb)

        if verb == "pause":
            if self.state == "paused":
                return ack("rejected", "already paused")
            ack("accepted")
            self.state = "paused"
            self.status(link)
            link.feed_event("paused")
            ack("done")
        elif verb == "resume":
            if self.state != "paused":
                return ack("rejected", "not paused")
            ack("accepted")
            self.state = "running"
            self.status(link)
            link.feed_event("resumed")
            ack("done")
        elif verb == "stop":
            ack("accepted", "stopping at the next safe point")
            self.state = "stopped"
            self.stage = None
            self.status(link)
            link.feed_event("run_stopped")
            ack("done")
        elif verb == "eval":
            ack("accepted", "queued")
            link.feed_event("eval_done", iteration=cmd.args.get("iteration", 1),
                            benchmark=cmd.args.get("benchmark", "bfcl"), scores={"overall": 0.5})
            ack("done")
        elif verb == "history":
            table = cmd.args.get("table", "runs")
            rows = [r for r in self.history.get(table, [])
                    if cmd.args.get("run_id") in (None, r.get("run_id"))]
            ack("done", result={"table": table, "rows": rows})


def feed_demo(link: MemoryLink, *, state: str = "running", points: int = 40, seq: int = 7) -> None:
    """A fixed, plausible mid-run picture (iteration 2 of 4, training), for tests, snapshots and the
    benchmark: throughput and training curves, two evals, a judged and assembled iteration, hardware."""
    link.set_online(True)
    for i in range(points):
        link.feed_metrics("throughput", stage="train", iteration=2, tok_s=900 + 40 * (i % 7) + 3 * i,
                          samples_s=2.0 + 0.25 * (i % 5), ts=1_700_000_000 + i)
        link.feed_metrics("train", stage="train", iteration=2, step=i + 1, loss=2.4 - 0.035 * i + 0.08 * (i % 3),
                          reward_mean=0.18 + 0.01 * i - 0.02 * (i % 4), ts=1_700_000_000 + i)
    link.feed_metrics("hardware", cpu_pct=73.5, cpu_count=16, ram_used_mb=11_469, ram_total_mb=24_576,
                      ram_pct=46.7, core_rss_mb=3_180,
                      gpus=[{"index": 0, "util_pct": 88.0, "mem_used_mb": 30_822, "mem_total_mb": 81_559}],
                      ts=1_700_000_050)
    scores = [{"overall": 0.212, "non_live_ast": 0.301, "live": 0.198, "multi_turn": 0.0, "relevance": 0.5,
               "irrelevance": 0.705},
              {"overall": 0.268, "non_live_ast": 0.354, "live": 0.251, "multi_turn": 0.012, "relevance": 0.5,
               "irrelevance": 0.724}]
    for j, sc in enumerate(scores):
        link.feed_event("stage_finished", stage="eval", iteration=j, wall_s=41.5,
                        stats={"eval_id": f"bfcl-{j}", "scores": sc}, ts=1_700_000_010 + j)
    link.feed_metrics("accuracy", stage="eval", iteration=1, benchmark="acebench",
                      scores={"normal": 0.41, "special": 0.33, "agent": 0.05, "overall": 0.31}, ts=1_700_000_012)
    link.feed_event("stage_finished", stage="judge", iteration=1, wall_s=12.0, ts=1_700_000_020,
                    stats={"verdicts": {"PRED_WRONG": 118, "LABEL_WRONG": 9, "BOTH_CORRECT": 14, "BOTH_WRONG": 23,
                                        "JUDGE_FAILED": 0}, "label_corrections": 9})
    link.feed_event("dataset_composition", stage="assemble", iteration=1, error_seeds=127, expansions=508,
                    high_ppl=310, fresh_seeds=560, topped_up=0, total=1505, ts=1_700_000_030)
    link.feed_event("stage_started", stage="train", iteration=2, ts=1_700_000_031)
    link.feed_status(run_id="cpu-demo-20260101-120000", state=state, iteration=2, iterations=4, stage="train",
                     paused=state == "paused", seq=seq, ts=1_700_000_040,
                     progress=bp.Progress(stage="train", iteration=2, done=12, total=40, eta_s=95.0))
