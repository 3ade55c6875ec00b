"""The shape of a tool doc, checked where tools enter the loop: every core.schema.Sample validates its
tools with :func:`check_doc`, so a seed file, a hub dataset, an LLM-written API or an expansion cannot
carry a doc that the checks, the judge or the prompt renderers would trip over later.

A doc is BFCL's shape (core.schema): ``{"name": str, "description": str, "parameters": SCHEMA}``, the
name non-empty, the description and parameters optional. A SCHEMA is an object in which, when present,
    type        is a type name or a list of them (core.checks.type_ok reads them);
    properties  is an object whose every value is a SCHEMA;
    required    is a list of parameter names (strings);
    items       is a SCHEMA, or a list of them (JSON schema's tuple form);
    enum        is a list.
A null counts as absent. Other keys (default, format, additionalProperties, ...) are free. Schemas nest at most
MAX_SCHEMA_DEPTH levels (a property or an item is one level). OpenAI-style wrappers
(``{"type": "function", "function": {...}}``) are no seed doc: the importers unwrap them.
"""
from __future__ import annotations

from typing import Any

MAX_SCHEMA_DEPTH = 20


class ToolDocError(ValueError):
    """A doc that is not a tool doc: `path` (keys inside the doc) and what is wrong there."""

    def __init__(self, path: tuple, what: str):
        super().__init__(what)
        self.path, self.what = path, what


def _kind(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer", float: "number",
            type(None): "null"}.get(type(value), type(value).__name__)


def check_doc(doc: Any) -> None:
    """Raise ToolDocError at the first place `doc` departs from the shape above."""
    if not isinstance(doc, dict):
        raise ToolDocError((), f"expected a tool doc (an object), got {_kind(doc)}")
    name = doc.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ToolDocError(("name",), "a tool doc needs a non-empty string name"
                           + (" (unwrap {type: function, function: {...}})" if "function" in doc else ""))
    if not isinstance(doc.get("description", ""), (str, type(None))):
        raise ToolDocError(("description",), f"expected a string, got {_kind(doc['description'])}")
    if doc.get("parameters") is not None:
        _check_schema(doc["parameters"], ("parameters",), 0)


def _check_schema(node: Any, path: tuple, depth: int) -> None:
    if not isinstance(node, dict):
        raise ToolDocError(path, f"expected an object (a parameter schema), got {_kind(node)}")
    if depth > MAX_SCHEMA_DEPTH:
        raise ToolDocError(path, f"parameter schemas nested deeper than {MAX_SCHEMA_DEPTH} levels")
    typ = node.get("type")
    if typ is not None and not (isinstance(typ, str) or isinstance(typ, list)
                                and all(isinstance(t, str) for t in typ)):
        raise ToolDocError(path + ("type",), f"expected a type name or a list of them, got {_kind(typ)}")
    if (props := node.get("properties")) is not None:
        if not isinstance(props, dict):
            raise ToolDocError(path + ("properties",), f"expected an object of parameter schemas, got "
                               f"{_kind(props)}")
        for key, sub in props.items():
            _check_schema(sub, path + ("properties", key), depth + 1)
    required = node.get("required")
    if required is not None and not (isinstance(required, list) and all(isinstance(r, str) for r in required)):
        raise ToolDocError(path + ("required",), "expected a list of parameter names (strings)")
    if (items := node.get("items")) is not None:
        for i, sub in enumerate(items) if isinstance(items, list) else [(None, items)]:
            _check_schema(sub, path + (("items", i) if i is not None else ("items",)), depth + 1)
    if node.get("enum") is not None and not isinstance(node["enum"], list):
        raise ToolDocError(path + ("enum",), f"expected a list of values, got {_kind(node['enum'])}")
