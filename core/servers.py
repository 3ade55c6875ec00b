"""The judge's and the generator's servers, run by the engine (`serve = true` in [judge.llm] / [expand.llm]).

    which stage needs one   seed (seeds.source = "llm": the generator, expand.llm else judge.llm), judge
                            (judge.kind = "llm": judge.llm), expand (expand.generator = "llm": expand.llm),
                            when that section says serve = true; the stage reaches it at its base_url
    one at a time, reused   a stage whose server is already running uses it: judge and expand of one
                            iteration share one when both sections start it the same way (command, GPUs,
                            address); a stage that needs another server stops the running one first
    stopped                 before a stage that loads the policy (train, eval, probe: the GPUs are theirs),
                            and when the run ends (finished, stopped, failed, or an exception in the core)
    its log                 run_dir/servers/<section>-<stage>-<iteration>.log, one per start (a retry after
                            a fault appends to it): the command line, then the server's stdout and stderr

Each server is a core.child_process.ManagedProcess: its own process group (stopped as a whole), dying with
the core (PR_SET_PDEATHSIG, so a SIGKILLed core leaves no server holding the GPUs), health-checked at
GET /health (vllm's liveness endpoint) before the stage starts. What a killed core can still leave behind
are the processes a server starts itself (vllm's tensor-parallel workers): their environment carries
SERVER_MARK=<run dir>, and the engine ends every process so marked before it starts a run (a resume), and
again after it stops each server.
"""
from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from core.config import LLMRef, RunConfig

POLICY_STAGES = ("train", "eval", "probe")  # they load the policy onto the GPUs a server may hold
SERVER_STAGES = ("seed", "judge", "expand")  # the stages that may reach a judge or generator model
SERVER_MARK = "LOOPTOOL_SERVER_OF"  # in a served model's environment (inherited by its children): the run dir
LEFTOVER_GRACE_S = 10.0


class ServerFailed(Exception):
    """A served model that did not become healthy; the message names its log (and ends with its tail)."""

    def __init__(self, key: str, message: str, log_path: Path):
        super().__init__(message)
        self.key, self.log_path = key, log_path


@dataclass(frozen=True)
class ServeSpec:
    """How one configured model's server is started (LLMRef with serve = true)."""
    key: str  # its config section: "judge.llm" | "expand.llm"
    model: str
    argv: tuple[str, ...]  # serve_command, placeholders filled in, the program found on PATH
    gpus: tuple[int, ...] | None  # its CUDA_VISIBLE_DEVICES; None = the core's own
    base_url: str
    health_url: str
    timeout_s: float

    def same_server(self, other: ServeSpec) -> bool:
        """Two sections share one server when it would be started the same way."""
        return (self.argv, self.gpus, self.health_url) == (other.argv, other.gpus, other.health_url)


def find_program(name: str) -> str | None:
    """`name` on PATH, or beside this Python (a virtual environment's bin/, not activated); None if neither."""
    if found := shutil.which(name):
        return found
    beside = Path(sys.executable).parent / name
    return str(beside) if os.sep not in name and beside.is_file() and os.access(beside, os.X_OK) else None


def serve_spec(ref: LLMRef, key: str) -> ServeSpec:
    """The server of `ref` (serve = true; core.config checked its base_url and placeholders)."""
    url = urlsplit(ref.base_url)
    gpus = tuple(ref.serve_gpus) if ref.serve_gpus else None
    values = {"model": ref.model, "host": url.hostname, "port": str(url.port),
              "gpu_count": str(len(gpus) if gpus else 1)}
    argv = [arg.format_map(values) for arg in ref.serve_command]
    argv[0] = find_program(argv[0]) or argv[0]
    return ServeSpec(key=key, model=ref.model, argv=tuple(argv), gpus=gpus, base_url=ref.base_url,
                     health_url=f"{url.scheme}://{url.netloc}/health", timeout_s=ref.serve_timeout_s)


def stage_llm(cfg: RunConfig, stage: str) -> tuple[str, LLMRef] | None:
    """(section, model) of the judge or generator model `stage` uses in this run, if it uses one."""
    if stage == "seed" and cfg.seeds.source == "llm":  # core.seeds.pool opens expand.llm, else judge.llm
        return ("expand.llm", cfg.expand.llm) if cfg.expand.llm is not None else ("judge.llm", cfg.judge.llm)
    if stage == "judge" and cfg.judge.kind == "llm":
        return "judge.llm", cfg.judge.llm
    if stage == "expand" and cfg.expand.generator == "llm":
        return "expand.llm", cfg.expand.llm
    return None


def needed_for(cfg: RunConfig, stage: str) -> ServeSpec | None:
    """The server the engine starts for `stage`, if any."""
    found = stage_llm(cfg, stage)
    return serve_spec(found[1], found[0]) if found is not None and found[1].serve else None


def served(cfg: RunConfig) -> list[tuple[ServeSpec, list[str]]]:
    """Each server this run starts, with the stages that use it, in stage order (for `config check`)."""
    out: list[tuple[ServeSpec, list[str]]] = []
    for stage in SERVER_STAGES:
        if (spec := needed_for(cfg, stage)) is None:
            continue
        for known, stages in out:
            if known.same_server(spec):
                stages.append(stage)
                break
        else:
            out.append((spec, [stage]))
    return out


