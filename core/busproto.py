"""The bus contract: topics, QoS, retained flags and versioned payloads (no MQTT here).

Everything under `looptool/v1/<core-id>/`:

    online              QoS 1, retained   true on connect; the last will publishes false (retained)
    status              QoS 1, retained   Status: run, iteration, stage, state, progress, seq, ts
    run/<run_id>/config QoS 1, retained   {"schema": 1, "run_id", "toml"}
    metrics/<stream>    QoS 0             Metrics: throughput | train | accuracy | hardware
    events              QoS 1             Event: stage_started, stage_finished, eval_done, paused, error, ...
    cmd/<verb>          QoS 1, NEVER      Command: {id, reply_to, args}; verbs pause|resume|stop|eval|history
                        retained          |samples|compare
    ack/<console-id>    QoS 1             Ack: {id, status: accepted|rejected|done|failed, detail, result}
    looptool/v1/console/<console-id>/online   QoS 1, retained + last will: attached consoles

Only `core.bus` talks MQTT; the core daemon and the console both build and parse payloads through
this module, so the two sides cannot drift apart. Parsing never raises anything but BadPayload, whose
message names the topic and the key path, is printable and at most MAX_REASON_CHARS long (it goes
back to the sender in an ack and into the audit log, so it never echoes a payload's bytes).

Bounds, checked before any parser sees a payload: a command is at most MAX_COMMAND_BYTES of UTF-8
JSON, any other payload MAX_PAYLOAD_BYTES; a command's id, sender and reply_to are printable text
(`text_problem`: no control characters, no lone surrogates) of bounded length.
"""
from __future__ import annotations

import json
import re
import time
import uuid
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, FiniteFloat, ValidationError

SCHEMA = 1
PREFIX = "looptool/v1"
CONSOLE_SPACE = "console"  # reserved: cannot be a core id
_ID_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")  # fullmatch: `$` would let a trailing newline through

VERBS = ("pause", "resume", "stop", "eval", "history", "samples", "compare")
ACK_STATUSES = ("accepted", "rejected", "done", "failed")
STATES = ("starting", "running", "paused", "evaluating", "stopping", "stopped", "finished", "failed")
STREAMS = ("throughput", "train", "accuracy", "hardware")
QOS = {"online": 1, "status": 1, "config": 1, "metrics": 0, "events": 1, "cmd": 1, "ack": 1}

MAX_COMMAND_BYTES = 16 * 1024  # an id, a reply topic, a sender and a few arguments: well under 1 KiB
MAX_PAYLOAD_BYTES = 8 * 1024 * 1024  # any other payload; the largest is a history ack (<= 1000 rows)
MAX_ID_CHARS = 128  # a command id; the console's are uuid4 hex (32)
MAX_SENDER_CHARS = 128  # a console id is at most 64
MAX_TOPIC_CHARS = 256  # reply_to: looptool/v1/<core>/ack/<console> is at most ~150
MAX_REASON_CHARS = 300  # a BadPayload message
MAX_EVAL_REF_CHARS = 300  # an eval id, a prefix of one, or RUN:J[:BENCHMARK] (a run id is at most ~200)
MAX_COMPARE_FLIPS = 100  # flipped entries listed per direction in a compare ack (their outputs cut short)


class BadPayload(ValueError):
    """A bus message that does not fit the contract; str() names the topic and key path, and is cut
    to MAX_REASON_CHARS."""

    def __init__(self, message: str):
        if len(message) > MAX_REASON_CHARS:
            message = message[:MAX_REASON_CHARS - 3] + "..."
        super().__init__(message)


def shown(value: Any, limit: int = 40) -> str:
    """`value` as a message may show it: short printable text as it is, anything else escaped
    (ascii(): control characters, surrogates and non-ASCII become escapes) and cut to `limit`."""
    if isinstance(value, str) and len(value) <= limit and value.isprintable():
        return value
    text = value if isinstance(value, str) else repr(value)
    return ascii(text[:limit])[1:-1] + ("..." if len(text) > limit else "")


def text_problem(value: str, max_chars: int) -> str | None:
    """Why `value` is not 1..max_chars characters of printable text, or None when it is. Printable
    is str.isprintable(): no control characters or line breaks, and no lone surrogates (category Cs:
    no UTF-8 encoder writes them, so they would break every JSON reader and the store)."""
    if not value:
        return "is empty"
    if len(value) > max_chars:
        return f"has {len(value)} characters; at most {max_chars}"
    if not value.isprintable():
        i, ch = next((i, ch) for i, ch in enumerate(value) if not ch.isprintable())
        return f"character {i + 1} (U+{ord(ch):04X}) is not printable text"
    return None


