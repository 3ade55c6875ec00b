"""Record files of the loop and of the benchmarks: append-only JSONL keyed by id, read back after a
crash without its torn last line, and JSON files written atomically (never half-written)."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path


class RecordLog:
    """Append-only JSONL of finished samples, keyed by "id"."""

    def __init__(self, path: Path):
        self.path = path
        self.records: dict[str, dict] = {}
        if path.exists():
            self._load()
        self._fh = open(path, "a", encoding="utf-8")
        self._synced = time.monotonic()

    def _load(self) -> None:
        data = self.path.read_bytes()
        good_end = 0
        for line in data.splitlines(keepends=True):
            if not line.endswith(b"\n"):
                break  # torn final write
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                break
            self.records[rec["id"]] = rec
            good_end += len(line)
        if good_end != len(data):
            with open(self.path, "r+b") as fh:
                fh.truncate(good_end)

    def __contains__(self, sample_id: str) -> bool:
        return sample_id in self.records

    def add(self, rec: dict) -> None:
        """Append one record. Flushed to the OS at once (a killed process loses nothing written);
        fsynced at most once a second and on close (bounded loss on power failure only)."""
        self._fh.write(json.dumps(rec, ensure_ascii=False, default=str) + "\n")
        self._fh.flush()
        if time.monotonic() - self._synced > 1.0:
            os.fsync(self._fh.fileno())
            self._synced = time.monotonic()
        self.records[rec["id"]] = rec

    def close(self) -> None:
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()


def write_json_atomic(path: Path, obj) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False, default=str))
    os.replace(tmp, path)


def read_records(path: Path) -> list[dict]:
    """The records of a JSONL file written by RecordLog (a torn last line is ignored; no file: [])."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return out
