"""Schema, type and grounding checks of tool calls: the one rule set behind the seed validator
(core.seeds.validate, which is also expansion's first tier), the rule judge (core.stages.judge) and
expansion's second tier (core.stages.expand.grounded_label).

Schema (:func:`check_calls`), against BFCL-style tool docs (``{"name", "parameters"}``, optionally
wrapped as ``{"type": "function", "function": {...}}``; the first doc of a name wins):
  * the function name is one of the tools;
  * every ``required`` parameter is present, and no argument lies outside ``properties``;
  * values match their declared type (:func:`type_ok`);
  * a value of a parameter with an ``enum`` is one of its members;
  * nested values are type- and enum-checked through ``items`` and nested ``properties`` (nested
    ``required`` is not enforced: imported docs are too loose about it).

Types (:func:`type_ok`), JSON-schema and BFCL names, case-insensitive:
    string/str | integer/int (an int, or a float with no fractional part; never a bool) |
    number/float (int or float, not bool) | boolean/bool | array/list/tuple | object/dict | null.
  A list of types passes when any of them does; "any", unknown names (Java/JavaScript ones such as
  HashMap or String[]: BFCL writes their values as code strings) and missing types pass. A bool is
  no number because the reward compares ``True != 1`` (core.toolcalls._canon): a label with True for
  an integer could never be matched; 3.0 is an integer because the reward has 3 == 3.0.

Grounding (:func:`ungrounded`): each argument value must occur in what the user, a tool or the
system said (not in the assistant's own turns). One normalisation, :func:`norm_text` (casefold,
whitespace runs collapsed), applies to the conversation and to string values alike. A string
occurs as a substring; a number occurs as written (repr, or its int form when integral) and not
inside a longer number ("3" is not in "13"); lists and dicts are grounded when all their values
are. Booleans, nulls, empty strings, enum members and the parameter's schema default need no
grounding.

Unified here (issue 11) from three copies with different rules; where they differed:
  * type names: the judge lowercased every name, the validator checked only lower-case names and a
    few capitalised ones -> every name case-insensitively (the judge's; the stricter one);
  * integers: the validator rejected 3.0, the judge accepted it -> accepted (the reward's 3 == 3.0,
    which the judge's own tests rely on); 2.5 and booleans stay rejected;
  * "null": the judge let it pass anything -> it accepts only None (the validator's);
  * enums: the validator skipped list and dict values -> every value must be a member (the
    judge's);
  * arrays and objects: the judge checked only ``items.type``, and not even that after an enum
    problem -> items and nested properties are checked recursively for types and enums, every
    problem reported (the validator's);
  * tool docs: the judge unwrapped OpenAI-style docs and let the last doc of a name win, the
    validator did not unwrap and let the first win -> unwrapped, first doc wins (a Sample's own
    docs are never wrapped: core.tool_docs checks their whole shape when the Sample is built);
  * problem texts: the validator's wording ("unknown function 'x'", "expected integer, got string");
  * grounding, from the judge and core.seeds.synth: the conversation is the user, tool and system
    turns (the judge's; synth also read assistant text and earlier calls), matched after
    :func:`norm_text` (the judge's; synth matched case-sensitively), numbers not inside longer
    numbers (the judge's; synth matched any substring), enum members and defaults exempt (the
    judge's), one problem per argument (the judge's).
"""
from __future__ import annotations

import re
from typing import Any, Iterable

from core.schema import Call, Sample
from core.tool_docs import MAX_SCHEMA_DEPTH
from core.toolcalls import ToolCall

_TYPES: dict[str, Any] = {"string": str, "str": str, "integer": int, "int": int, "number": (int, float),
                          "float": (int, float), "boolean": bool, "bool": bool, "array": list, "list": list,
                          "tuple": list, "object": dict, "dict": dict, "null": type(None)}
_TYPE_NAMES = {bool: "boolean", int: "integer", float: "float", str: "string", list: "array", dict: "dict",
               type(None): "null"}
_MAX_DEPTH = MAX_SCHEMA_DEPTH  # deeper schemas are not checked (a Sample's docs are never deeper)


# -- schema and types -------------------------------------------------------------------------------

def tool_params(tools: list[dict]) -> dict[str, dict]:
    """Function name -> its ``parameters`` schema; OpenAI-style wrappers are unwrapped, the first
    doc of a name wins (the one a model reads first)."""
    out: dict[str, dict] = {}
    for doc in tools:
        if isinstance(doc, dict) and isinstance(doc.get("function"), dict):
            doc = doc["function"]
        if isinstance(doc, dict) and isinstance(doc.get("name"), str):
            params = doc.get("parameters")
            out.setdefault(doc["name"], params if isinstance(params, dict) else {})
    return out


