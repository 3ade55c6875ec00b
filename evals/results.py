"""Evaluation directories, ids, progress and response files, shared by every benchmark runner.

Each evaluation owns a directory ``$LOOPTOOL_HOME/evals/<eval_id>/`` holding ``records.jsonl`` (one
line per finished sample, appended and flushed as samples finish) and ``config.json``. Rerunning the
same evaluation reads the records back and skips finished samples; a torn last line from a crash is
cut off before appending resumes.
"""
from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

from core import paths


def eval_id(benchmark: str, config: dict) -> str:
    """Stable id: the same benchmark and config always map to the same eval (which makes resume work)."""
    blob = json.dumps(config, sort_keys=True, default=str)
    return f"{benchmark}-{hashlib.sha256(blob.encode()).hexdigest()[:10]}"


def eval_dir(eid: str) -> Path:
    d = paths.evals_dir() / eid
    d.mkdir(parents=True, exist_ok=True)
    return d


def git_revision() -> str | None:
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True, timeout=5).stdout.strip()
    return out.stdout.strip() + ("+dirty" if dirty else "")


class Progress:
    """The tqdm bar plus the loop's progress callback and pause/stop checkpoint."""

    def __init__(self, bar, total: int, done: int, on_progress=None, checkpoint=None):
        self.bar, self.total, self.done = bar, total, done
        self.on_progress, self.checkpoint = on_progress, checkpoint
        if on_progress is not None:
            on_progress(done, total)

    def update(self, n: int = 1) -> None:
        self.bar.update(n)
        self.done += n
        if self.on_progress is not None:
            self.on_progress(self.done, self.total)
        if self.checkpoint is not None:
            self.checkpoint()

    def close(self) -> None:
        self.bar.close()


def response_lines(path: Path):
    """(line number, id, object) for each non-blank line of a responses JSONL file: one JSON object per
    line with a string "id", ids unique. Bad lines raise InputFileError naming file:line."""
    from core.errors import InputFileError, UserError

    if not path.exists():
        raise UserError(f"responses file {path}: no such file")
    seen: dict[str, int] = {}
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise InputFileError(path, n, f"not valid JSON ({e.msg} at column {e.colno})") from None
            if not isinstance(obj, dict):
                raise InputFileError(path, n, "expected a JSON object with \"id\" and \"result\"")
            sid = obj.get("id")
            if not isinstance(sid, str):
                raise InputFileError(path, n, "missing \"id\" (a string)")
            if sid in seen:
                raise InputFileError(path, n, f"duplicate id {sid!r} (first on line {seen[sid]})")
            seen[sid] = n
            yield n, sid, obj


def json_safe(obj, depth: int = 0):
    """A copy that json.dumps accepts: dict keys that JSON cannot hold become their repr, tuples become
    lists, anything else unknown becomes its str (model-made values can hold such things)."""
    if depth > 200:
        return repr(obj)
    if isinstance(obj, dict):
        return {(k if isinstance(k, (str, int, float, bool)) or k is None else repr(k)): json_safe(v, depth + 1)
                for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v, depth + 1) for v in obj]
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    return str(obj)
