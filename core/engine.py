"""The loop engine: an asyncio state machine over run -> iteration -> stage.

    seed -> eval(iteration 0, the base model) -> for j in 1..N: train -> eval(j) -> probe -> judge ->
    expand -> assemble                        (static ablation: train -> eval(j) -> assemble)

eval(j) comes right after train, so the operator sees iteration j's accuracy before the data work for
D_{j+1}. The last iteration stops after its eval: probe, judge, expand and assemble exist only to build
D_{j+1}, and there is none after the last one (on the cpu-demo they cost ~4.5 minutes for nothing).

Each stage runs in a spawned worker process (core/worker.py), so its model is freed when it ends. A
stage that finished wrote a `<stage>.done` marker and is skipped on resume; a stage that was killed
picks up from its own incremental output. Pause/stop are Events the workers check between batches and
optimizer steps (training saves a checkpoint before it pauses or stops). A judge or generator model
with `serve = true` has its server started before the stages that use it and stopped before those that
load the policy and when the run ends (core/servers.py); one that does not start pauses the run.

Everything an operator sees -- state, progress, throughput, events -- goes through `subscribe()`;
the headless `looptool core` prints it and core/daemon.py puts it on the bus.
"""
from __future__ import annotations

import asyncio
import collections
import functools
import logging
import multiprocessing as mp
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Awaitable, Callable, Protocol, runtime_checkable

from core import paths
from core.config import RunConfig
from core.errors import fixable
from core.records import write_json_atomic
from core.servers import ServerFailed, Servers
from core.stages.base import is_done
from core.store_format import iteration_doc
from core.worker import run_stage, watch_worker

log = logging.getLogger(__name__)

LOOP_STAGES = ("train", "eval", "probe", "judge", "expand", "assemble")
STATIC_STAGES = ("train", "eval", "assemble")
LAST_ITERATION_STAGES = ("train", "eval")  # nothing after the last eval feeds a D_{N+1}


@runtime_checkable
class RunEngine(Protocol):
    """What the daemon (core/daemon*.py) and the headless printer use of an engine: Engine implements it,
    and the daemon tests' stand-in implements the same Protocol."""
    run_id: str
    cfg: RunConfig
    cfg_text: str
    state: dict  # run_id, state, iteration, stage, paused, progress, seq, ts

    def subscribe(self, fn: Callable[[str, dict], None]) -> None: ...
    def pause(self) -> bool: ...
    def resume(self) -> bool: ...
    def stop(self) -> None: ...
    async def run(self) -> str: ...
    def request_eval(self, benchmark: str = "bfcl", subset: str | None = None, per_category: int | None = None,
                     iteration: int | None = None) -> asyncio.Future: ...
    def cancel_evals(self, reason: str) -> None: ...
    @property
    def evals_pending(self) -> int: ...
    async def serve_evals(self) -> None: ...


def new_run_id(cfg: RunConfig) -> str:
    return f"{cfg.run.name}-{datetime.now(timezone.utc).strftime('%Y%m%d-%H%M%S')}"


def run_dir_for(run_id: str) -> Path:
    return paths.home() / "runs" / run_id


