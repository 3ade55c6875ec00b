"""Rule validation of a Sample: the first tier of every seed, import and expansion check.

Rules, applied to the label's calls and to every assistant ``tool_calls`` turn in the history:
  * the function name is one of ``sample.tools``;
  * every ``required`` parameter is present, and no parameter lies outside ``properties``;
  * values match their declared type (JSON-schema and BFCL names both accepted):
        string | integer (int, not bool) | number/float (int or float, not bool) | boolean |
        array/list/tuple | object/dict | "any", unknown types (Java/JavaScript ones such as
        HashMap or String[] included: BFCL writes their values as code strings) and missing types pass;
    a list of types (``["string", "null"]``) passes when any of them matches; ``null`` accepts None;
  * a declared ``enum`` is respected (for arrays: ``items.enum`` for every element);
  * nested values are type- and enum-checked through ``items`` and nested ``properties``
    (nested ``required`` is not enforced: imported docs are too loose about it).

Deviation from the paper's filter script: a Python ``bool`` does NOT pass as ``integer`` (or number).
The reward compares ``True != 1`` (core.toolcalls._canon), so a label with ``True`` for an integer
parameter could never be matched by a correct model; we reject it instead.

Structure: the context must contain a user turn and end with a user or tool turn (the decision
follows it), and every tool doc needs a string name.
"""
from __future__ import annotations

from typing import Any, Iterable

from core.schema import Call, Sample

_STRING = {"string", "str"}
_INTEGER = {"integer", "int"}
_NUMBER = {"number", "float"}
_BOOLEAN = {"boolean", "bool"}
_ARRAY = {"array", "list", "tuple"}
_OBJECT = {"object", "dict"}
_NULL = {"null"}


def _type_ok(value: Any, typ: str) -> bool | None:
    """True/False for a known type name; None for an unknown one (passes)."""
    t = typ.strip()
    if t != t.lower() and t not in ("String", "Boolean", "Integer", "Float", "Number", "Array", "Object"):
        return None  # Java/JS-style type names (HashMap, ArrayList, ...): not checked
    t = t.lower()
    if t in _STRING:
        return isinstance(value, str)
    if t in _INTEGER:
        return isinstance(value, int) and not isinstance(value, bool)
    if t in _NUMBER:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if t in _BOOLEAN:
        return isinstance(value, bool)
    if t in _ARRAY:
        return isinstance(value, list)
    if t in _OBJECT:
        return isinstance(value, dict)
    if t in _NULL:
        return value is None
    return None  # "any" and everything unknown


def check_value(value: Any, schema: Any, where: str, depth: int = 0) -> list[str]:
    """Problems of one value against one (BFCL or JSON-schema) parameter schema."""
    if not isinstance(schema, dict) or depth > 20:
        return []
    problems: list[str] = []
    typ = schema.get("type")
    types = typ if isinstance(typ, list) else [typ] if isinstance(typ, str) else []
    if types:
        verdicts = [_type_ok(value, t) for t in types if isinstance(t, str)]
        if verdicts and not any(v is None or v for v in verdicts):
            want = "/".join(str(t) for t in types)
            return [f"{where}: expected {want}, got {_type_name(value)}"]
    enum = schema.get("enum")
    if isinstance(enum, list) and enum and not isinstance(value, (list, dict)) and value not in enum:
        problems.append(f"{where}: {value!r:.60} is not one of the enum values {enum!r:.120}")
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            problems += check_value(item, schema["items"], f"{where}[{i}]", depth + 1)
    if isinstance(value, dict) and isinstance(schema.get("properties"), dict):
        props = schema["properties"]
        for key, sub in value.items():
            if key in props:
                problems += check_value(sub, props[key], f"{where}.{key}", depth + 1)
    return problems


def _type_name(value: Any) -> str:
    return {bool: "boolean", int: "integer", float: "float", str: "string", list: "array",
            dict: "dict", type(None): "null"}.get(type(value), type(value).__name__)


def check_call(call: Call, tools: dict[str, dict], where: str = "label") -> list[str]:
    """Problems of one call against the tool docs (name -> doc)."""
    doc = tools.get(call.name)
    if doc is None:
        return [f"{where}: unknown function {call.name!r}"]
    params = doc.get("parameters") or {}
    props = params.get("properties") or {}
    required = params.get("required") or []
    if not isinstance(props, dict):
        props = {}
    problems = [f"{where}: {call.name}: missing required parameter {r!r}"
                for r in required if isinstance(r, str) and r not in call.arguments]
    for key, value in call.arguments.items():
        if key not in props:
            problems.append(f"{where}: {call.name}: unknown parameter {key!r}")
            continue
        problems += check_value(value, props[key], f"{where}: {call.name}.{key}")
    return problems


def validate(sample: Sample) -> list[str]:
    """Every rule problem of a sample; [] when it passes."""
    problems: list[str] = []
    tools: dict[str, dict] = {}
    for i, doc in enumerate(sample.tools):
        name = doc.get("name") if isinstance(doc, dict) else None
        if not isinstance(name, str) or not name:
            problems.append(f"tools[{i}]: a tool doc needs a string name")
        else:
            tools.setdefault(name, doc)
    roles = [m.role for m in sample.messages]
    if "user" not in roles:
        problems.append("messages: no user turn")
    if roles[-1] not in ("user", "tool"):
        problems.append(f"messages: the context ends with a {roles[-1]} turn (expected user or tool)")
    for n, m in enumerate(sample.messages):
        for call in m.tool_calls or []:
            if m.role != "assistant":
                problems.append(f"messages[{n}]: a {m.role} turn carries tool calls")
            problems += check_call(call, tools, f"messages[{n}]")
    if sample.label.calls is not None:
        for call in sample.label.calls:
            problems += check_call(call, tools, "label")
    elif not (sample.label.text or "").strip():
        problems.append("label: empty text")
    return problems


def where_of(sample: Sample, where: str) -> str:
    """Where a sample came from: its recorded origin (importers: ``path:line``) or ``where:id``."""
    origin = sample.meta.get("origin")
    return str(origin) if origin else f"{where}:{sample.id}"


def filter_valid(samples: Iterable[Sample], where: str) -> tuple[list[Sample], list[tuple[str, str]]]:
    """(samples that pass, [(where_line, first problem)] for those that do not)."""
    kept, rejected = [], []
    for s in samples:
        problems = validate(s)
        if problems:
            rejected.append((where_of(s, where), problems[0]))
        else:
            kept.append(s)
    return kept, rejected
