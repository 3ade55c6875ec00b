"""How the operator console holds up under a telemetry flood, measured through its real MQTT link.

Three processes: a broker (mosquitto on loopback when installed, else looptool's embedded amqtt),
a publisher that plays the core (it floods telemetry and answers pause/resume like the daemon:
ack accepted, retained status, ack done), and this process, which runs the console headless
(App.run_test) on an MqttLink. Only the console's own work is in this process, so its CPU time is
the console's.

Phase 1 (flood): 1,000 messages/s for 30 s (metrics at QoS 0, status at 50/s, events at 20/s),
while a key is pressed every 0.5 s, alternating pause and resume. Two latencies per press:
  * key -> screen: from pilot.press("p") until the commands panel shows the new pending command
    (the console's own reaction; the target is p95 < 100 ms);
  * key -> core -> screen: until the header shows the state the core reports after its ack
    (a round trip through the broker and the played core).
Phase 2 (steady): 10 messages/s for 30 s; CPU = time.process_time() / wall time of this process
(target < 25 % of one core).

    python bench/console_flood.py                   # three full runs (about 70 s each); the worst p95 counts
    python bench/console_flood.py --without-gc-freeze   # the same, the console without its gc.freeze()
    python bench/console_flood.py --flood-s 5 --steady-s 5 --link memory   # the UI alone, no broker
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CORE = "bench-core"


# -- the played core (a separate process) ------------------------------------------------------------

async def publisher(url: str, rate: float, flood_s: float, steady_rate: float, steady_s: float) -> None:
    from core import busproto as bp
    from core.bus import BusClient

    bus = BusClient(url, "bench-publisher", queue_size=5000)

    def core_topic(kind, *rest):
        return bp.topic(CORE, kind, *rest)

    state = {"paused": False, "seq": 0}
    attached = asyncio.Event()

    def status(done=3):
        state["seq"] += 1
        return bp.Status(core_id=CORE, run_id="bench-run", state="paused" if state["paused"] else "running",
                         iteration=2, iterations=4, stage="train", paused=state["paused"], seq=state["seq"],
                         progress=bp.Progress(stage="train", iteration=2, done=done % 1000, total=1000,
                                              eta_s=60.0)).dump()

    async def on_cmd(topic, payload, retained):
        verb = topic.rsplit("/", 1)[1]
        cmd, _ = bp.parse_command(verb, payload, topic)

        async def ack(s, detail=""):
            await bus.publish(cmd.reply_to, bp.Ack(id=cmd.id, verb=verb, status=s, detail=detail).dump(), qos=1)

        if verb in ("pause", "resume"):
            await ack("accepted")
            state["paused"] = verb == "pause"
            await bus.publish(core_topic("status"), status(), qos=1, retain=True)
            await ack("done")
        elif verb == "history":
            await ack("done")
        else:
            await ack("rejected", "not in this benchmark")

    def on_presence(topic, payload, retained):
        if payload == b"true":
            attached.set()

    bus.subscribe(core_topic("cmd", "#"), on_cmd)
    bus.subscribe(f"{bp.PREFIX}/{bp.CONSOLE_SPACE}/+/online", on_presence)
    bus.on_connection(lambda up: up and bus.publish_nowait(core_topic("online"), b"true", qos=1, retain=True))
    task = asyncio.create_task(bus.run())
    await asyncio.wait_for(attached.wait(), 120)

    async def phase(name: str, per_s: float, seconds: float) -> int:
        await bus.publish(core_topic("events"), bp.Event(event="bench_phase", phase=name).dump(), qos=1)
        sent, t0, tick = 0, time.monotonic(), 0.01
        n = 0
        while (now := time.monotonic()) - t0 < seconds:
            due = int((now - t0) * per_s) - sent
            for _ in range(max(0, due)):
                n += 1
                k = n % 100
                if k < 5:  # 5 %: status (the seq advances)
                    bus.publish_nowait(core_topic("status"), status(n), qos=1, retain=True)
                elif k < 7:  # 2 %: events
                    bus.publish_nowait(core_topic("events"), bp.Event(event="probe_info", n=n).dump(), qos=1)
                elif k < 10:
                    bus.publish_nowait(core_topic("metrics", "hardware"), bp.Metrics(
                        stream="hardware", cpu_pct=float(n % 100), ram_pct=40.0, gpus=[]).dump())
                elif k < 55:
                    bus.publish_nowait(core_topic("metrics", "throughput"), bp.Metrics(
                        stream="throughput", stage="train", iteration=2, tok_s=float(800 + n % 400),
                        samples_s=2.0 + n % 5).dump())
                else:
                    bus.publish_nowait(core_topic("metrics", "train"), bp.Metrics(
                        stream="train", stage="train", iteration=2, step=n, loss=2.0 - (n % 100) / 100,
                        reward_mean=(n % 50) / 50).dump())
                sent += 1
            await asyncio.sleep(tick)
        return sent

    sent_flood = await phase("flood", rate, flood_s)
    sent_steady = await phase("steady", steady_rate, steady_s)
    await bus.publish(core_topic("events"), bp.Event(event="bench_phase", phase="done", sent_flood=sent_flood,
                                            sent_steady=sent_steady, dropped=bus.dropped).dump(), qos=1)
    await asyncio.sleep(0.5)
    await bus.publish(core_topic("online"), b"", qos=1, retain=True)
    await bus.publish(core_topic("status"), b"", qos=1, retain=True)
    await bus.close()
    await asyncio.gather(task, return_exceptions=True)


# -- the console side (this process) ------------------------------------------------------------------

def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))] if xs else float("nan")


async def console_side(link, args, feeder=None) -> dict:
    from console.app import LoopConsole
    from console.widgets.panels import CommandsPanel

    phase = {"name": "wait", "info": {}}
    received = {"n": 0}
    orig = link.on_message

    def counting(topic, payload, retained=False):
        received["n"] += 1
        if topic.endswith("/events") and b"bench_phase" in payload:
            data = json.loads(payload)
            phase["name"], phase["info"] = data.get("phase"), data
        return orig(topic, payload, retained)

    link.on_message = counting
    app = LoopConsole(link, ask_history=False)
    out = {"local_ms": [], "round_trip_ms": []}
    async with app.run_test(size=(140, 45)) as pilot:
        if feeder is not None:
            feeder_task = asyncio.create_task(feeder(link, phase))
        header = app.query_one("#header")
        panel = app.query_one(CommandsPanel)
        while phase["name"] != "flood":
            await asyncio.sleep(0.05)
        rx0, cpu0, wall0 = received["n"], time.process_time(), time.monotonic()
        stalls = Stalls()
        stalls.start()
        while phase["name"] == "flood":
            want = "resume" if app.paused else "pause"
            before = len(link.commands)
            t0 = time.perf_counter()
            # pilot.press returns only once the app looks idle (Textual's wait_for_idle), which a
            # flood never is: run it beside the watcher, which times the widgets from the call on
            press = asyncio.create_task(pilot.press("p"))
            local = rt = None
            while time.perf_counter() - t0 < 5.0:
                now = time.perf_counter()
                if local is None and len(link.commands) > before and \
                        f"{want}" in str(panel.render()).splitlines()[-1]:
                    local = now - t0
                shown = str(header.render())
                if ("PAUSED" in shown) == (want == "pause") and app.paused == (want == "pause"):
                    rt = now - t0
                    if local is None:
                        local = rt
                    break
                await asyncio.sleep(0.001)
            await press
            if local is not None:
                out["local_ms"].append(local * 1000)
            if rt is not None:
                out["round_trip_ms"].append(rt * 1000)
            else:
                out.setdefault("round_trip_timeouts", 0)
                out["round_trip_timeouts"] = out.get("round_trip_timeouts", 0) + 1
            await asyncio.sleep(max(0.05, 0.5 - (time.perf_counter() - t0)))
        out.update(stalls.stop())
        out["flood_rx_per_s"] = (received["n"] - rx0) / (time.monotonic() - wall0)
        out["flood_cpu_pct"] = 100 * (time.process_time() - cpu0) / (time.monotonic() - wall0)
        await asyncio.sleep(2.0)  # let the flood backlog drain before measuring the steady state
        rx0, cpu0, wall0 = received["n"], time.process_time(), time.monotonic()
        while phase["name"] == "steady":
            await asyncio.sleep(0.1)
        wall = time.monotonic() - wall0
        out["steady_rx_per_s"] = (received["n"] - rx0) / wall
        out["steady_cpu_pct"] = 100 * (time.process_time() - cpu0) / wall
        out["steady_wall_s"] = wall
        out["publisher"] = phase["info"]
        out["bad_messages"] = link.bad_total
        if feeder is not None:
            feeder_task.cancel()
        await pilot.press("q")
    return out


class Stalls:
    """What can hold the console's event loop during the flood: garbage collections (their pauses per
    generation, from gc.callbacks) and the loop's lag (how late a 10 ms sleep wakes up)."""

    def __init__(self):
        self.gc_ms: dict[int, list[float]] = {0: [], 1: [], 2: []}
        self.lag_ms: list[float] = []
        self._gc_t0 = 0.0
        self._task = None

    def _on_gc(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._gc_t0 = time.perf_counter()
        else:
            self.gc_ms[info["generation"]].append((time.perf_counter() - self._gc_t0) * 1000)

    async def _ticker(self) -> None:
        while True:
            t = time.perf_counter()
            await asyncio.sleep(0.01)
            self.lag_ms.append((time.perf_counter() - t - 0.01) * 1000)

    def start(self) -> None:
        import gc

        gc.callbacks.append(self._on_gc)
        self._task = asyncio.create_task(self._ticker())

    def stop(self) -> dict:
        import gc

        gc.callbacks.remove(self._on_gc)
        self._task.cancel()
        return {"gc_ms": {str(g): {"n": len(v), "max": max(v, default=0.0), "total": sum(v)}
                          for g, v in self.gc_ms.items()},
                "loop_lag_ms": {"p50": pct(self.lag_ms, 50), "p95": pct(self.lag_ms, 95),
                                "max": max(self.lag_ms, default=0.0)},
                "gc_tracked_objects": len(gc.get_objects()), "gc_frozen": gc.get_freeze_count()}


async def memory_feeder(link, phase, rate, flood_s, steady_rate, steady_s):
    """--link memory: the same traffic fed straight into the in-memory link (no broker, no parsing
    on another process), and a played core answering in the same loop."""
    from core import busproto as bp

    def phase_event(name, **kw):
        link.on_message(bp.topic(CORE, "events"), bp.Event(event="bench_phase", phase=name, **kw).dump())

    n = 0
    for name, per_s, secs in (("flood", rate, flood_s), ("steady", steady_rate, steady_s)):
        phase_event(name)
        sent, t0 = 0, time.monotonic()
        while (now := time.monotonic()) - t0 < secs:
            for _ in range(max(0, int((now - t0) * per_s) - sent)):
                n += 1
                k = n % 100
                if k < 5:
                    link.feed_status(run_id="bench-run", state="paused" if link.status and link.status.paused
                                     else "running", iteration=2, iterations=4, stage="train",
                                     paused=bool(link.status and link.status.paused), seq=n)
                elif k < 7:
                    link.feed_event("probe_info", n=n)
                elif k < 55:
                    link.feed_metrics("throughput", stage="train", iteration=2, tok_s=float(800 + n % 400),
                                      samples_s=2.0)
                else:
                    link.feed_metrics("train", stage="train", iteration=2, loss=1.0, reward_mean=0.5)
                sent += 1
            await asyncio.sleep(0.01)
    phase_event("done")


def memory_core(link, verb, cmd):
    from core import busproto as bp

    link.feed_ack(cmd.id, "accepted", verb=verb)
    paused = verb == "pause"
    link.feed_status(run_id="bench-run", state="paused" if paused else "running", iteration=2, iterations=4,
                     stage="train", paused=paused, seq=(link.status.seq + 1) if link.status else 1)
    link.feed_ack(cmd.id, "done", verb=verb)


def start_broker(kind: str, tmp: Path):
    from core.broker import free_port, wait_port

    port = free_port()
    conf = tmp / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    + ("user root\n" if os.geteuid() == 0 else ""))
    proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if not wait_port("127.0.0.1", port, 10):
        proc.terminate()
        raise SystemExit("mosquitto did not start")
    return proc, f"mqtt://127.0.0.1:{port}"