class Engine:
    def __init__(self, cfg: RunConfig, run_id: str, store=None):
        """cfg: the validated run config (core.config.parse / load); its text goes to the workers."""
        cfg_text = cfg.text
        self.cfg_text = cfg_text
        self.cfg = cfg
        self.run_id = run_id
        self.run_dir = run_dir_for(run_id)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        cfg_file = self.run_dir / "config.toml"
        if not cfg_file.exists():
            tmp = cfg_file.with_suffix(".tmp")
            tmp.write_text(cfg_text)
            tmp.replace(cfg_file)
        self.store = store
        self._lock = _lock_run(self.run_dir)
        self._ctx = mp.get_context("spawn")
        self._pause = self._ctx.Event()
        self._stop = self._ctx.Event()
        self._subscribers: list[Callable[[str, dict], None]] = []
        self.state = {"run_id": run_id, "state": "starting", "iteration": 0, "stage": None,
                      "paused": False, "progress": None, "seq": 0, "ts": time.time()}
        self._evals: collections.deque = collections.deque()  # on-demand eval requests (request_eval)
        self._serving = False
        self.servers = Servers(cfg, self.run_dir, self._event)  # the judge's and generator's, if served
        from core.eval_job import run_eval_job

        self.eval_job_target = run_eval_job  # the spawned process entry of an on-demand eval
        self.stage_target = run_stage  # ... and of a stage (tests on machines without a model replace both)

    # -- the interface the console (over the bus) and the headless printer use -------------------

    def subscribe(self, fn: Callable[[str, dict], None]) -> None:
        """fn(kind, data) for kind in status | progress | metrics | event."""
        self._subscribers.append(fn)

    def pause(self) -> bool:
        if self._pause.is_set() or self.state["state"] in ("stopped", "finished"):
            return False
        self._pause.set()
        self._set(paused=True, state="paused")
        self._event("paused", {})
        return True

    def resume(self) -> bool:
        if not self._pause.is_set():
            return False
        self._pause.clear()
        self._set(paused=False, state="running")
        self._event("resumed", {})
        return True

    def stop(self) -> None:
        self._stop.set()
        self._event("stop_requested", {})

    def request_eval(self, benchmark: str = "bfcl", subset: str | None = None,
                     per_category: int | None = None, iteration: int | None = None) -> asyncio.Future:
        """Queue an evaluation of an iteration's weights (None = the latest trained; 0 = the base
        model). It runs in its own worker process at the next stage boundary, or at once while the
        run is paused; once run() has returned, call serve_evals(). The future gets the summary, or
        an exception whose message is for the operator."""
        from core.eval_job import EvalJobError, check_request

        fut = asyncio.get_running_loop().create_future()
        try:
            check_request(benchmark)
        except EvalJobError as e:
            fut.set_exception(e)
            return fut
        self._evals.append(({"benchmark": benchmark, "subset": subset, "per_category": per_category,
                             "iteration": iteration}, fut))
        return fut

    def cancel_evals(self, reason: str) -> None:
        """Fail the on-demand evals that have not started (a stop, or the core exiting)."""
        from core.eval_job import EvalJobError

        while self._evals:
            _, fut = self._evals.popleft()
            if not fut.done():
                fut.set_exception(EvalJobError(f"not run: {reason}"))

    @property
    def evals_pending(self) -> int:
        return len(self._evals)

    async def serve_evals(self) -> None:
        """Run the queued on-demand evals, one at a time (the stage loop calls this between stages)."""
        if self._serving:
            return
        self._serving = True
        try:
            while self._evals:
                args, fut = self._evals.popleft()
                if fut.done():
                    continue
                before, progress = self.state["state"], self.state["progress"]
                self._set(state="evaluating")
                try:
                    summary = await self._eval_job(args)
                except Exception as e:  # noqa: BLE001  the operator's request failed, the run goes on
                    if not fut.done():
                        fut.set_exception(e)
                else:
                    if not fut.done():
                        fut.set_result(summary)
                finally:
                    after = before if before in ("stopped", "finished", "failed") else (
                        "paused" if self._pause.is_set() else "running")
                    self._set(state=after, progress=progress)
        finally:
            self._serving = False

    async def _eval_job(self, args: dict) -> dict:
        from core.eval_job import EvalJobError, resolve_iteration

        j = resolve_iteration(self.run_dir, self.cfg.run.iterations, args.get("iteration"))
        self._event("eval_started", {"iteration": j, "on_demand": True,
                                     **{k: v for k, v in args.items() if k != "iteration" and v is not None}})
        q = self._ctx.Queue()
        proc = self._ctx.Process(target=self.eval_job_target, name="looptool-eval-job",
                                 args=(self.cfg_text, str(self.run_dir), j, args, q, self._stop))

        def on_message(kind: str, data) -> None:
            if kind == "progress":
                self._publish(kind, data)

        kind, data = await watch_worker(proc, q, ("done", "failed"), on_message, what="eval worker")
        if kind == "failed":
            raise EvalJobError(data)
        data = {**data, "run_id": self.run_id}
        if self.store is not None:
            await self._persist("storing the on-demand eval summary", functools.partial(self.store.aadd_eval, data))
        return data

    # -- running ------------------------------------------------------------------------------

    async def run(self) -> str:
        """Run (or resume) to the end. Returns the final state: finished | stopped | failed."""
        self._set(state="paused" if self._pause.is_set() else "running")
        await self._record_run("running")
        await self.servers.end_leftovers()  # a killed core's
        try:
            if await self._stage("seed", 1, marker_dir=self.run_dir) is None:
                return await self._finish("stopped")
            if self.cfg.eval.after_each_iteration and await self._stage("eval", 0) is None:
                return await self._finish("stopped")
            for j in range(1, self.cfg.run.iterations + 1):
                self._set(iteration=j)
                stats = {}
                for stage in iteration_stages(self.cfg, j):
                    stats[stage] = await self._stage(stage, j)
                    if stats[stage] is None:
                        return await self._finish("stopped")
                await self._record_iteration(j, stats)
            return await self._finish("finished")
        except StageFailed as e:
            self._event("error", {"stage": e.stage, "iteration": e.iteration, "traceback": e.tb})
            return await self._finish("failed")
        finally:  # _finish stopped it already, unless an exception ends the run
            await self.servers.stop("the core is exiting")

    async def _stage(self, stage: str, iteration: int, marker_dir: Path | None = None) -> dict | None:
        """Run one stage in a worker process: its stats (those of its done marker when it had finished
        before), None when stopped. A worker that meets a fault the operator can fix (a full disk, a
        permission) pauses the run with the reason; resume runs the stage again from its own output."""
        d = marker_dir or (self.run_dir / f"iter-{iteration}")
        if (done := is_done(d, stage)) is not None:
            if stage == "eval":  # a core killed between eval.done and the store write: store it now
                await self._store_eval_summaries(done)
            return done
        while True:
            await self.serve_evals()  # on-demand evals run at stage boundaries
            await self._wait_while_paused()  # pause between stages too
            if self._stop.is_set():
                return None
            if not await self._servers_ready(stage, iteration):
                continue  # a server that did not start paused the run: resume tries again
            if self._stop.is_set():  # stopped while a server started
                return None
            started = time.time()
            kind, data = await self._run_worker(stage, iteration)
            if kind != "fault":
                break
            await self._fault(f"stage {stage} (iteration {iteration})", data)
        if kind == "failed":
            raise StageFailed(stage, iteration, data)
        if kind == "stopped":
            self._event("stage_stopped", {"stage": stage, "iteration": iteration})
            return None
        self._event("stage_finished", {"stage": stage, "iteration": iteration,
                                       "wall_s": round(time.time() - started, 1), "stats": brief_stats(stage, data)})
        if stage == "eval":
            await self._store_eval_summaries(data)
        return data

    async def _servers_ready(self, stage: str, iteration: int) -> bool:
        """The served judge or generator model `stage` uses started (or the running one reused), or before a
        stage that loads the policy, the running one stopped (core/servers.py). False when one did not
        start: the run is paused with a fault that names the server's log."""
        try:
            await self.servers.before_stage(stage, iteration, self._stop)
        except ServerFailed as e:
            await self._fault(f"{e.key}'s server for stage {stage} (iteration {iteration})", str(e),
                              hint=f"read {e.log_path}, fix the cause (the GPUs it was given, the model, "
                                   f"{e.key}.serve_command), then resume")
            return False
        except OSError as e:  # its log's folder: a full disk or a permission
            if not fixable(e):
                raise
            await self._fault(f"starting the server for stage {stage} (iteration {iteration})", str(e))
            return False
        return True

    async def _run_worker(self, stage: str, iteration: int) -> tuple[str, object]:
        """The stage in its spawned worker; its outcome: (done, stats) | (stopped, None) | (failed,
        traceback) | (fault, message)."""
        self._set(stage=stage, iteration=iteration, progress=None)
        self._event("stage_started", {"stage": stage, "iteration": iteration})
        q = self._ctx.Queue()
        proc = self._ctx.Process(target=self.stage_target, name=f"looptool-{stage}",
                                 args=(self.cfg_text, str(self.run_dir), stage, iteration, q,
                                       self._pause, self._stop))

        def on_message(kind: str, data) -> None:
            if kind == "event":
                self._event(data.pop("event", f"{stage}_info"), data)
            else:
                self._publish(kind, data)

        async def on_idle() -> None:
            if self._evals and self._pause.is_set():  # paused mid-stage: serve evals at once
                await self.serve_evals()

        return await watch_worker(proc, q, ("done", "stopped", "failed", "fault"), on_message, on_idle, what="worker")

    async def _store_eval_summaries(self, stats: dict) -> None:
        if self.store is None:
            return
        for name, summary in stats.get("summaries", {}).items():  # each benchmark's summary is its own record
            await self._persist(f"storing the {name} eval summary",
                                functools.partial(self.store.aadd_eval, {**summary, "run_id": self.run_id}))

    # -- faults the operator can fix ----------------------------------------------------------

    async def _fault(self, where: str, message: str,
                     hint: str = "fix the cause (disk space, permissions), then resume") -> None:
        """Pause the run because of `message` (at `where`) and wait for resume (or stop)."""
        self._pause.set()
        self._set(paused=True, state="paused")
        self._event("fault", {"where": where, "message": message, "hint": hint})
        log.warning("run %s paused: %s: %s", self.run_id, where, message)
        await self._wait_while_paused()

    async def _wait_while_paused(self) -> None:
        """Until resumed or stopped, serving on-demand evals meanwhile."""
        while self._pause.is_set() and not self._stop.is_set():
            await self.serve_evals()
            await asyncio.sleep(0.2)

    async def _persist(self, what: str, write: Callable[[], Awaitable]) -> bool:
        """One of the engine's own writes (run.json, the store): a failure the operator can fix pauses
        the run and says why, and resume tries again. False when the run was stopped before it worked
        (a later resume writes it: every record is an upsert)."""
        while True:
            try:
                await write()
                return True
            except OSError as e:
                if not fixable(e) or self._stop.is_set():
                    log.error("run %s: %s failed: %s", self.run_id, what, e)
                    if not fixable(e):
                        raise
                    return False
                await self._fault(what, str(e))

    # -- state, events, store -----------------------------------------------------------------

    def _set(self, **kw) -> None:
        self.state.update(kw, seq=self.state["seq"] + 1, ts=time.time())
        self._publish("status", dict(self.state))

    def _event(self, name: str, data: dict) -> None:
        self._publish("event", {"event": name, "ts": time.time(), **data})

    def _publish(self, kind: str, data: dict) -> None:
        if kind == "progress":
            self.state["progress"] = data
        for fn in list(self._subscribers):
            fn(kind, data)

    async def _finish(self, final: str) -> str:
        await self.servers.stop(f"the run {final}")
        self._set(state=final, stage=None)
        await self._record_run(final)
        self._event("run_" + final, {})
        return final

    async def _record_run(self, state: str) -> None:
        doc = {"run_id": self.run_id, "name": self.cfg.run.name, "state": state,
               "run_dir": str(self.run_dir), "iterations": self.cfg.run.iterations,
               "model": self.cfg.model.name, "updated_at": datetime.now(timezone.utc).isoformat()}

        async def write_run_json():
            write_json_atomic(self.run_dir / "run.json", doc)

        await self._persist("writing run.json", write_run_json)
        await self._store_doc("runs", doc, "run_id")

    async def _record_iteration(self, j: int, stats: dict[str, dict]) -> None:
        """The iteration's record in the store: each stage's stats (the eval's in brief)."""
        doc = iteration_doc(self.run_id, j, {stage: brief_stats(stage, data) for stage, data in stats.items()})
        await self._store_doc("iterations", doc, "key")

    async def _store_doc(self, table: str, doc: dict, key: str) -> None:
        if self.store is None:
            return

        async def write():
            await self.store.aadd_doc(table, doc, key=key)
            await self.store.aflush()

        await self._persist(f"writing the store's {table} table", write)


