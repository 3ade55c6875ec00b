"""core.child_process.ManagedProcess against real child processes: tests/stand_in_server.py (the
project's OpenAI-compatible test server as a process) stands in for `trl vllm-serve` / `vllm serve`,
which need a GPU and vllm; it loads no model unless a completion is requested, and none is here."""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from core.child_process import ChildProcessFailed, ManagedProcess

ROOT = Path(__file__).resolve().parents[1]
STAND_IN = str(ROOT / "tests" / "stand_in_server.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stand_in(port: int, *options: str) -> list[str]:
    return [sys.executable, STAND_IN, "--port", str(port), *options]


def gone(pid: int, within_s: float = 10.0) -> bool:
    """Whether process `pid` has ended (a zombie waiting for its reaper counts as ended)."""
    end = time.monotonic() + within_s
    while time.monotonic() < end:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def test_stand_in_server_becomes_healthy_logs_and_stops(tmp_path):
    port = free_port()
    log = tmp_path / "logs" / "server.log"
    url = f"http://127.0.0.1:{port}"
    with ManagedProcess(stand_in(port, "--model-name", "policy"), log, url + "/health",
                        env={"CUDA_VISIBLE_DEVICES": "6,7"}, name="trl vllm-serve") as server:
        waited = server.wait_healthy(timeout_s=30, poll_s=0.05)
        assert waited is not None and waited < 30 and server.running
        assert httpx.get(url + "/v1/models", trust_env=False).json()["data"][0]["id"] == "policy"
        pid = server.pid
    assert not server.running and server.returncode == -signal.SIGTERM and gone(pid)
    lines = log.read_text().splitlines()
    assert re.match(r"# \S+ start: CUDA_VISIBLE_DEVICES=6,7 \S*python\S* \S*stand_in_server.py --port", lines[0])
    assert f"serving policy on http://127.0.0.1:{port}" in lines
    assert lines[-1].endswith(f"stopped: exit code {-signal.SIGTERM}")
    assert server.stop() == -signal.SIGTERM  # a second stop signals nothing and says the same


def test_a_server_that_dies_while_loading_fails_at_once_with_its_log_tail(tmp_path):
    port = free_port()
    log = tmp_path / "server.log"
    server = ManagedProcess(stand_in(port, "--say", "loading Qwen/Qwen3-8B", "--say",
                                     "torch.OutOfMemoryError: CUDA out of memory", "--exit-after", "0.2",
                                     "--exit-code", "3"), log, f"http://127.0.0.1:{port}/health",
                            name="trl vllm-serve")
    t0 = time.monotonic()
    with server, pytest.raises(ChildProcessFailed) as e:
        server.wait_healthy(timeout_s=120, poll_s=0.05)
    message = str(e.value)
    assert time.monotonic() - t0 < 30  # not the health timeout
    assert message.startswith("trl vllm-serve exited with code 3 before it was healthy")
    assert f"log {log}:" in message and "| torch.OutOfMemoryError: CUDA out of memory" in message
    assert message.index("loading Qwen/Qwen3-8B") < message.index("CUDA out of memory")


def test_a_stand_in_server_never_healthy_times_out_naming_its_log(tmp_path):
    port = free_port()
    log = tmp_path / "server.log"
    with ManagedProcess(stand_in(port, "--unhealthy"), log, f"http://127.0.0.1:{port}/health",
                        name="vllm serve") as server:
        with pytest.raises(ChildProcessFailed, match=rf"^vllm serve was not healthy at http://127.0.0.1:{port}"
                           rf"/health after 1.5 s; the last lines of its log {re.escape(str(log))}:"):
            server.wait_healthy(timeout_s=1.5, poll_s=0.1)
        assert server.running  # left to stop(), which the context manager calls
    assert not server.running


def test_wait_healthy_gives_up_when_aborted(tmp_path):
    port = free_port()
    with ManagedProcess(stand_in(port, "--unhealthy"), tmp_path / "s.log", f"http://127.0.0.1:{port}/health") as s:
        assert s.wait_healthy(timeout_s=60, abort=lambda: True) is None


def test_stop_kills_a_stand_in_server_that_ignores_sigterm(tmp_path):
    port = free_port()
    with ManagedProcess(stand_in(port, "--ignore-sigterm"), tmp_path / "s.log", f"http://127.0.0.1:{port}/health",
                        stop_grace_s=1.0) as server:
        server.wait_healthy(timeout_s=30, poll_s=0.05)
    assert server.returncode == -signal.SIGKILL


def test_stop_reaches_the_processes_the_server_started(tmp_path):
    port = free_port()
    log = tmp_path / "s.log"
    with ManagedProcess(stand_in(port, "--grandchild"), log, f"http://127.0.0.1:{port}/health") as server:
        server.wait_healthy(timeout_s=30, poll_s=0.05)
        grandchild = int(re.search(r"grandchild pid (\d+)", log.read_text()).group(1))
        assert not gone(grandchild, within_s=0.2)
    assert gone(grandchild)


def test_a_sigkilled_parent_takes_its_stand_in_server_along(tmp_path):
    port = free_port()
    script = (f"import sys, time\nfrom core.child_process import ManagedProcess\n"
              f"p = ManagedProcess({stand_in(port)!r}, {str(tmp_path / 's.log')!r}, "
              f"'http://127.0.0.1:{port}/health').start()\np.wait_healthy(30, 0.05)\n"
              f"print(p.pid, flush=True)\ntime.sleep(600)\n")
    parent = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        server_pid = int(parent.stdout.readline())
        assert not gone(server_pid, within_s=0.2)
    finally:
        parent.kill()
        parent.wait()
    assert gone(server_pid)


def test_start_refuses_an_address_another_server_answers(tmp_path):
    port = free_port()
    health = f"http://127.0.0.1:{port}/health"
    with ManagedProcess(stand_in(port), tmp_path / "a.log", health) as first:
        first.wait_healthy(timeout_s=30, poll_s=0.05)
        second = ManagedProcess(stand_in(port), tmp_path / "b.log", health, name="vllm serve")
        with pytest.raises(ChildProcessFailed, match=rf"^vllm serve: {re.escape(health)} already answers"):
            second.start()
        assert second.pid is None and not (tmp_path / "b.log").exists()


def test_a_missing_program_is_a_clear_error(tmp_path):
    with pytest.raises(ChildProcessFailed, match=r"^vllm: cannot start /nonexistent/vllm serve m: no program "
                       r"'/nonexistent/vllm' on this machine$"):
        ManagedProcess(["/nonexistent/vllm", "serve", "m"], tmp_path / "s.log", None).start()
    assert not (tmp_path / "s.log").exists()