def _printable(max_chars: int) -> AfterValidator:
    def check(value: str) -> str:
        why = text_problem(value, max_chars)
        if why is not None:
            raise ValueError(why)
        return value
    return AfterValidator(check)


def load_json(raw: bytes | str, where: str, max_bytes: int = MAX_PAYLOAD_BYTES) -> Any:
    """A payload's JSON, bounded: BadPayload (never anything else) when it is over `max_bytes`, not
    UTF-8, not JSON, or nested deeper than the parser's recursion limit."""
    where = shown(where, 120)
    if isinstance(raw, (bytes, bytearray, memoryview)):
        raw = bytes(raw)
        if len(raw) > max_bytes:
            raise BadPayload(f"{where}: payload is {len(raw)} bytes; at most {max_bytes}")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise BadPayload(f"{where}: not UTF-8 (byte {e.start + 1})") from None
    elif isinstance(raw, str):
        size = len(raw) if len(raw) > max_bytes else len(raw.encode("utf-8", "surrogatepass"))
        if size > max_bytes:
            raise BadPayload(f"{where}: payload is {size} bytes; at most {max_bytes}")
        text = raw
    else:
        raise BadPayload(f"{where}: expected bytes or text, got {type(raw).__name__}")
    try:
        return json.loads(text)
    except RecursionError:  # the C scanner's depth guard: "[[[[..." within the size bound
        raise BadPayload(f"{where}: not JSON (nested too deeply)") from None
    except ValueError as e:  # JSONDecodeError, and ints over sys.get_int_max_str_digits()
        raise BadPayload(f"{where}: not JSON ({shown(str(e), 120)})") from None


def check_id(value: str, what: str = "core id") -> str:
    if not isinstance(value, str) or not _ID_RE.fullmatch(value) or value == CONSOLE_SPACE:
        raise BadPayload(f"{what} {shown(value)!r}: use 1-64 letters, digits, '_', '.', '-' (not {CONSOLE_SPACE!r})")
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
    eta_s: float | None = None  # the stage's remaining seconds, smoothed; None until enough is known (core/eta.py)
    tok_s: float | None = None  # tokens generated per second in this stage so far (eval, probe)


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
    # categories (comma list) or a named subset; None = the run's held-out subset
    subset: Annotated[str, _printable(2000)] | None = None
    per_category: int | None = Field(None, ge=1, le=1_000_000)
    iteration: int | None = Field(None, ge=0, le=100_000)  # whose weights; None = the latest finished iteration


class HistoryArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    table: Literal["runs", "iterations", "evals", "audit"] = "runs"  # audit: the core's command log
    run_id: Annotated[str, _printable(MAX_ID_CHARS)] | None = None
    limit: int = Field(50, ge=1, le=1000)


SAMPLE_STAGES = ("probe", "judge", "expand", "eval")  # whose examples `samples` pages through (core.samples)
MAX_SAMPLES_LIMIT = 50  # rows of one samples page: each string in a row is bounded (core.samples)


class SamplesArgs(BaseModel):
    """A page of one iteration's examples (core.samples.page), or with prompt_id one sample's rendered
    prompt (core.samples.prompt). The filter keys are checked by the core against the stage's keys."""
    model_config = ConfigDict(extra="forbid")
    run_id: Annotated[str, _printable(MAX_ID_CHARS)] | None = None  # None = the core's own run
    iteration: int = Field(ge=0, le=100_000)
    stage: Literal[SAMPLE_STAGES]
    filters: dict[Annotated[str, _printable(32)], Annotated[str, _printable(200)]] = Field(
        default_factory=dict, max_length=8)
    offset: int = Field(0, ge=0, le=1_000_000_000)
    limit: int = Field(20, ge=1, le=MAX_SAMPLES_LIMIT)
    prompt_id: Annotated[str, _printable(MAX_ID_CHARS)] | None = None


class CompareArgs(BaseModel):
    """Two evals of one benchmark, B against A (core/eval_compare.py): what flipped and by how much."""
    model_config = ConfigDict(extra="forbid")
    a: Annotated[str, _printable(MAX_EVAL_REF_CHARS)]  # eval id (or unique prefix) or RUN:J[:BENCHMARK]
    b: Annotated[str, _printable(MAX_EVAL_REF_CHARS)]
    category: Annotated[str, _printable(200)] | None = None  # None = every category
    limit: int = Field(20, ge=0, le=MAX_COMPARE_FLIPS)  # flipped entries listed per direction