def one_run(args) -> tuple[dict, float, str]:
    """One flood and steady phase against a fresh console; returns its measurements, wall time and the
    broker's description."""
    from console.link import MqttLink
    from console.memlink import MemoryLink

    broker_proc = pub = None
    tmp = Path(tempfile.mkdtemp(prefix="console-flood-"))
    try:
        if args.link == "memory":
            link = MemoryLink(CORE, "bench-console", responder=memory_core)
            feeder = lambda lk, ph: memory_feeder(lk, ph, args.rate, args.flood_s, args.steady_rate,  # noqa: E731
                                                  args.steady_s)
            broker_name = "none (in-memory link)"
        else:
            kind = args.broker
            if kind == "auto":
                kind = "mosquitto" if shutil.which("mosquitto") else "embedded"
            if kind == "mosquitto":
                broker_proc, url = start_broker(kind, tmp)
                broker_name = "mosquitto (own process)"
            else:
                url = None
                broker_name = "embedded amqtt (in the publisher's process)"
            cmd = [sys.executable, __file__, "--rate", str(args.rate), "--flood-s", str(args.flood_s),
                   "--steady-rate", str(args.steady_rate), "--steady-s", str(args.steady_s)]
            if url is None:  # the publisher hosts the embedded broker
                code = ("import asyncio, sys; sys.path.insert(0, %r)\n"
                        "from core.broker import EmbeddedBroker\n"
                        "import importlib.util as u\n"
                        "spec = u.spec_from_file_location('flood', %r); m = u.module_from_spec(spec); "
                        "spec.loader.exec_module(m)\n"
                        "async def go():\n"
                        "    b = EmbeddedBroker(); await b.start(); user, pw = b.login('core')\n"
                        "    url = f'mqtt://{user}:{pw}@127.0.0.1:{b.port}'; print(url, flush=True)\n"
                        "    await m.publisher(url, %r, %r, %r, %r)\n"
                        "    await b.stop()\n"
                        "asyncio.run(go())\n") % (str(ROOT), __file__, args.rate, args.flood_s, args.steady_rate,
                                                  args.steady_s)
                pub = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
                url = pub.stdout.readline().strip()
            else:
                pub = subprocess.Popen(cmd + ["--publisher", url])
            link = MqttLink(url, CORE, "bench-console", ack_timeout=5.0)
            feeder = None
        t0 = time.monotonic()
        out = asyncio.run(console_side(link, args, feeder))
        return out, time.monotonic() - t0, broker_name
    finally:
        if pub is not None:
            try:
                pub.wait(30)
            except subprocess.TimeoutExpired:
                pub.terminate()
        if broker_proc is not None:
            broker_proc.terminate()
            broker_proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


