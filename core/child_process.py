"""A server the engine runs as a child process: started from an argv, writing its own log, waited on
through its health endpoint, stopped with its whole process group.

    with ManagedProcess(argv, log_path, health_url, env={"CUDA_VISIBLE_DEVICES": "6,7"}) as server:
        server.wait_healthy(timeout_s=600)      # ChildProcessFailed (with the log's tail) if it dies or
        ...                                     # is not healthy in time
    # stopped here: SIGTERM to its process group, SIGKILL after stop_grace_s

* The log: stdout and stderr both go to `log_path` (appended, so a restarted server keeps the earlier
  attempt's lines), after a header line naming the command and the environment overrides.
* Its own process group (`start_new_session`): a terminal's Ctrl-C reaches the engine, not the server
  (the engine stops it at a safe point), and `stop()` reaches the processes the server starts itself
  (vLLM's tensor-parallel workers).
* It dies with its parent: the child is started through a small trampoline that sets Linux's
  PR_SET_PDEATHSIG before it execs the command, so a SIGKILLed core leaves no server holding GPUs.
  (A `preexec_fn` would do the same without the trampoline, but is unsafe in a process with threads,
  which the engine is.) Linux sends that signal when the *thread* that started the child exits: start
  servers from a thread that lives as long as they should (the main thread, the event loop's).
* `wait_healthy` polls `health_url` (HTTP 200) and, between polls, whether the process is still alive:
  a server that exits while loading (CUDA out of memory, a bad flag) fails at once with its exit code
  and the last lines of its log, not after the timeout. Before starting, `start()` refuses a
  `health_url` that already answers: another server there would pass the health check for this one.
"""
from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import httpx

LOG_TAIL_LINES = 20

# Runs as the child's first program: set the parent-death signal, check that the parent is still the
# one that started us (it may have died before prctl took effect), then become the command.
_TRAMPOLINE = """\
import ctypes, os, signal, sys
try:
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
except (OSError, AttributeError):
    pass
if os.getppid() != int(sys.argv[1]):
    os._exit(1)
os.execvp(sys.argv[2], sys.argv[2:])
"""


class ChildProcessFailed(RuntimeError):
    """A managed process exited early, or was not healthy in time; the message ends with its log's tail."""


