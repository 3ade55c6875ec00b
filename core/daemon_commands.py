"""The core daemon's incoming side: cmd/<verb> on the bus, acked on the sender's reply_to.

Each command is validated with busproto.parse_command; every outcome (accepted, then done | failed,
or rejected) is acked on reply_to, which must be this core's ack/<console-id>. A command id seen
before is ignored, a retained command is rejected, and each outcome but `accepted` lands in the
store's `audit` table, keyed by the command's id: a command without a valid id (busproto's bounds:
printable, at most MAX_ID_CHARS) is acked and logged but never stored, and a payload over
MAX_COMMAND_BYTES is only logged (unread, it names no reply_to to ack on). At most
MAX_OPEN_EVALS on-demand evals wait or run at once; one more is rejected. `history` and `compare` answer
from the results store (compare also reads the two evals' records files, off the event loop); `samples`
from a run's record files (core.samples: a bounded page, or one rendered prompt), read on a thread so
the loop never waits on a file.
"""
from __future__ import annotations

import asyncio
import collections
import logging
import time

from core import busproto as bp
from core.daemon_telemetry import eval_brief
from core.errors import UserError
from core.eval_compare import compare

log = logging.getLogger("looptool.daemon")

# an output in a compare ack: 2 * MAX_COMPARE_FLIPS of them, each at most ~12 bytes a character as escaped
# JSON, stay well under MAX_PAYLOAD_BYTES
COMPARE_RAW_CHARS = 1000
SEEN_IDS = 2000  # command ids remembered for duplicate detection
MAX_OPEN_EVALS = 8  # on-demand evals queued or running; each holds a future and a worker's turn