def report(out: dict, args, wall: float, broker_name: str, label: str) -> None:
    loc, rt = out["local_ms"], out["round_trip_ms"]
    print(f"{label}: link {args.link}, broker {broker_name}, {os.cpu_count()} CPUs, nice {os.nice(0)}, "
          f"total {wall:.0f} s")
    print(f"  flood: {args.rate:.0f} msg/s offered for {args.flood_s:.0f} s, received "
          f"{out['flood_rx_per_s']:.0f} msg/s by the console; console CPU {out['flood_cpu_pct']:.0f} % of one core")
    print(f"  key -> screen (commands panel shows the pending command), {len(loc)} presses: "
          f"p50 {pct(loc, 50):.1f} ms, p95 {pct(loc, 95):.1f} ms, max {max(loc, default=float('nan')):.1f} ms")
    print(f"  key -> core -> screen (header shows the state the core acked), {len(rt)} presses: "
          f"p50 {pct(rt, 50):.1f} ms, p95 {pct(rt, 95):.1f} ms, max {max(rt, default=float('nan')):.1f} ms; "
          f"timeouts (>5 s): {out.get('round_trip_timeouts', 0)}")
    gcs = out["gc_ms"]
    lag = out["loop_lag_ms"]
    print("  during the flood: garbage collections " + ", ".join(
        f"gen{g} {v['n']} (max {v['max']:.1f} ms, total {v['total']:.0f} ms)" for g, v in gcs.items())
          + f"; event-loop lag p50 {lag['p50']:.1f} ms, p95 {lag['p95']:.1f} ms, max {lag['max']:.1f} ms; "
          f"{out['gc_tracked_objects']:,} objects tracked, {out['gc_frozen']:,} frozen")
    print(f"  steady: {args.steady_rate:.0f} msg/s for {out['steady_wall_s']:.0f} s, received "
          f"{out['steady_rx_per_s']:.1f} msg/s; console CPU {out['steady_cpu_pct']:.1f} % of one core")
    info = out.get("publisher") or {}
    if info:
        print(f"  publisher: sent {info.get('sent_flood')} + {info.get('sent_steady')} messages, "
              f"dropped by its queue {info.get('dropped')}; bad messages at the console {out['bad_messages']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, default=1000.0, help="flood messages per second")
    ap.add_argument("--flood-s", type=float, default=30.0)
    ap.add_argument("--steady-rate", type=float, default=10.0)
    ap.add_argument("--steady-s", type=float, default=30.0)
    ap.add_argument("--repeats", type=int, default=3, help="runs, each with a fresh console; the worst p95 "
                    "of them is the result")
    ap.add_argument("--link", choices=("mqtt", "memory"), default="mqtt")
    ap.add_argument("--broker", choices=("auto", "mosquitto", "embedded"), default="auto")
    ap.add_argument("--without-gc-freeze", action="store_true", help="the console as it was before it froze "
                    "its start-up heap (gc.freeze made a no-op): the baseline for the fix")
    ap.add_argument("--json", type=Path, help="also write the measurements here")
    ap.add_argument("--publisher", metavar="URL", help=argparse.SUPPRESS)  # internal: the played core
    args = ap.parse_args()
    if args.publisher:
        asyncio.run(publisher(args.publisher, args.rate, args.flood_s, args.steady_rate, args.steady_s))
        return
    os.environ.setdefault("LOOPTOOL_HOME", tempfile.mkdtemp(prefix="looptool-bench-"))
    if args.without_gc_freeze:
        import gc

        gc.freeze = lambda: None  # noqa: E731  the console calls gc.freeze() once it is up
    runs = []
    for r in range(args.repeats):
        out, wall, broker_name = one_run(args)
        report(out, args, wall, broker_name, f"run {r + 1}/{args.repeats}"
               + (" (without gc.freeze)" if args.without_gc_freeze else ""))
        runs.append(out)
    worst_local = max(pct(o["local_ms"], 95) for o in runs)
    worst_rt = max(pct(o["round_trip_ms"], 95) for o in runs)
    worst_cpu = max(o["steady_cpu_pct"] for o in runs)
    print(f"worst of {len(runs)} runs: key -> screen p95 {worst_local:.1f} ms (target < 100 ms: "
          f"{'met' if worst_local < 100 else 'NOT met'}); key -> core -> screen p95 {worst_rt:.1f} ms; "
          f"steady CPU {worst_cpu:.1f} % of one core (target < 25 %: {'met' if worst_cpu < 25 else 'NOT met'})")
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "runs": runs,
                                         "worst_local_p95_ms": worst_local, "worst_round_trip_p95_ms": worst_rt,
                                         "worst_steady_cpu_pct": worst_cpu}, indent=1))


if __name__ == "__main__":
    main()