def iteration_stages(cfg: RunConfig, j: int) -> list[str]:
    """The stages of iteration j, in order (see the module docstring)."""
    stages = STATIC_STAGES if cfg.assemble.static else LOOP_STAGES
    if j == cfg.run.iterations:
        stages = tuple(s for s in stages if s in LAST_ITERATION_STAGES)
    return [s for s in stages if s != "eval" or cfg.eval.after_each_iteration]


def _lock_run(run_dir: Path):
    """One core per run: an exclusive flock held for the engine's lifetime (released by the kernel
    when the process dies, so a killed run can be resumed at once)."""
    import fcntl

    from core.errors import UserError

    fh = open(run_dir / ".lock", "w")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        raise UserError(f"run {run_dir.name} is already running in another core process") from None
    return fh


class StageFailed(Exception):
    def __init__(self, stage: str, iteration: int, tb: str):
        super().__init__(f"stage {stage} (iteration {iteration}) failed")
        self.stage, self.iteration, self.tb = stage, iteration, tb


def _brief(summary: dict) -> dict:
    """An eval summary in brief: its scores and counts (summaries are large)."""
    return {"eval_id": summary.get("eval_id"), "scores": summary["scores"],
            "per_category": summary.get("per_category"), "wall_s": summary.get("wall_s")}


def brief_stats(stage: str, stats: dict) -> dict:
    """A stage's stats as events and iteration records carry them. The eval stage's (core/stages/eval.py):
    the BFCL summary in brief, plus `<benchmark>_skipped` (why a configured benchmark was not evaluated);
    every benchmark's summary reaches the console as its own eval_done record."""
    if stage != "eval":
        return stats if isinstance(stats, dict) else {}
    brief = _brief(stats["summaries"]["bfcl"]) if "bfcl" in stats.get("summaries", {}) else {}
    return {**brief, **{f"{name}_skipped": why for name, why in stats.get("skipped", {}).items()}}