_ARGS: dict[str, type[BaseModel] | None] = {
    "pause": None, "resume": None, "stop": None, "eval": EvalArgs, "history": HistoryArgs,
    "samples": SamplesArgs, "compare": CompareArgs}


class Command(_Payload):
    id: Annotated[str, _printable(MAX_ID_CHARS)] = Field(default_factory=lambda: uuid.uuid4().hex)
    reply_to: Annotated[str, _printable(MAX_TOPIC_CHARS)]  # the ack topic of the sender
    sender: Annotated[str, _printable(MAX_SENDER_CHARS)] | None = None  # console id, for the audit log
    args: dict[str, Any] = Field(default_factory=dict)
    ts: FiniteFloat = Field(default_factory=time.time)


class Ack(_Payload):
    id: str
    verb: str | None = None
    status: Literal[ACK_STATUSES]
    detail: str = ""
    result: Any = None
    ts: float = Field(default_factory=time.time)


def _validation_reason(e: ValidationError, prefix: str = "") -> str:
    """`key.path: what is wrong` of the first error; the keys come from the payload, so each is
    shown() (and BadPayload cuts a long message)."""
    err = e.errors(include_url=False, include_input=False)[0]
    path = ".".join(shown(p) for p in err["loc"])
    msg = err["msg"].removeprefix("Value error, ")
    return f"{prefix}{path or '(root)'}: {shown(msg, 160)}"


def _parse(model: type[BaseModel], raw: bytes | str, where: str, max_bytes: int = MAX_PAYLOAD_BYTES):
    data = load_json(raw, where, max_bytes)
    where = shown(where, 120)
    if not isinstance(data, dict):
        raise BadPayload(f"{where}: expected a JSON object, got {type(data).__name__}")
    schema = data.get("schema", SCHEMA)
    if type(schema) is not int or schema != SCHEMA:
        raise BadPayload(f"{where}: schema {shown(schema)} is not supported (this side speaks {SCHEMA})")
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise BadPayload(f"{where}: {_validation_reason(e)}") from None


def parse_status(raw, where="status") -> Status:
    return _parse(Status, raw, where)


def parse_metrics(raw, where="metrics") -> Metrics:
    return _parse(Metrics, raw, where)


def parse_event(raw, where="events") -> Event:
    return _parse(Event, raw, where)


def parse_ack(raw, where="ack") -> Ack:
    return _parse(Ack, raw, where)


def parse_command(verb: str, raw, where: str = "cmd") -> tuple[Command, BaseModel | None]:
    """(command, validated args) for a known verb; BadPayload otherwise (the core acks it rejected).
    The payload is at most MAX_COMMAND_BYTES."""
    if verb not in _ARGS:
        raise BadPayload(f"{shown(where, 120)}: unknown command {shown(verb)!r}; verbs are {', '.join(VERBS)}")
    cmd = _parse(Command, raw, where, MAX_COMMAND_BYTES)
    model = _ARGS[verb]
    if model is None:
        if cmd.args:
            raise BadPayload(f"{shown(where, 120)}: args: {verb} takes no arguments")
        return cmd, None
    try:
        return cmd, model.model_validate(cmd.args)
    except ValidationError as e:
        raise BadPayload(f"{shown(where, 120)}: {_validation_reason(e, 'args.')}") from None


class Envelope(NamedTuple):
    """What a command that may not parse still tells: its id and reply_to, each None unless valid."""
    id: str | None
    reply_to: str | None


def command_envelope(raw) -> Envelope:
    """The id and reply_to of a command payload, read under the same bounds as parse_command, so a
    rejection can be acked and correlated; never raises. A payload over MAX_COMMAND_BYTES is not
    read at all: its envelope is empty."""
    try:
        data = load_json(raw, "cmd", MAX_COMMAND_BYTES)
    except BadPayload:
        return Envelope(None, None)
    if not isinstance(data, dict):
        return Envelope(None, None)
    cid, rt = data.get("id"), data.get("reply_to")
    cid = cid if isinstance(cid, str) and text_problem(cid, MAX_ID_CHARS) is None else None
    rt = rt if (isinstance(rt, str) and text_problem(rt, MAX_TOPIC_CHARS) is None and rt.startswith(PREFIX + "/")
                and "#" not in rt and "+" not in rt) else None
    return Envelope(cid, rt)
