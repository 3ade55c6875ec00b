"""The results store's file format: TinyDB's JSON, what each table holds, how the file is read.

    {"<table>": {"<doc id: an integer, as a str>": {<document>}, ...}, ...}

TinyDB turns every doc id back into an int and every table into a dict, so a file of another shape
would fail deep inside it; `read_store_file` refuses such a file with its key path instead. The keys
each table's documents carry (`REQUIRED`) are what the engine, the eval runners and the daemon write;
`looptool store check` reports documents without them, opening the store does not (a store with one
odd document still opens, and `check` says where it is).

The file is written with `ensure_ascii=True` (`dumps`): every Python str, lone surrogates included
(a bus command id can hold one), becomes a plain ASCII escape that json.loads turns back into the same
str. With `check_nesting` (json's encoder recurses: a document that encodes alone can fail inside the
file's two extra levels) a document the store accepts always flushes: no content can make a flush fail.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

from core.errors import UserError

TABLES = ("evals", "runs", "iterations", "audit")
# table -> {key: type(s)}; bool is refused where an int is asked (True is an int to Python)
REQUIRED: dict[str, dict[str, type | tuple[type, ...]]] = {
    "evals": {"eval_id": str, "benchmark": str, "started_at": str, "scores": dict},
    "runs": {"run_id": str, "state": str, "run_dir": str, "updated_at": str},
    "iterations": {"key": str, "run_id": str, "iteration": int},
    "audit": {"key": str, "ts": (int, float), "verb": str, "status": str},
}
# the field each table is upserted by (core/engine.py, core/daemon_commands.py, ResultStore.add_eval)
UNIQUE = {"evals": "eval_id", "runs": "run_id", "iterations": "key", "audit": "key"}
MAX_DEPTH = 200  # nesting levels a document may have; far below the encoder's recursion limit
WAY_OUT = "see `looptool store check`, or rebuild it with `looptool store rebuild`"


def dumps(obj: Any) -> str:
    """The one JSON encoding of the store (file and in-memory copies alike): ASCII-only, so any str
    survives (see the module docstring)."""
    return json.dumps(obj, ensure_ascii=True)


def check_nesting(doc: Any) -> None:
    """ValueError when doc nests lists/objects deeper than MAX_DEPTH (walked without recursion)."""
    stack = [(doc, 1)]
    while stack:
        value, depth = stack.pop()
        if not isinstance(value, (dict, list, tuple)):
            continue
        if depth > MAX_DEPTH:
            raise ValueError(f"document nested deeper than {MAX_DEPTH} levels; the store does not take it")
        stack.extend((child, depth + 1) for child in (value.values() if isinstance(value, dict) else value))


def previous_path(path: Path) -> Path:
    """Where the generation before the last flush is kept."""
    return path.with_name(path.name + ".prev")


def parse_store_text(path: Path) -> dict | None:
    """The file's top-level object; None when there is no file. Raises UserError for a file that is
    not one JSON object, an empty (or whitespace-only) file included: a store that lost its content
    is never taken for a new one."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise UserError(f"{path}: cannot read the results store ({e.strerror})") from None
    if not raw.strip():
        prev = previous_path(path)
        raise UserError(f"{path}: the results store is empty ({len(raw)} bytes); looptool will not take it "
                        f"for a new store. Restore {prev.name} if `looptool store check --file {prev}` "
                        "passes, or run `looptool store rebuild`")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        why = "nested too deeply" if isinstance(e, RecursionError) else str(e)
        raise UserError(f"{path}: not valid JSON ({why}); looptool will not overwrite it; {WAY_OUT}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: not valid JSON for a looptool store (top level is a {_kind(data)}, not an "
                        f"object); looptool will not overwrite it; {WAY_OUT}")
    return data


def read_store_file(path: Path) -> dict | None:
    """parse_store_text, then the first shape problem (if any) as a UserError naming its key path."""
    data = parse_store_text(path)
    for where, what in shape_problems(data or {}):
        raise UserError(f"{path}: {where}: {what}; looptool will not overwrite it; {WAY_OUT}")
    return data


def shape_problems(data: dict) -> Iterator[tuple[str, str]]:
    """(key path, what is wrong) for each table that is not {int-like id: object}."""
    for table, docs in data.items():
        if not isinstance(docs, dict):
            yield table, f"a table must be an object of documents, not a {_kind(docs)}"
            continue
        for doc_id, doc in docs.items():
            if not _is_doc_id(doc_id):
                yield f"{table}.{doc_id}", "a document id must be an integer"
            elif not isinstance(doc, dict):
                yield f"{table}.{doc_id}", f"a document must be an object, not a {_kind(doc)}"


def doc_problems(data: dict) -> Iterator[tuple[str, str]]:
    """(key path, what is wrong) for unknown tables, documents without their REQUIRED keys and
    documents that repeat another's UNIQUE key. What has the wrong shape is skipped (shape_problems)."""
    for table, docs in data.items():
        if table not in TABLES:
            yield table, f"unknown table (a looptool store has {', '.join(TABLES)})"
            continue
        if not isinstance(docs, dict):
            continue
        seen: dict[object, str] = {}
        for doc_id, doc in docs.items():
            if not isinstance(doc, dict) or not _is_doc_id(doc_id):
                continue  # a shape problem already
            for key, what in missing_keys(table, doc):
                yield f"{table}.{doc_id}.{key}", what
            unique = doc.get(UNIQUE[table])
            if isinstance(unique, str):
                if unique in seen:
                    yield f"{table}.{doc_id}.{UNIQUE[table]}", f"{unique!r} is also in {table}.{seen[unique]}"
                else:
                    seen[unique] = doc_id


def missing_keys(table: str, doc: dict) -> Iterator[tuple[str, str]]:
    """(key, what is wrong) for each REQUIRED key of `table` that `doc` lacks or holds as another type."""
    for key, types in REQUIRED[table].items():
        if key not in doc:
            yield key, "missing"
        elif not isinstance(doc[key], types) or (types is int and isinstance(doc[key], bool)):
            yield key, f"expected {_type_names(types)}, got a {_kind(doc[key])}"


def iteration_doc(run_id: str, iteration: int, briefs: dict[str, dict]) -> dict:
    """An `iterations` document: each stage's stats in brief (core.engine.brief_stats), keyed by stage."""
    return {"key": f"{run_id}/{iteration}", "run_id": run_id, "iteration": iteration, **briefs}


def _is_doc_id(key: str) -> bool:
    return key.isascii() and key.isdigit()


def _kind(value: object) -> str:
    return {dict: "object", list: "list", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number" if isinstance(value, (int, float)) else type(value).__name__)


def _type_names(types: type | tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", float: "a number", dict: "an object"}
    return " or ".join(names[t] for t in (types if isinstance(types, tuple) else (types,)))
