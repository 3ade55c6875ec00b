"""Import seed samples from LoopTool-23k-, ToolACE- and xLAM/APIGen-shaped files (or looptool's own JSONL).

A file is a JSON list or JSONL. Every row is converted on its own; a bad row becomes one
``("path:line", problem)`` entry (``path:item N`` for the N-th element of a JSON list) and never stops the
import. Rows:
  * looptool23k  {instruction, input, output}: tools from the ``<tools>`` block of the system prompt; the
                 history written with literal chat tokens is split back into real messages;
  * toolace      {system, conversations: [{from, value}]}: one sample per assistant turn, calls in
                 Python syntax ``[f(a=1)]`` (parsed with ast, never evaluated);
  * xlam         {query, tools, answers} (tools / answers as JSON strings or lists); no answers = refusal;
  * looptool     core.schema.Sample rows.
Model text is only ever parsed with json / ast (core.toolcalls). A file that cannot be read as UTF-8
text is one UserError (core.user_input.read_text); within it, a row nested deeper than MAX_ROW_DEPTH
(JSON inside its strings included) and a tool doc of the wrong shape (core.tool_docs) are bad rows.
"""
from __future__ import annotations

import itertools
import json
import re
from pathlib import Path
from typing import Any, Callable

from pydantic import ValidationError

from core.errors import UserError
from core.schema import Call, Label, Message, Sample, validation_message
from core.tool_docs import MAX_SCHEMA_DEPTH, ToolDocError, check_doc
from core.toolcalls import DecodeError, parse_hermes, parse_python_calls, strip_think
from core.user_input import key_path, read_text

FORMATS = ("auto", "looptool23k", "toolace", "xlam", "looptool")
REFUSAL_TEXT = "I'm sorry, but none of the available tools can help with this request."
_SCHEMA_KEYS = ("type", "description", "enum", "properties", "required", "items", "default")
# Far above any real row (a Sample with nested parameter schemas is ~45 levels deep), far below what
# recursive code (json's encoder, pydantic, ToolCall's 100-level bound) can take
MAX_ROW_DEPTH = 64


class RowError(ValueError):
    """A row that cannot become a sample; the message says why."""