class ManagedProcess:
    """One child process with its own log and health endpoint (see the module docstring)."""

    def __init__(self, argv: Sequence[str], log_path: str | Path, health_url: str | None,
                 env: Mapping[str, str] | None = None, *, name: str | None = None,
                 cwd: str | Path | None = None, stop_grace_s: float = 30.0, die_with_parent: bool = True):
        if not argv:
            raise ValueError("ManagedProcess needs a command")
        self.argv = [str(a) for a in argv]
        self.log_path = Path(log_path)
        self.health_url = health_url
        self.env = dict(env or {})
        self.name = name or Path(self.argv[0]).name
        self.cwd = str(cwd) if cwd is not None else None
        self.stop_grace_s = stop_grace_s
        self.die_with_parent = die_with_parent
        self._proc: subprocess.Popen | None = None
        self._log = None
        self._stopped = False

    # -- lifecycle ----------------------------------------------------------------------------------

    def start(self) -> ManagedProcess:
        if self._proc is not None:
            raise RuntimeError(f"{self.name} was already started (pid {self._proc.pid})")
        if shutil.which(self.argv[0]) is None:
            raise ChildProcessFailed(f"{self.name}: cannot start {shlex.join(self.argv)}: no program "
                                     f"{self.argv[0]!r} on this machine")
        if self.health_url and _answers(self.health_url):
            raise ChildProcessFailed(f"{self.name}: {self.health_url} already answers before {self.name} was "
                                     "started: another server holds that address (stop it or pick another port)")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")
        overrides = " ".join(f"{k}={shlex.quote(v)}" for k, v in self.env.items())
        self._log.write(f"# {time.strftime('%Y-%m-%dT%H:%M:%S%z')} start: {overrides + ' ' if overrides else ''}"
                        f"{shlex.join(self.argv)}\n".encode())
        self._log.flush()
        argv = self.argv
        if self.die_with_parent and sys.platform.startswith("linux"):
            argv = [sys.executable, "-c", _TRAMPOLINE, str(os.getpid()), *self.argv]
        try:
            self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
                                          env={**os.environ, **self.env}, cwd=self.cwd, start_new_session=True)
        except OSError as e:
            self._close_log()
            raise ChildProcessFailed(f"{self.name}: cannot start {shlex.join(self.argv)}: {e}") from None
        return self

    def wait_healthy(self, timeout_s: float, poll_s: float = 0.5,
                     abort: Callable[[], bool] | None = None) -> float | None:
        """Block until `health_url` answers 200; the seconds it took, or None when `abort()` turned true
        first (a stop request: loading a large model takes minutes). ChildProcessFailed when the process
        exits first or `timeout_s` passes (the process is left running then: `stop()` or the context
        manager ends it). Without a health_url, only checks that the process is alive."""
        if self._proc is None:
            raise RuntimeError(f"{self.name} was not started")
        t0 = time.monotonic()
        while True:
            if abort is not None and abort():
                return None
            if (rc := self._proc.poll()) is not None:
                raise ChildProcessFailed(f"{self.name} exited with code {rc} before it was healthy"
                                         f"{self._tail_note()}")
            if self.health_url is None or _healthy(self.health_url):
                return time.monotonic() - t0
            if time.monotonic() - t0 >= timeout_s:
                raise ChildProcessFailed(f"{self.name} was not healthy at {self.health_url} after {timeout_s:g} s"
                                         f"{self._tail_note()}")
            time.sleep(poll_s)

    def stop(self) -> int | None:
        """SIGTERM to the process group, SIGKILL after `stop_grace_s`; the exit code (None: never started).
        Safe to call again, and on a process that already exited (its group may still hold children)."""
        proc = self._proc
        if proc is None:
            return None
        if self._stopped:  # its group id may belong to another process group by now: signal nothing
            return proc.returncode
        self._stopped = True
        try:
            if proc.poll() is None:
                _signal_group(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(self.stop_grace_s)
                except subprocess.TimeoutExpired:
                    _signal_group(proc.pid, signal.SIGKILL)
                    proc.wait()
            _signal_group(proc.pid, signal.SIGKILL)  # whatever it started and left behind
        finally:
            if self._log is not None and not self._log.closed:
                self._log.write(f"# {time.strftime('%Y-%m-%dT%H:%M:%S%z')} stopped: exit code "
                                f"{proc.returncode}\n".encode())
            self._close_log()
        return proc.returncode

    def __enter__(self) -> ManagedProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- state --------------------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def returncode(self) -> int | None:
        return self._proc.poll() if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> list[str]:
        """The last `lines` lines of the log (a long log is read from its end only)."""
        if self._log is not None and not self._log.closed:
            self._log.flush()
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                fh.seek(max(0, fh.tell() - 64 * 1024))
                text = fh.read().decode("utf-8", errors="replace")
        except OSError:
            return []
        return text.splitlines()[-lines:]

    def _tail_note(self) -> str:
        tail = self.log_tail()
        body = "".join(f"\n  | {line}" for line in tail) if tail else "\n  (the log is empty)"
        return f"; the last lines of its log {self.log_path}:{body}"

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)  # start_new_session: the child leads its own group, whose id is its pid
    except (ProcessLookupError, PermissionError):
        pass


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2.0, trust_env=False).status_code == 200  # a local server: no proxy
    except httpx.HTTPError:
        return False


def _answers(url: str) -> bool:
    """Whether anything answers HTTP at `url` (any status)."""
    try:
        httpx.get(url, timeout=1.0, trust_env=False)
        return True
    except httpx.HTTPError:
        return False
