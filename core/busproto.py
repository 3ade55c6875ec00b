"""The bus contract: topics, QoS, retained flags and versioned payloads (no MQTT here).

Everything under `looptool/v1/<core-id>/`:

    online              QoS 1, retained   true on connect; the last will publishes false (retained)
    status              QoS 1, retained   Status: run, iteration, stage, state, progress, seq, ts
    run/<run_id>/config QoS 1, retained   {"schema": 1, "run_id", "toml"}
    metrics/<stream>    QoS 0             Metrics: throughput | train | accuracy | hardware
    events              QoS 1             Event: stage_started, stage_finished, eval_done, paused, error, ...
    cmd/<verb>          QoS 1, NEVER      Command: {id, reply_to, args}; verbs pause|resume|stop|eval|history
                        retained
    ack/<console-id>    QoS 1             Ack: {id, status: accepted|rejected|done|failed, detail, result}
    looptool/v1/console/<console-id>/online   QoS 1, retained + last will: attached consoles

Only `core.bus` talks MQTT; the core daemon and the console both build and parse payloads through
this module, so the two sides cannot drift apart. Parsing never raises anything but BadPayload, whose
message names the topic and the key path.
"""
from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

SCHEMA = 1
PREFIX = "looptool/v1"
CONSOLE_SPACE = "console"  # reserved: cannot be a core id
_ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")

VERBS = ("pause", "resume", "stop", "eval", "history")
ACK_STATUSES = ("accepted", "rejected", "done", "failed")
STATES = ("starting", "running", "paused", "evaluating", "stopping", "stopped", "finished", "failed")
STREAMS = ("throughput", "train", "accuracy", "hardware")
QOS = {"online": 1, "status": 1, "config": 1, "metrics": 0, "events": 1, "cmd": 1, "ack": 1}


class BadPayload(ValueError):
    """A bus message that does not fit the contract; str() names the topic and key path."""


def check_id(value: str, what: str = "core id") -> str:
    if not _ID_RE.match(value or "") or value == CONSOLE_SPACE:
        raise BadPayload(f"{what} {value!r}: use 1-64 letters, digits, '_', '.', '-' (not {CONSOLE_SPACE!r})")
    return value


# -- topics -----------------------------------------------------------------------------------------

def core_root(core_id: str) -> str:
    return f"{PREFIX}/{check_id(core_id)}"


def topic(core_id: str, kind: str, *rest: str) -> str:
    """topic("gpu0", "metrics", "train") -> looptool/v1/gpu0/metrics/train"""
    return "/".join([core_root(core_id), kind, *rest])


def console_online(console_id: str) -> str:
    return f"{PREFIX}/{CONSOLE_SPACE}/{check_id(console_id, 'console id')}/online"


def split(topic_name: str) -> tuple[str, str, list[str]]:
    """looptool/v1/<core>/<kind>/<rest...> -> (core, kind, rest); BadPayload for anything else."""
    parts = topic_name.split("/")
    if len(parts) < 4 or "/".join(parts[:2]) != PREFIX:
        raise BadPayload(f"{topic_name}: not a looptool/v1/<core>/<kind> topic")
    return parts[2], parts[3], parts[4:]


# -- payloads ---------------------------------------------------------------------------------------

class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid")
    schema_: int = Field(SCHEMA, alias="schema")

    def dump(self) -> bytes:
        return json.dumps(self.model_dump(by_alias=True, exclude_none=True), separators=(",", ":")).encode()


class Progress(BaseModel):
    model_config = ConfigDict(extra="allow")
    stage: str | None = None
    iteration: int | None = None
    done: int = 0
    total: int = 0
    eta_s: float | None = None  # the stage's remaining seconds at its rate so far (core-side estimate)


class Status(_Payload):
    core_id: str
    run_id: str | None = None
    state: Literal[STATES] = "starting"
    iteration: int = 0
    iterations: int = 0
    stage: str | None = None
    paused: bool = False
    progress: Progress | None = None
    seq: int = 0
    ts: float = Field(default_factory=time.time)


