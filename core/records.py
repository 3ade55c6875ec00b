"""Record files of the loop and of the benchmarks: append-only JSONL keyed by id, read back after a
crash without its torn last line, and JSON files written atomically and durably (never half-written).

Anything a model wrote can reach these files, so the writers take any value: lone surrogates are
escaped (ASCII JSON), an integer too long for Python's int-to-str limit or a value nested too deep
for the encoder is written as a short description instead, and nothing is lost to one bad value.
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import time
from pathlib import Path

from core.errors import UserError

log = logging.getLogger(__name__)

MAX_DEPTH = 200  # deeper values are written as a description (the encoder recurses)


class RecordsBusy(UserError):
    """Another process is appending to the same record file."""


def dumps(obj, indent: int | None = None) -> str:
    """JSON for any value a record can hold (see the module docstring); one line unless indent."""
    try:
        return json.dumps(obj, ensure_ascii=True, default=str, indent=indent)
    except (ValueError, RecursionError):
        return json.dumps(_tame(obj, 0), ensure_ascii=True, default=str, indent=indent)


def _tame(obj, depth: int):
    """obj with every value json.dumps cannot write replaced by a description of it."""
    if depth > MAX_DEPTH:
        return f"<value nested deeper than {MAX_DEPTH} levels>"
    if isinstance(obj, bool) or obj is None or isinstance(obj, (str, float)):
        return obj
    if isinstance(obj, int):
        try:
            str(obj)
        except ValueError:  # over sys.get_int_max_str_digits()
            return f"<integer of about {int(obj.bit_length() * 0.30103)} digits>"
        return obj
    if isinstance(obj, dict):
        return {str(k): _tame(v, depth + 1) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_tame(v, depth + 1) for v in obj]
    return str(obj)


class RecordLog:
    """Append-only JSONL of finished samples, keyed by "id"; one writer per file (an exclusive flock,
    so a second process that would append to the same file is refused with RecordsBusy).

    Reading back: an unterminated last line (a write torn by a crash) is cut off; a bad line anywhere
    else (unreadable JSON, no "id") is skipped with a warning naming file:line and kept in the file,
    and the records after it count -- its sample is simply done again."""

    def __init__(self, path: Path):
        self.path = path
        self.records: dict[str, dict] = {}
        self.skipped: list[int] = []  # line numbers of bad lines
        self._fh = open(path, "a", encoding="ascii")
        try:
            fcntl.flock(self._fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._fh.close()
            raise RecordsBusy(f"{path}: another process is writing these records (the same evaluation or "
                              "stage is running or paused elsewhere); wait for it, or resume the paused run") from None
        self._load()
        self._synced = time.monotonic()

    def _load(self) -> None:
        data = self.path.read_bytes()
        end = _complete_end(data)
        for n, line in enumerate(data[:end].splitlines(), 1):
            rec = parse_line(line)
            if rec is None:
                if line.strip():
                    self.skipped.append(n)
                    log.warning("%s:%d: unreadable record skipped; its sample will be done again", self.path, n)
                continue
            self.records[rec["id"]] = rec
        if end != len(data):  # cut a torn last line
            with open(self.path, "r+b") as fh:
                fh.truncate(end)

    def __contains__(self, sample_id: str) -> bool:
        return sample_id in self.records

    def add(self, rec: dict) -> None:
        """Append one record. Flushed to the OS at once (a killed process loses nothing written);
        fsynced at most once a second and on close (bounded loss on power failure only)."""
        self._fh.write(dumps(rec) + "\n")
        self._fh.flush()
        if time.monotonic() - self._synced > 1.0:
            os.fsync(self._fh.fileno())
            self._synced = time.monotonic()
        self.records[rec["id"]] = rec

    def close(self) -> None:
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()  # releases the lock


def parse_line(line: bytes | str) -> dict | None:
    """One record line: the record, or None when it is not one (bad JSON, too deep, no "id")."""
    try:
        rec = json.loads(line)
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return None
    return rec if isinstance(rec, dict) and isinstance(rec.get("id"), str) else None


def write_json_atomic(path: Path, obj) -> None:
    """Write obj as JSON, atomically (write_text_atomic)."""
    write_text_atomic(path, dumps(obj, indent=2), encoding="ascii")


def write_text_atomic(path: Path, text: str, encoding: str = "utf-8") -> None:
    """Write text through a temp file: fsynced, renamed over path, the directory fsynced, so a crash or
    power loss leaves the old file or the new one, never an empty or partial one."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding=encoding) as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def fsync_dir(d: Path) -> None:
    fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_records(path: Path) -> list[dict]:
    """The records of a JSONL file written by RecordLog, bad lines skipped as RecordLog skips them
    (no file: [])."""
    if not path.exists():
        return []
    data = path.read_bytes()
    return [rec for line in data[:_complete_end(data)].splitlines() if (rec := parse_line(line)) is not None]


def iter_records(path: Path):
    """The records of a JSONL file one at a time, as read_records gives them (bad lines skipped, a torn
    last line left out), without holding the file in memory: for files of any size."""
    with open(path, "rb") as fh:
        for line in fh:
            if not line.endswith(b"\n"):
                return  # an unterminated last line: a write torn by a crash
            rec = parse_line(line)
            if rec is not None:
                yield rec


def _complete_end(data: bytes) -> int:
    """Where the last complete (newline-terminated) line of `data` ends: what follows is a torn write."""
    return len(data) if data.endswith(b"\n") else data.rfind(b"\n") + 1
