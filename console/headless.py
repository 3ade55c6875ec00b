"""`looptool core` without a console: run the engine and print progress lines."""
from __future__ import annotations

import asyncio
import signal
import sys
import time

from core.engine import Engine


class LinePrinter:
    """Events always; progress and metrics at most every `every` seconds per stage."""

    def __init__(self, out=sys.stdout, every: float = 2.0):
        self.out, self.every = out, every
        self._last: dict[str, float] = {}

    def __call__(self, kind: str, data: dict) -> None:
        stamp = time.strftime("%H:%M:%S")
        if kind == "event":
            name = data.get("event")
            extra = {k: v for k, v in data.items() if k not in ("event", "ts", "traceback")}
            self._print(f"[{stamp}] {name} {_fmt(extra)}")
            if data.get("traceback"):
                self._print(data["traceback"])
        elif kind in ("progress", "metrics"):
            key = f"{kind}:{data.get('stage')}"
            now = time.monotonic()
            if now - self._last.get(key, 0) < self.every:
                return
            self._last[key] = now
            if kind == "progress":
                total = data.get("total") or 0
                pct = f"{100 * data['done'] / total:5.1f}%" if total else ""
                self._print(f"[{stamp}] iter {data.get('iteration')} {data.get('stage')} "
                            f"{data.get('done')}/{total} {pct}")
            else:
                self._print(f"[{stamp}] metrics {_fmt(data)}")

    def _print(self, line: str) -> None:
        print(line, file=self.out, flush=True)


def _fmt(d: dict) -> str:
    parts = []
    for k, v in d.items():
        if isinstance(v, float):
            v = f"{v:.4g}"
        elif isinstance(v, dict):
            v = "{" + _fmt(v) + "}"
        parts.append(f"{k}={v}")
    return " ".join(parts)


def run_headless(engine: Engine) -> str:
    """Ctrl-C / SIGTERM stop cleanly at the next safe point; SIGUSR1 toggles pause."""
    engine.subscribe(LinePrinter())

    async def main() -> str:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, engine.stop)
        loop.add_signal_handler(signal.SIGTERM, engine.stop)
        loop.add_signal_handler(signal.SIGUSR1, lambda: engine.pause() or engine.resume())
        return await engine.run()

    return asyncio.run(main())