class CommandHandler:
    """Runs the verbs against the daemon's engine; the daemon owns the run's lifecycle (stopping,
    engine_done, final, the exit event) and its background tasks (`spawn`)."""

    def __init__(self, daemon):
        self.daemon = daemon
        self.engine, self.bus, self.store = daemon.engine, daemon.bus, daemon.store
        self.telemetry = daemon.telemetry
        self.core_id, self.topic = daemon.core_id, daemon.topic
        self._seen_ids: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._stop_acks: list[tuple[str, bp.Command]] = []  # stops accepted, acked done when the run ends
        self._open_evals: set[asyncio.Future] = set()  # accepted on-demand evals not finished yet

    def on_command(self, topic: str, payload: bytes, retained: bool) -> None:
        prefix = self.topic("cmd") + "/"
        verb = topic[len(prefix):] if topic.startswith(prefix) else topic
        verb = verb if verb in bp.VERBS else bp.shown(verb)  # it goes into acks, the log and the audit
        env = bp.command_envelope(payload)
        reply_to = self._reply_topic(env.reply_to)
        cid = env.id
        if cid is not None:
            if cid in self._seen_ids:
                log.info("duplicate command %s ignored", cid)
                return
            self._seen_ids[cid] = None
            while len(self._seen_ids) > SEEN_IDS:
                self._seen_ids.popitem(last=False)
        # what a rejection before parsing can name; model_construct: an empty id is no valid Command
        envelope = bp.Command.model_construct(id=cid or "", reply_to=reply_to or self.topic("ack", "unknown"),
                                              sender=None, args={})
        if retained:
            return self._reject(reply_to, envelope, verb, "retained commands are ignored (publish commands "
                                "with retain=false; a retained command would fire again on every reconnect)")
        try:
            cmd, args = bp.parse_command(verb, payload, where=topic)
        except bp.BadPayload as e:
            return self._reject(reply_to, envelope, verb, str(e))
        if reply_to is None:
            return self._reject(None, cmd, verb, f"{topic}: reply_to: must be {self.topic('ack', '<console-id>')}")
        try:
            getattr(self, "_cmd_" + verb)(reply_to, cmd, args)
        except Exception as e:  # noqa: BLE001  a bug here must not take the core down
            log.exception("command %s", verb)
            self.ack(reply_to, cmd, verb, "failed", f"internal error: {e}")

    def run_ended(self, final: str) -> None:
        """The engine's run returned: the stops waiting for it are done."""
        for reply_to, cmd in self._stop_acks:
            self.ack(reply_to, cmd, "stop", "done", f"run {final}", {"state": final})
        self._stop_acks.clear()

    # -- acks and the audit table -----------------------------------------------------------------

    def _reply_topic(self, rt: str | None) -> str | None:
        """`rt` if it is this core's ack/<valid console id>, else None."""
        prefix = self.topic("ack") + "/"
        if rt is None or not rt.startswith(prefix):
            return None
        try:
            bp.check_id(rt[len(prefix):], "console id")
        except bp.BadPayload:
            return None
        return rt

    def _reject(self, reply_to: str | None, cmd: bp.Command, verb: str, why: str) -> None:
        log.info("rejected %s: %s", verb, why)
        self.ack(reply_to, cmd, verb, "rejected", why)

    def ack(self, reply_to: str | None, cmd: bp.Command, verb: str, status: str, detail: str = "",
            result=None) -> None:
        if reply_to is not None:
            ack = bp.Ack(id=cmd.id, verb=verb, status=status, detail=detail, result=result)
            self.bus.publish_nowait(reply_to, ack.dump(), qos=1)
        if status != "accepted":
            self._audit(cmd, verb, status, detail)

    def _audit(self, cmd: bp.Command, verb: str, status: str, detail: str) -> None:
        if self.store is None or not cmd.id:  # no valid id: nothing to key the row on (logged instead)
            return
        doc = {"key": f"{self.core_id}/{cmd.id}", "ts": time.time(), "core_id": self.core_id,
               "run_id": self.engine.run_id, "id": cmd.id, "verb": verb, "sender": cmd.sender,
               "reply_to": cmd.reply_to, "args": cmd.args, "status": status, "detail": detail[:2000]}
        self.daemon.spawn(self._store_audit(doc))

    async def _store_audit(self, doc: dict) -> None:
        try:
            await self.store.aadd_doc("audit", doc, key="key")
            await self.store.aflush()
        except Exception as e:  # noqa: BLE001
            log.warning("audit log: %s", e)

    # -- the verbs ---------------------------------------------------------------------------------

    def _run_state_word(self) -> str:
        d = self.daemon
        return "stopping" if d.stopping and not d.engine_done else self.engine.state.get("state", "starting")

    def _cmd_pause(self, reply_to, cmd, args) -> None:
        self._pause_or_resume(reply_to, cmd, "pause", self.engine.pause, "already paused", "paused")

    def _cmd_resume(self, reply_to, cmd, args) -> None:
        self._pause_or_resume(reply_to, cmd, "resume", self.engine.resume, "not paused", "resumed")

    def _pause_or_resume(self, reply_to, cmd, verb: str, engine_call, refused: str, done: str) -> None:
        """`engine_call()` is engine.pause or engine.resume: False when the run already is that way."""
        if self.daemon.stopping or self.daemon.engine_done:
            return self._reject(reply_to, cmd, verb, f"cannot {verb}: the run is {self._run_state_word()}")
        if not engine_call():
            return self._reject(reply_to, cmd, verb, refused)
        self.ack(reply_to, cmd, verb, "accepted")
        self.ack(reply_to, cmd, verb, "done", done)

    def _cmd_stop(self, reply_to, cmd, args) -> None:
        d = self.daemon
        if d.stopping:
            return self._reject(reply_to, cmd, "stop", "a stop is already in progress")
        d.stopping = True
        self.telemetry.mark_status()
        self.ack(reply_to, cmd, "stop", "accepted", "stopping at the next safe point")
        self.engine.cancel_evals("the run was asked to stop")
        if d.engine_done:
            self.ack(reply_to, cmd, "stop", "done", f"run {d.final}; core exiting", {"state": d.final})
            d.exit.set()
        else:
            self.engine.stop()
            self._stop_acks.append((reply_to, cmd))

    def _cmd_eval(self, reply_to, cmd, args: bp.EvalArgs) -> None:
        d = self.daemon
        if d.stopping:
            return self._reject(reply_to, cmd, "eval", "the run is stopping")
        if len(self._open_evals) >= MAX_OPEN_EVALS:
            return self._reject(reply_to, cmd, "eval", f"the eval queue is full ({MAX_OPEN_EVALS} on-demand evals "
                                "waiting or running): send it again when one has finished")
        fut = self.engine.request_eval(**args.model_dump())
        self._open_evals.add(fut)
        fut.add_done_callback(self._open_evals.discard)
        where = ("now" if d.engine_done or self.engine.state.get("paused")
                 else "queued for the next stage boundary")
        self.ack(reply_to, cmd, "eval", "accepted", f"{args.benchmark} eval {where}")
        if d.engine_done and not fut.done():
            d.spawn(self.engine.serve_evals())
        d.spawn(self._finish_eval(reply_to, cmd, fut))

    async def _finish_eval(self, reply_to, cmd, fut) -> None:
        try:
            summary = await fut
        except asyncio.CancelledError:
            self.ack(reply_to, cmd, "eval", "failed", "cancelled")
            raise
        except Exception as e:  # noqa: BLE001  the message is for the operator
            msg = str(e) or type(e).__name__
            self.ack(reply_to, cmd, "eval", "failed", msg[-4000:])
            self.telemetry.send_event({"event": "eval_failed", "id": cmd.id, "detail": msg[-500:]})
            return
        brief = self.telemetry.publish_eval_result({**summary, "on_demand": True})
        score = (brief.get("scores") or {}).get("overall")
        detail = f"{brief.get('benchmark')} iteration {brief.get('iteration')}" + (
            f": overall {score:.4f}" if isinstance(score, (int, float)) else "")
        self.ack(reply_to, cmd, "eval", "done", detail, brief)

    def _cmd_history(self, reply_to, cmd, args: bp.HistoryArgs) -> None:
        if self.store is None:
            return self._reject(reply_to, cmd, "history", "this core has no results store")
        self.ack(reply_to, cmd, "history", "accepted")
        self.daemon.spawn(self._finish_history(reply_to, cmd, args))

    async def _answer(self, reply_to, cmd, verb: str, work, failing: str) -> None:
        """Ack `verb` done with `await work()`'s (detail, result), or failed: a UserError's message as it
        is, any other exception (a bug, an unreadable file) logged and said as `failing: error`. The
        core stays up either way."""
        try:
            detail, result = await work()
        except UserError as e:
            self.ack(reply_to, cmd, verb, "failed", str(e))
            return
        except Exception as e:  # noqa: BLE001  said to the operator, never taking the core down
            log.exception(verb)
            self.ack(reply_to, cmd, verb, "failed", f"{failing}: {e}")
            return
        self.ack(reply_to, cmd, verb, "done", detail, result)

    async def _finish_history(self, reply_to, cmd, args: bp.HistoryArgs) -> None:
        async def work():
            rows = await self.history(args.table, args.run_id, args.limit)
            return f"{len(rows)} {args.table}", {"table": args.table, "run_id": args.run_id, "rows": rows}
        await self._answer(reply_to, cmd, "history", work, f"reading {args.table}")

    def _cmd_samples(self, reply_to, cmd, args: bp.SamplesArgs) -> None:
        from core.samples import check_filters

        try:
            check_filters(args.stage, args.filters)
        except UserError as e:
            return self._reject(reply_to, cmd, "samples", f"args.filters: {e}")
        self.ack(reply_to, cmd, "samples", "accepted")
        self.daemon.spawn(self._finish_samples(reply_to, cmd, args))

    async def _finish_samples(self, reply_to, cmd, args: bp.SamplesArgs) -> None:
        from core import samples

        async def work():
            run_id = args.run_id or self.engine.run_id
            runs = await self.store.aget_docs("runs", run_id=run_id) if self.store is not None else []
            own = getattr(self.engine, "run_dir", None) if run_id == self.engine.run_id else None
            run_dir = samples.run_dir_of(runs, run_id, own)
            evals = None
            if args.stage == "eval":
                docs = await self.store.aget_docs("evals", run_id=run_id) if self.store is not None else []
                evals = samples.evals_of(docs, run_id, run_dir, args.iteration)
            if args.prompt_id is not None:
                result = await asyncio.to_thread(samples.prompt, run_dir, args.iteration, args.stage,
                                                 args.prompt_id, evals=evals)
                return f"prompt of {args.prompt_id}" if result.get("prompt") is not None else result["note"], result
            result = await asyncio.to_thread(samples.page, run_dir, args.iteration, args.stage, args.filters,
                                             args.offset, args.limit, evals=evals)
            return f"{len(result['rows'])} of {result['total']} {args.stage} rows", result
        await self._answer(reply_to, cmd, "samples", work, f"reading {args.stage} samples")

    def _cmd_compare(self, reply_to, cmd, args: bp.CompareArgs) -> None:
        if self.store is None:
            return self._reject(reply_to, cmd, "compare", "this core has no results store")
        self.ack(reply_to, cmd, "compare", "accepted")
        self.daemon.spawn(self._finish_compare(reply_to, cmd, args))

    async def _finish_compare(self, reply_to, cmd, args: bp.CompareArgs) -> None:
        async def work():  # the records files are read in a thread: a large eval must not stall telemetry
            result = await asyncio.to_thread(compare, self.store, args.a, args.b, category=args.category,
                                             max_flips=args.limit, raw_chars=COMPARE_RAW_CHARS)
            overall = result["overall"] or {}
            return (f"{result['a']['eval_id']} vs {result['b']['eval_id']}: {overall.get('n', 0)} shared "
                    f"entries, {result['right_to_wrong']['count']} right -> wrong, "
                    f"{result['wrong_to_right']['count']} wrong -> right"), result
        await self._answer(reply_to, cmd, "compare", work, f"comparing {args.a} with {args.b}")

    # -- store queries -----------------------------------------------------------------------------

    async def history(self, table: str, run_id: str | None, limit: int) -> list[dict]:
        """The newest `limit` rows of a store table (of one run if `run_id`); evals as their brief."""
        match = {"run_id": run_id} if run_id else {}
        docs = await self.store.aget_docs(table, **match)
        if table == "evals":
            docs = [eval_brief(d) for d in docs]
            docs.sort(key=lambda d: str(d.get("started_at") or ""), reverse=True)
        elif table == "runs":
            docs.sort(key=lambda d: str(d.get("updated_at") or ""), reverse=True)
        elif table == "audit":
            docs.sort(key=lambda d: d.get("ts") or 0, reverse=True)
        else:
            docs.sort(key=lambda d: (str(d.get("run_id")), d.get("iteration") or 0), reverse=True)
        return docs[:limit]
