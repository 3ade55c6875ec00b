"""Rule validation of a Sample: the first tier of every seed, import and expansion check.

The label's calls and every assistant ``tool_calls`` turn in the history must pass the schema and
type rules of core.checks (function exists, required present, no unknown parameter, types, enums,
nested items and properties). Deviation from the paper's filter script (a rule of core.checks): a
Python ``bool`` does NOT pass as ``integer`` (or number), because the reward could never match it.

Structure: the context must contain a user turn and end with a user or tool turn (the decision
follows it), only assistant turns carry tool calls, and a text label is not empty. The tool docs'
shape (a name, schemas that are objects, ...) is no rule here: a Sample cannot be built without it
(core.tool_docs).
"""
from __future__ import annotations

from typing import Iterable

from core.checks import check_calls
from core.schema import Sample


def validate(sample: Sample) -> list[str]:
    """Every rule problem of a sample; [] when it passes."""
    problems = []
    roles = [m.role for m in sample.messages]
    if "user" not in roles:
        problems.append("messages: no user turn")
    if roles[-1] not in ("user", "tool"):
        problems.append(f"messages: the context ends with a {roles[-1]} turn (expected user or tool)")
    for n, m in enumerate(sample.messages):
        if m.tool_calls and m.role != "assistant":
            problems.append(f"messages[{n}]: a {m.role} turn carries tool calls")
        problems += [f"messages[{n}]: {p}" for p in check_calls(m.tool_calls or [], sample.tools)]
    if sample.label.calls is not None:
        problems += [f"label: {p}" for p in check_calls(sample.label.calls, sample.tools)]
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