def marked_processes(run_dir: Path) -> set[int]:
    """This user's processes whose environment says they serve a model for the run in `run_dir`."""
    mark = f"{SERVER_MARK}={Path(run_dir).resolve()}".encode()
    found = set()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as fh:
                environ = fh.read()
        except OSError:  # gone, or another user's
            continue
        if mark in environ.split(b"\0"):  # a zombie's environ reads empty: the dead are not listed
            found.add(int(entry.name))
    return found


def end_marked_processes(run_dir: Path, grace_s: float = LEFTOVER_GRACE_S) -> list[int]:
    """End what marked_processes lists: SIGTERM, SIGKILL to those still there after `grace_s`. The pids
    it found (none on a platform without /proc)."""
    if not os.path.isdir("/proc"):
        return []
    found = sorted(marked_processes(run_dir))
    left = set(found)
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        for pid in left:
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.monotonic() + wait_s
        while left and time.monotonic() < deadline:
            time.sleep(0.1)
            left &= marked_processes(run_dir)
        if not left:
            break
    return found


@dataclass
class _Running:
    spec: ServeSpec
    process: object  # core.child_process.ManagedProcess
    log_path: Path
    since: float


class Servers:
    """The run's served models, at most one running at a time (core/engine.py calls before_stage before
    each stage and stop when the run ends). `event(name, data)` reports what happened: server_starting,
    server_started, server_reused, server_stopped, servers_left_over."""

    def __init__(self, cfg: RunConfig, run_dir: Path, event: Callable[[str, dict], None]):
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.dir = self.run_dir / "servers"
        self.event = event
        self.running: _Running | None = None

    async def end_leftovers(self) -> None:
        """End the server processes a killed core left behind (the engine calls this as a run starts)."""
        ended = await asyncio.get_running_loop().run_in_executor(None, end_marked_processes, self.run_dir)
        if ended:
            self.event("servers_left_over", {"pids": ended})

    async def before_stage(self, stage: str, iteration: int, stop) -> None:
        """Have the server `stage` needs running (reusing the running one when it is the same), or, before
        a stage that loads the policy, none at all. `stop` (an Event) set while a server starts ends the
        wait. ServerFailed when the server exits or is not healthy within its serve_timeout_s."""
        spec = needed_for(self.cfg, stage)
        if spec is None:
            if stage in POLICY_STAGES:
                await self.stop(f"before {stage}")
            return
        if self.running is not None and self.running.spec.same_server(spec):
            self.event("server_reused", {"key": spec.key, "started_for": self.running.spec.key, "stage": stage,
                                         "iteration": iteration, "base_url": spec.base_url})
            return
        await self.stop(f"{stage} uses another server")
        await self._start(spec, stage, iteration, stop)

    async def _start(self, spec: ServeSpec, stage: str, iteration: int, stop) -> None:
        from core.child_process import ChildProcessFailed, ManagedProcess

        log_path = self.dir / f"{spec.key}-{stage}-{iteration}.log"
        env = {SERVER_MARK: str(self.run_dir.resolve())}
        if spec.gpus is not None:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, spec.gpus))
        process = ManagedProcess(spec.argv, log_path, spec.health_url, env=env,
                                 name=f"{spec.key}'s server ({Path(spec.argv[0]).name})")
        self.event("server_starting", {"key": spec.key, "stage": stage, "iteration": iteration,
                                       "model": spec.model, "base_url": spec.base_url, "log": str(log_path)})
        started = time.monotonic()
        try:
            # here, on the event loop's thread: the server's parent-death signal follows the thread that
            # started it (core.child_process), and this one lives as long as the run
            process.start()
        except ChildProcessFailed as e:  # its address already answers, or the command cannot start
            raise ServerFailed(spec.key, str(e), log_path) from None
        self.running = _Running(spec, process, log_path, started)  # from here on, stop() ends it
        loop = asyncio.get_running_loop()
        healthy = loop.run_in_executor(None, process.wait_healthy, spec.timeout_s)
        while not healthy.done() and not stop.is_set():
            await asyncio.wait({healthy}, timeout=0.2)
        if stop.is_set():  # the run is stopping: the engine's stage returns at once
            await self.stop("the run was stopped while it started")
            await asyncio.wait({healthy})  # wait_healthy sees the process gone and returns quickly
            healthy.exception()  # retrieved: it is expected to fail now
            return
        try:
            healthy.result()
        except ChildProcessFailed as e:
            await self.stop("not healthy")
            raise ServerFailed(spec.key, str(e), log_path) from None
        self.event("server_started", {"key": spec.key, "stage": stage, "iteration": iteration,
                                      "base_url": spec.base_url, "pid": process.pid, "log": str(log_path),
                                      "wall_s": round(time.monotonic() - started, 1)})

    async def stop(self, why: str) -> None:
        """Stop the running server, if any, and whatever it left (its tensor-parallel workers)."""
        if self.running is None:
            return
        running, self.running = self.running, None
        loop = asyncio.get_running_loop()
        try:
            code = await loop.run_in_executor(None, running.process.stop)
        finally:
            await loop.run_in_executor(None, end_marked_processes, self.run_dir)
        self.event("server_stopped", {"key": running.spec.key, "why": why, "exit_code": code,
                                      "up_s": round(time.monotonic() - running.since, 1),
                                      "log": str(running.log_path)})
