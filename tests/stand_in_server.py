"""tests/openai_compat_server.py's server as a process of its own: what tests run where `vllm serve` or
`trl vllm-serve` would run, on machines without a GPU or vllm (core/child_process.py manages both).

    python tests/stand_in_server.py --port PORT [--model-name NAME] [--say LINE ...] [--unhealthy]
                                    [--exit-after S [--exit-code N]] [--ignore-sigterm] [--grandchild]

Besides POST /v1/completions (the embedded model, loaded on the first completion request only: a test
of the server's lifecycle loads no model), it answers the GET routes a managed server is checked
through, as vLLM's server does: /health (200, or 503 with --unhealthy: a server that never becomes
ready) and /v1/models. The other options make it misbehave the way a real server can: print lines to
its log and exit early (a model that does not fit), ignore SIGTERM, or start a child process of its own
(a tensor-parallel worker), whose pid it prints as `grandchild pid N`.
"""
from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import threading
import time
from http.server import ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the project root, for core.*

from openai_compat_server import CompletionServer, _error, _handler_for  # noqa: E402


class EmbeddedOnFirstUse:
    """The HF backend on the embedded model, loaded when a completion first needs it."""

    def __init__(self):
        self._backend = None
        self._lock = threading.Lock()

    def _get(self):
        with self._lock:
            if self._backend is None:
                from core.backends.hf import HFBackend
                from core.models import resolve

                self._backend = HFBackend(resolve("embedded").path)
            return self._backend

    def generate(self, prompts, params, adapter=None):
        return self._get().generate(prompts, params)

    @property
    def tokenizer(self):
        return self._get().tokenizer


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python tests/stand_in_server.py")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--model-name", default="embedded")
    ap.add_argument("--say", action="append", default=[], help="print this line first (to the log)")
    ap.add_argument("--unhealthy", action="store_true", help="/health answers 503, always")
    ap.add_argument("--exit-after", type=float, default=None, help="exit this many seconds after starting")
    ap.add_argument("--exit-code", type=int, default=1)
    ap.add_argument("--ignore-sigterm", action="store_true")
    ap.add_argument("--grandchild", action="store_true", help="start a long-sleeping child process")
    args = ap.parse_args(argv)

    for line in args.say:
        print(line, flush=True)
    if args.ignore_sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if args.grandchild:
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        print(f"grandchild pid {child.pid}", flush=True)
    if args.exit_after is not None:
        time.sleep(args.exit_after)
        return args.exit_code

    completions = CompletionServer(EmbeddedOnFirstUse(), model_name=args.model_name)
    completions.httpd.server_close()  # it bound a port of its own choice; this process serves on --port
    base = _handler_for(completions)

    class Handler(base):
        def do_GET(self):  # noqa: N802 - http.server naming
            path = self.path.rstrip("/")
            if path == "/health":
                return self._send(503, _error("still loading", "ServiceUnavailableError")) if args.unhealthy \
                    else self._send(200, {})
            if path == "/v1/models":
                return self._send(200, {"object": "list", "data": [{"id": args.model_name, "object": "model"}]})
            return self._send(404, _error(f"no route {self.path}", "NotFoundError"))

    httpd = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    httpd.daemon_threads = True
    print(f"serving {args.model_name} on http://127.0.0.1:{args.port}", flush=True)
    httpd.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