class Metrics(_Payload):
    model_config = ConfigDict(extra="allow")  # stream-specific numbers: tok_s, loss, reward_mean, cpu_pct, ...
    stream: Literal[STREAMS]
    stage: str | None = None
    iteration: int | None = None
    ts: float = Field(default_factory=time.time)


class Event(_Payload):
    model_config = ConfigDict(extra="allow")  # event-specific fields: stage, wall_s, stats, traceback, ...
    event: str
    ts: float = Field(default_factory=time.time)


class EvalArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    benchmark: Literal["bfcl", "acebench"] = "bfcl"
    subset: str | None = None  # categories (comma list) or a named subset; None = the run's held-out subset
    per_category: int | None = Field(None, ge=1)
    iteration: int | None = Field(None, ge=0)  # whose weights; None = the latest finished iteration


class HistoryArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    table: Literal["runs", "iterations", "evals", "audit"] = "runs"  # audit: the core's command log
    run_id: str | None = None
    limit: int = Field(50, ge=1, le=1000)


_ARGS: dict[str, type[BaseModel] | None] = {
    "pause": None, "resume": None, "stop": None, "eval": EvalArgs, "history": HistoryArgs}


class Command(_Payload):
    id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    reply_to: str  # the ack topic of the sender
    sender: str | None = None  # console id, for the audit log
    args: dict[str, Any] = Field(default_factory=dict)
    ts: float = Field(default_factory=time.time)


class Ack(_Payload):
    id: str
    verb: str | None = None
    status: Literal[ACK_STATUSES]
    detail: str = ""
    result: Any = None
    ts: float = Field(default_factory=time.time)


def _parse(model: type[BaseModel], raw: bytes | str, where: str):
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise BadPayload(f"{where}: not JSON ({e})") from None
    if not isinstance(data, dict):
        raise BadPayload(f"{where}: expected a JSON object, got {type(data).__name__}")
    if data.get("schema", SCHEMA) != SCHEMA:
        raise BadPayload(f"{where}: schema {data.get('schema')!r} is not supported (this side speaks {SCHEMA})")
    try:
        return model.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        path = ".".join(str(p) for p in err["loc"]) or "(root)"
        raise BadPayload(f"{where}: {path}: {err['msg']}") from None


def parse_status(raw, where="status") -> Status:
    return _parse(Status, raw, where)


def parse_metrics(raw, where="metrics") -> Metrics:
    return _parse(Metrics, raw, where)


def parse_event(raw, where="events") -> Event:
    return _parse(Event, raw, where)


def parse_ack(raw, where="ack") -> Ack:
    return _parse(Ack, raw, where)


def parse_command(verb: str, raw, where: str = "cmd") -> tuple[Command, BaseModel | None]:
    """(command, validated args) for a known verb; BadPayload otherwise (the core acks it rejected)."""
    if verb not in _ARGS:
        raise BadPayload(f"{where}: unknown command {verb!r}; verbs are {', '.join(VERBS)}")
    cmd = _parse(Command, raw, where)
    model = _ARGS[verb]
    if model is None:
        if cmd.args:
            raise BadPayload(f"{where}: args: {verb} takes no arguments")
        return cmd, None
    try:
        return cmd, model.model_validate(cmd.args)
    except ValidationError as e:
        err = e.errors()[0]
        path = ".".join(str(p) for p in err["loc"])
        raise BadPayload(f"{where}: args.{path}: {err['msg']}") from None


def command_id_of(raw) -> str | None:
    """Best effort id of a command that failed to parse, so the rejection can still be correlated."""
    try:
        data = json.loads(raw)
        return data.get("id") if isinstance(data, dict) and isinstance(data.get("id"), str) else None
    except (ValueError, UnicodeDecodeError):
        return None


def reply_to_of(raw) -> str | None:
    try:
        data = json.loads(raw)
        rt = data.get("reply_to") if isinstance(data, dict) else None
        return rt if isinstance(rt, str) and rt.startswith(PREFIX + "/") and "#" not in rt and "+" not in rt else None
    except (ValueError, UnicodeDecodeError):
        return None
