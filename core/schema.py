"""The loop's data: a Sample is one tool-calling decision with its context and label.

    tools     function docs in BFCL's shape: {name, description, parameters: {type: "dict", properties,
              required}} -- the same shape the BFCL-v3 evaluation shows the model; checked in full
              (core.tool_docs) whenever a Sample is built or loaded, the one gate every tool passes;
    messages  the conversation before the decision: user / assistant / tool messages. An assistant turn
              that called tools is {"role": "assistant", "tool_calls": [{"name", "arguments"}]};
    label     exactly one of calls (the tool calls the assistant should make now) or text (a text reply:
              a clarifying question, a refusal, a summary).

Samples travel as JSONL, one per line. `load_samples` reports bad rows as file:line: key path: problem.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from core.errors import InputFileError
from core.tool_docs import ToolDocError, check_doc
from core.toolcalls import ToolCall
from core.user_input import key_path


class Call(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    arguments: dict[str, Any] = Field(default_factory=dict)

    def tool_call(self) -> ToolCall:
        return ToolCall(self.name, self.arguments)


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["system", "user", "assistant", "tool"]
    content: str = ""
    tool_calls: list[Call] | None = None  # assistant turns that called tools
    name: str | None = None  # tool messages: which function answered


class Label(BaseModel):
    model_config = ConfigDict(extra="forbid")
    calls: list[Call] | None = None
    text: str | None = None

    @model_validator(mode="after")
    def _one_of(self):
        if (self.calls is None) == (self.text is None):
            raise ValueError("a label has exactly one of calls or text")
        if self.calls is not None and not self.calls:
            raise ValueError("calls is empty; a label without calls is a text label")
        return self

    @property
    def is_text(self) -> bool:
        return self.text is not None

    def tool_calls(self) -> list[ToolCall]:
        return [c.tool_call() for c in self.calls or []]


def _tool_doc(doc: dict) -> dict:
    try:
        check_doc(doc)
    except ToolDocError as e:  # the path inside the doc travels in ctx (validation_message joins it)
        raise PydanticCustomError("tool_doc", "{what}", {"what": e.what, "path": e.path}) from None
    return doc


ToolDoc = Annotated[dict[str, Any], AfterValidator(_tool_doc)]


class Sample(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1)
    tools: list[ToolDoc]
    messages: list[Message] = Field(min_length=1)
    label: Label
    source: str = "seed"  # seed:<origin> | expand | relabel ...
    parent: str | None = None  # lineage: the seed this sample was derived from
    meta: dict[str, Any] = Field(default_factory=dict)

    def to_json(self) -> str:
        return self.model_dump_json(exclude_none=True)


def validation_message(e: ValidationError) -> str:
    """The first problem as `key.path: what` (a tool doc's problem carries its path inside the doc)."""
    first = e.errors()[0]
    inner = (first.get("ctx") or {}).get("path", ()) if first["type"] == "tool_doc" else ()
    return f"{key_path((*first['loc'], *inner)) or '(root)'}: {first['msg']}"


def load_samples(path: Path) -> list[Sample]:
    out = []
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                out.append(Sample.model_validate_json(line))
            except ValidationError as e:
                if e.errors()[0]["type"] == "json_invalid":
                    raise InputFileError(path, n, "not valid JSON") from None
                raise InputFileError(path, n, validation_message(e)) from None
    return out


def write_samples(path: Path, samples: list[Sample]) -> None:
    """Write atomically and durably: a temp file, fsynced, renamed over the target, the directory
    fsynced (a stage's done marker that follows can never point at an empty dataset)."""
    from core.records import fsync_dir

    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for s in samples:
            fh.write(s.to_json() + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)
    fsync_dir(path.parent)


def dumps_samples(samples: list[Sample]) -> str:
    return "".join(s.to_json() + "\n" for s in samples)


__all__ = ["Call", "Message", "Label", "Sample", "load_samples", "write_samples", "json"]