def _properties(params: dict) -> dict:
    props = params.get("properties")
    return props if isinstance(props, dict) else {}


def type_ok(value: Any, typ: Any) -> bool:
    """Whether `value` fits a declared type (a name or a list of names); unknown names pass, since
    they are Java/JavaScript types whose values BFCL writes as code strings."""
    if isinstance(typ, list):
        names = [t for t in typ if isinstance(t, str)]
        return not names or any(type_ok(value, t) for t in names)
    want = _TYPES.get(typ.strip().lower()) if isinstance(typ, str) else None
    if want is None:
        return True
    if isinstance(value, bool) != (want is bool):
        return False
    if want is int and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, want)


def _type_name(value: Any) -> str:
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def _check_value(value: Any, schema: Any, where: str, depth: int = 0) -> list[str]:
    """Problems of one value against one parameter schema; a type mismatch hides the rest."""
    if not isinstance(schema, dict) or depth > _MAX_DEPTH:
        return []
    typ = schema.get("type")
    if typ is not None and not type_ok(value, typ):
        want = "/".join(map(str, typ)) if isinstance(typ, list) else str(typ)
        return [f"{where}: expected {want}, got {_type_name(value)}"]
    problems = []
    enum = schema.get("enum")
    if isinstance(enum, list) and enum and value not in enum:
        problems.append(f"{where}: {value!r:.60} is not one of the enum values {enum!r:.120}")
    if isinstance(value, list):
        for i, item in enumerate(value):
            problems += _check_value(item, schema.get("items"), f"{where}[{i}]", depth + 1)
    if isinstance(value, dict):
        props = _properties(schema)
        for key, sub in value.items():
            problems += _check_value(sub, props.get(key), f"{where}.{key}", depth + 1)
    return problems


def _check_call(call: ToolCall | Call, params: dict | None) -> list[str]:
    if params is None:
        return [f"unknown function {call.name!r}"]
    props = _properties(params)
    problems = [f"{call.name}: missing required parameter {r!r}"
                for r in params.get("required") or [] if isinstance(r, str) and r not in call.arguments]
    for key, value in call.arguments.items():
        if key in props:
            problems += _check_value(value, props[key], f"{call.name}.{key}")
        else:
            problems.append(f"{call.name}: unknown parameter {key!r}")
    return problems


def check_calls(calls: Iterable[ToolCall | Call], tools: list[dict]) -> list[str]:
    """Schema problems of `calls` against the tool docs; [] when every call is valid."""
    index = tool_params(tools)
    return [p for c in calls for p in _check_call(c, index.get(c.name))]


# -- grounding --------------------------------------------------------------------------------------

def norm_text(text: str) -> str:
    """The one text normalisation: casefolded, whitespace runs collapsed to one space, so that
    "  PARIS " matches "Paris" (used for grounding and for the judge's call equivalence)."""
    return " ".join(text.casefold().split())


def _context(sample: Sample) -> str:
    """What the calls may draw values from: user, tool and system turns, normalised."""
    return norm_text("\n".join(m.content for m in sample.messages if m.role in ("user", "tool", "system")))


def _number_forms(value: int | float) -> set[str]:
    forms = {repr(value)}
    if isinstance(value, float) and value.is_integer():
        forms.add(str(int(value)))
    return forms


def _grounded(value: Any, ctx: str) -> bool:
    if value is None or isinstance(value, bool):
        return True
    if isinstance(value, str):
        return not value.strip() or norm_text(value) in ctx
    if isinstance(value, (int, float)):
        return any(re.search(rf"(?<![\d.]){re.escape(f)}(?!\d)", ctx) for f in _number_forms(value))
    if isinstance(value, list):
        return all(_grounded(v, ctx) for v in value)
    if isinstance(value, dict):
        return all(_grounded(v, ctx) for v in value.values())
    return True


def _exempt(value: Any, spec: Any) -> bool:
    """Enum members and the schema default are offered by the tool doc itself, not by the user."""
    if not isinstance(spec, dict):
        return False
    return value in (spec.get("enum") or []) or ("default" in spec and spec["default"] == value)


def ungrounded(calls: Iterable[ToolCall | Call], sample: Sample) -> list[str]:
    """One problem per argument whose value does not occur in the conversation; [] when all do."""
    ctx, index, problems = _context(sample), tool_params(sample.tools), []
    for c in calls:
        props = _properties(index.get(c.name) or {})
        for arg, value in c.arguments.items():
            if not _exempt(value, props.get(arg)) and not _grounded(value, ctx):
                problems.append(f"{c.name}.{arg}={value!r:.40} does not occur in the conversation")
    return problems
