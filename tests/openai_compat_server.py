"""A small OpenAI-compatible ``/v1/completions`` server for tests, backed by a real HF backend.

Standard library only (``http.server`` in a daemon thread), bound to 127.0.0.1 on a free port.
It validates requests like a real server (unknown model -> 404, bad ``max_tokens`` -> 400) and can
be told to misbehave for the next requests (`fail_next`: HTTP errors, `stall_next`: a hung server
that never answers), so retry and timeout handling are exercised over real sockets.
"""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from core.backends.base import GenParams


class CompletionServer:
    """Serve `backend` (anything with ``generate`` and ``tokenizer``) as model `model_name`."""

    def __init__(self, backend, model_name: str = "embedded"):
        self.backend = backend
        self.model_name = model_name
        self.requests = 0  # completion requests received, misbehaving ones included
        self._faults: list[tuple[str, object]] = []  # queued ("status", (code, msg)) | ("stall", s)
        self._lock = threading.Lock()  # guards counters and faults
        self._gen_lock = threading.Lock()  # the backend serves one request at a time
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> CompletionServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def fail_next(self, count: int, status: int = 503, message: str = "model is warming up") -> None:
        """Answer the next `count` completion requests with HTTP `status`."""
        with self._lock:
            self._faults += [("status", (status, message))] * count

    def stall_next(self, count: int, seconds: float) -> None:
        """Hold each of the next `count` requests for `seconds`, then close without answering."""
        with self._lock:
            self._faults += [("stall", seconds)] * count

    def _next_fault(self):
        with self._lock:
            self.requests += 1
            return self._faults.pop(0) if self._faults else None

    def complete(self, body: dict) -> tuple[int, dict]:
        """Handle one /v1/completions body; returns (HTTP status, JSON response)."""
        if body.get("model") != self.model_name:
            return 404, _error(f"The model `{body.get('model')}` does not exist.", "NotFoundError")
        max_tokens = body.get("max_tokens", 16)
        if not isinstance(max_tokens, int) or max_tokens < 1:
            return 400, _error(f"max_tokens must be at least 1, got {max_tokens}")
        prompts = body.get("prompt")
        prompts = [prompts] if isinstance(prompts, str) else prompts
        if not prompts or not all(isinstance(p, str) for p in prompts):
            return 400, _error("prompt must be a string or a list of strings")
        stop = body.get("stop") or ()
        params = GenParams(
            max_new_tokens=max_tokens, temperature=float(body.get("temperature", 1.0)),
            top_p=float(body.get("top_p", 1.0)), seed=body.get("seed"),
            logprobs=body.get("logprobs") is not None, stop=(stop,) if isinstance(stop, str) else tuple(stop),
        )
        with self._gen_lock:
            gens = self.backend.generate(prompts, params)
        choices = [self._choice(i, g, body) for i, g in enumerate(gens)]
        completion = sum(g.num_tokens for g in gens)
        prompt_tokens = sum(g.prompt_tokens for g in gens)
        return 200, {
            "id": f"cmpl-{self.requests}", "object": "text_completion", "created": int(time.time()),
            "model": self.model_name, "choices": choices,
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion,
                      "total_tokens": prompt_tokens + completion},
        }

    def _choice(self, index: int, gen, body: dict) -> dict:
        choice = {"index": index, "text": gen.text, "finish_reason": gen.finish_reason, "logprobs": None}
        if gen.logprobs is not None:
            tok = self.backend.tokenizer
            pieces = [tok.decode([t]) for t in gen.token_ids]
            offsets, pos = [], 0
            for piece in pieces:
                offsets.append(pos)
                pos += len(piece)
            choice["logprobs"] = {
                "tokens": pieces, "token_logprobs": gen.logprobs, "text_offset": offsets,
                "top_logprobs": [{p: lp} for p, lp in zip(pieces, gen.logprobs)],
            }
        if body.get("return_token_ids"):  # vllm's extension
            choice["token_ids"] = list(gen.token_ids)
        return choice


def _error(message: str, kind: str = "BadRequestError") -> dict:
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


def _handler_for(server: CompletionServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):  # noqa: N802 - http.server naming
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            if self.path.rstrip("/") != "/v1/completions":
                return self._send(404, _error(f"no route {self.path}", "NotFoundError"))
            fault = server._next_fault()
            if fault and fault[0] == "status":
                status, message = fault[1]
                return self._send(status, _error(message, "ServiceUnavailableError"))
            if fault and fault[0] == "stall":
                time.sleep(fault[1])
                self.close_connection = True
                return None
            try:
                body = json.loads(raw)
            except ValueError:
                return self._send(400, _error("request body is not JSON"))
            self._send(*server.complete(body))

        def _send(self, status: int, payload: dict) -> None:
            data = json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client went away

        def log_message(self, *args) -> None:
            pass

    return Handler