def too_deep(value: Any, limit: int = MAX_ROW_DEPTH) -> bool:
    """Whether objects and arrays in `value` nest deeper than `limit` (iterative: no recursion)."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (dict, list)):
            if depth > limit:
                return True
            stack.extend((child, depth + 1) for child in (node.values() if isinstance(node, dict) else node))
    return False


def load_json(text: str, key: str = "") -> Any:
    """JSON from a file's line, or from a JSON string at `key` inside a row, nested at most MAX_ROW_DEPTH
    levels; RowError otherwise (json's own recursion limit included: a 100k-deep line is a bad row,
    not a crash)."""
    where = f"{key}: " if key else ""
    deep = RowError(f"{where}nested too deeply (over {MAX_ROW_DEPTH} levels)")
    try:
        value = json.loads(text)
    except RecursionError:
        raise deep from None
    except ValueError:
        raise RowError(f"{where}not valid JSON") from None
    if too_deep(value):
        raise deep
    return value


# ------------------------------------------------------------------------------------ tool docs

def _schema(node: Any, depth: int = 0) -> Any:
    if not isinstance(node, dict) or depth > MAX_SCHEMA_DEPTH:  # deeper: left as it is, check_doc rejects it
        return node
    out = {k: node[k] for k in _SCHEMA_KEYS if k in node}
    if out.get("type") == "object":
        out["type"] = "dict"
    if isinstance(out.get("properties"), dict):
        out["properties"] = {k: _schema(v, depth + 1) for k, v in out["properties"].items()}
    if isinstance(out.get("items"), dict):
        out["items"] = _schema(out["items"], depth + 1)
    return out


def bfcl_doc(tool: Any) -> dict:
    """An OpenAI/JSON-schema or BFCL tool as a BFCL doc: parameters.type "dict", nested objects "dict"."""
    if not isinstance(tool, dict):
        raise RowError(f"a tool must be an object, got {type(tool).__name__}")
    if isinstance(tool.get("function"), dict):
        tool = tool["function"]
    name = tool.get("name")
    if not isinstance(name, str) or not name.strip():
        raise RowError("a tool has no name")
    params = tool.get("parameters") or tool.get("arguments") or {}
    if not isinstance(params, dict):
        raise RowError(f"tool {name}: parameters must be an object")
    if "properties" not in params and params and "type" not in params:
        params = _xlam_params(params)  # xLAM: {param: {type, description, default}}
    params = _schema(params)
    params["type"] = "dict"
    params.setdefault("properties", {})
    params.setdefault("required", [])
    doc = {"name": name, "description": str(tool.get("description") or ""), "parameters": params}
    try:
        check_doc(doc)
    except ToolDocError as e:
        raise RowError(f"tool {name!r:.60}: {key_path(e.path)}: {e.what}") from None
    return doc


_XLAM_TYPES = {"str": "string", "string": "string", "int": "integer", "integer": "integer",
               "float": "float", "number": "float", "bool": "boolean", "boolean": "boolean",
               "list": "array", "array": "array", "dict": "dict", "object": "dict", "tuple": "tuple",
               "any": "any"}


def _xlam_params(params: dict) -> dict:
    props, required = {}, []
    for pname, spec in params.items():
        spec = spec if isinstance(spec, dict) else {"type": str(spec)}
        raw = str(spec.get("type", "any"))
        optional = "optional" in raw.lower() or "default" in spec
        base = raw.split(",")[0].strip()
        head = base.split("[")[0].strip().lower()
        prop = {"type": _XLAM_TYPES.get(head, "any"), "description": str(spec.get("description", ""))}
        if "default" in spec:
            prop["default"] = spec["default"]
        props[pname] = prop
        if not optional:
            required.append(pname)
    return {"type": "dict", "properties": props, "required": required}


def _json_list_in(text: str) -> list | None:
    """The first JSON list of objects inside free text (a system prompt), among the first 64 brackets
    (each attempt may read to the end of the text: unbounded, a text of brackets would take minutes)."""
    dec = json.JSONDecoder()
    for m in itertools.islice(re.finditer(r"\[", text), 64):
        try:
            value, _ = dec.raw_decode(text, m.start())
        except (ValueError, RecursionError):
            continue
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            return value
    return None


def _loads_maybe(value: Any, key: str) -> Any:
    return load_json(value, key) if isinstance(value, str) else value


def _calls(calls) -> list[Call]:
    return [Call(name=c.name, arguments=c.arguments) for c in calls]


# ---------------------------------------------------------------------------------- row shapes

_TOKEN = re.compile(r"<\|im_start\|>\s*(system|user|assistant|tool)\s*\n")


def _history(text: str) -> list[Message]:
    """LoopTool-23k input: literal chat tokens back into messages."""
    text = text.replace("<|endoftext|>", "")
    if not text.lstrip().startswith("<|im_start|>"):
        text = "<|im_start|>user\n" + text
    parts = _TOKEN.split(text)
    msgs: list[Message] = []
    pending: list[str] = []  # names of the calls awaiting tool responses
    for role, body in zip(parts[1::2], parts[2::2]):
        body = body.replace("<|im_end|>", "").strip()
        if role == "assistant":
            try:
                calls = parse_hermes(strip_think(body))
            except DecodeError as e:
                raise RowError(f"input: unreadable assistant tool call: {e}") from None
            if calls:
                msgs.append(Message(role="assistant", tool_calls=_calls(calls)))
                pending = [c.name for c in calls]
            else:
                msgs.append(Message(role="assistant", content=strip_think(body)))
        elif "<tool_response>" in body or role == "tool":
            blocks = re.findall(r"<tool_response>(.*?)(?:</tool_response>|$)", body, re.S) or [body]
            for block in blocks:
                name = pending.pop(0) if pending else None
                msgs.append(Message(role="tool", content=block.strip(), name=name))
        else:
            msgs.append(Message(role=role, content=body))
    if not msgs:
        raise RowError("input: empty history")
    return msgs


def from_looptool23k(row: dict) -> list[Sample]:
    instruction = str(row.get("instruction") or "")
    m = re.search(r"<tools>(.*?)</tools>", instruction, re.S)
    tools = []
    if m:
        for line in m.group(1).splitlines():
            if line.strip():
                tools.append(bfcl_doc(_loads_maybe(line.strip(), "instruction.<tools>")))
    if not isinstance(row.get("input"), str) or not isinstance(row.get("output"), str):
        raise RowError("input and output must be strings")
    messages = _history(row["input"])
    out = strip_think(row["output"])
    try:
        calls = parse_hermes(out)
    except DecodeError as e:
        raise RowError(f"output: unreadable tool call: {e}") from None
    if not calls and not out.strip():
        raise RowError("output: empty label")
    label = Label(calls=_calls(calls)) if calls else Label(text=out.strip())
    return [Sample(id="x", tools=tools, messages=messages, label=label)]


_ROLES = {"user": "user", "human": "user", "assistant": "assistant", "gpt": "assistant",
          "tool": "tool", "function": "tool", "observation": "tool", "function_call": "assistant"}


def _toolace_calls(value: str) -> list | None:
    """Calls in an assistant turn, or None for prose."""
    body = value.strip().strip("`").strip()
    if not (body.startswith("[") and "(" in body):
        return None
    try:
        return parse_python_calls(body, positional="error")
    except DecodeError as e:
        raise RowError(f"unreadable assistant call: {e}") from None


def from_toolace(row: dict) -> list[Sample]:
    system = str(row.get("system") or "")
    raw_tools = _json_list_in(system)
    if raw_tools is None:
        raise RowError("system: no JSON tool list found")
    tools = [bfcl_doc(t) for t in raw_tools]
    conv = row.get("conversations")
    if not isinstance(conv, list) or not conv:
        raise RowError("conversations: expected a non-empty list")
    out, history, pending = [], [], []
    for n, turn in enumerate(conv, 1):
        if not isinstance(turn, dict) or turn.get("from") not in _ROLES:
            raise RowError(f"turn {n}: expected {{from: user|assistant|tool, value}}")
        role, value = _ROLES[turn["from"]], str(turn.get("value") or "")
        if role == "assistant":
            try:
                calls = _toolace_calls(value)
            except RowError as e:
                raise RowError(f"turn {n}: {e}") from None
            label = Label(calls=_calls(calls)) if calls else Label(text=value.strip())
            if history:
                out.append(Sample(id=f"t{n}", tools=tools, messages=list(history), label=label))
            if calls:
                history.append(Message(role="assistant", tool_calls=_calls(calls)))
                pending = [c.name for c in calls]
            else:
                history.append(Message(role="assistant", content=value.strip()))
        elif role == "tool":
            history.append(Message(role="tool", content=value, name=pending[0] if len(pending) == 1 else None))
        else:
            history.append(Message(role="user", content=value))
    if not out:
        raise RowError("conversations: no assistant turn after a user turn")
    return out


def from_xlam(row: dict) -> list[Sample]:
    raw_tools = _loads_maybe(row.get("tools"), "tools") or []
    if not isinstance(raw_tools, list):
        raise RowError(f"tools: expected a list of tool docs, got {type(raw_tools).__name__}")
    tools = [bfcl_doc(t) for t in raw_tools]
    answers = _loads_maybe(row.get("answers"), "answers") or []
    if not isinstance(answers, list):
        raise RowError("answers: expected a list")
    calls = []
    for a in answers:
        if not isinstance(a, dict) or not isinstance(a.get("name"), str):
            raise RowError("answers: every answer needs a name")
        args = _loads_maybe(a.get("arguments") or {}, "answers.arguments")
        if not isinstance(args, dict):
            raise RowError("answers: arguments must be an object")
        calls.append(Call(name=a["name"], arguments=args))
    query = row.get("query")
    if not isinstance(query, str) or not query.strip():
        raise RowError("query: expected a non-empty string")
    label = Label(calls=calls) if calls else Label(text=REFUSAL_TEXT)
    return [Sample(id="x", tools=tools, messages=[Message(role="user", content=query)], label=label)]


def from_looptool(row: dict) -> list[Sample]:
    return [Sample.model_validate(row)]


CONVERTERS: dict[str, Callable[[dict], list[Sample]]] = {
    "looptool23k": from_looptool23k, "toolace": from_toolace, "xlam": from_xlam, "looptool": from_looptool}


def detect(row: dict) -> str:
    keys = set(row)
    if {"instruction", "output"} <= keys:
        return "looptool23k"
    if "conversations" in keys:
        return "toolace"
    if {"query", "answers"} <= keys:
        return "xlam"
    if {"messages", "label"} <= keys:
        return "looptool"
    raise RowError(f"unknown row shape (keys: {', '.join(sorted(keys))[:120]})")


def convert_row(row: Any, fmt: str, stem: str, where: str) -> list[Sample]:
    """One row into samples with ids `imp-<stem>-<where>[-tN]`, source `seed:<format>`, meta.origin."""
    if not isinstance(row, dict):
        raise RowError(f"expected a JSON object, got {type(row).__name__}")
    if too_deep(row):
        raise RowError(f"the row is nested too deeply (over {MAX_ROW_DEPTH} levels)")
    kind = detect(row) if fmt == "auto" else fmt
    try:
        samples = CONVERTERS[kind](row)
    except ValidationError as e:
        raise RowError(validation_message(e)) from None
    except DecodeError as e:
        raise RowError(str(e)) from None
    tag = where.rsplit(":", 1)[-1].replace("item ", "i").replace("row ", "r").strip()
    out = []
    for s in samples:
        if kind == "looptool":
            out.append(s.model_copy(update={"meta": {**s.meta, "origin": where}}))
            continue
        suffix = f"-{s.id}" if s.id != "x" else ""
        out.append(s.model_copy(update={"id": f"imp-{stem}-{tag}{suffix}", "source": f"seed:{kind}",
                                        "meta": {"origin": where, "format": kind}}))
    return out


def _rows(path: Path) -> tuple[list[tuple[str, Any]], list[tuple[str, str]]]:
    text = read_text(path, "seed file")
    if text.lstrip().startswith("["):
        try:
            data = json.loads(text)
        except RecursionError:
            return [], [(f"{path}:1", "not valid JSON: nested too deeply")]
        except ValueError as e:
            return [], [(f"{path}:1", f"not valid JSON: {e}")]
        return [(f"{path}:item {i}", row) for i, row in enumerate(data, 1)], []
    rows, bad = [], []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append((f"{path}:{n}", load_json(line)))
        except RowError as e:
            bad.append((f"{path}:{n}", str(e)))
    return rows, bad


def _check_fmt(fmt: str) -> None:
    if fmt not in FORMATS:
        raise UserError(f"unknown seed format {fmt!r}; choose from {', '.join(FORMATS)}")


def import_file(path: str | Path, fmt: str = "auto") -> tuple[list[Sample], list[tuple[str, str]]]:
    """(samples, [(path:line, problem)]) from a local JSON list or JSONL file."""
    _check_fmt(fmt)
    path = Path(path).expanduser()
    rows, rejected = _rows(path)
    stem = re.sub(r"[^A-Za-z0-9]+", "-", path.stem).strip("-") or "file"
    samples: list[Sample] = []
    for where, row in rows:
        try:
            samples.extend(convert_row(row, fmt, stem, where))
        except (RowError, UserError) as e:
            rejected.append((where, str(e)))
    rejected.sort(key=lambda r: _line_key(r[0]))
    return samples, rejected


def _line_key(where: str) -> int:
    m = re.search(r"(\d+)$", where)
    return int(m.group(1)) if m else 0


def import_hub(dataset_id: str, fmt: str = "auto", split: str = "train",
               limit: int | None = None) -> tuple[list[Sample], list[tuple[str, str]]]:
    """Rows of a Hugging Face dataset (only when the user configured seeds.hub_id)."""
    _check_fmt(fmt)
    try:
        import datasets

        ds = datasets.load_dataset(dataset_id, split=split)
    except Exception as e:  # offline, unknown id, missing split: one clear line for the user
        raise UserError(f"seeds.hub_id {dataset_id!r}: cannot load the dataset ({type(e).__name__}: "
                        f"{str(e)[:200]}); download it first or use seeds.source = 'file'") from None
    stem = re.sub(r"[^A-Za-z0-9]+", "-", dataset_id).strip("-")
    samples, rejected = [], []
    for i, row in enumerate(ds, 1):
        if limit is not None and i > limit:
            break
        where = f"{dataset_id}:row {i}"
        try:
            samples.extend(convert_row(dict(row), fmt, stem, where))
        except (RowError, UserError) as e:
            rejected.append((where, str(e)))
    return samples, rejected
