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
from typing import Callable

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
    """The tqdm bar plus the loop's progress callback (done, total, tokens generated so far: the console's
    tokens/s) and pause/stop checkpoint."""

    def __init__(self, bar, total: int, done: int, on_progress=None, checkpoint=None,
                 tokens: Callable[[], int] | None = None):
        self.bar, self.total, self.done = bar, total, done
        self.on_progress, self.checkpoint, self.tokens = on_progress, checkpoint, tokens
        if on_progress is not None:
            on_progress(done, total, self._tokens())

    def _tokens(self) -> int | None:
        return self.tokens() if self.tokens is not None else None

    def update(self, n: int = 1) -> None:
        self.bar.update(n)
        self.done += n
        if self.on_progress is not None:
            self.on_progress(self.done, self.total, self._tokens())
        if self.checkpoint is not None:
            self.checkpoint()

    def close(self) -> None:
        self.bar.close()


MAX_RESPONSES_BYTES = 256 * 2**20  # a whole BFCL-v3 run's replies are a few MB


def response_lines(path: Path):
    """(line number, id, object) for each non-blank line of a responses JSONL file: one JSON object per
    line with a string "id", ids unique. Every problem is one UserError naming the file, and the line
    where there is one (InputFileError): missing, a directory, unreadable, too big, not UTF-8, not
    JSON, nested deeper than the decoders' MAX_DEPTH, a number too long for Python to read."""
    from core.decode_bounds import MAX_DEPTH, DecodeError, check_depth
    from core.errors import InputFileError
    from core.user_input import read_text

    text = read_text(path, "responses file", max_bytes=MAX_RESPONSES_BYTES)
    seen: dict[str, int] = {}
    for n, line in enumerate(text.split("\n"), 1):  # not splitlines(): JSON strings may hold U+2028
        if not line.strip():
            continue
        try:
            check_depth(line, "json")  # json's C scanner recurses; the pre-check keeps it shallow
            obj = json.loads(line)
        except DecodeError:
            raise InputFileError(path, n, f"JSON nested deeper than {MAX_DEPTH} levels") from None
        except json.JSONDecodeError as e:
            raise InputFileError(path, n, f"not valid JSON ({e.msg} at column {e.colno})") from None
        except (ValueError, RecursionError) as e:  # an int over Python's 4,300-digit limit
            raise InputFileError(path, n, f"not valid JSON ({str(e).split(';')[0]})") from None
        if not isinstance(obj, dict):
            raise InputFileError(path, n, "expected a JSON object with \"id\" and \"result\"")
        sid = obj.get("id")
        if not isinstance(sid, str):
            raise InputFileError(path, n, "missing \"id\" (a string)")
        if sid in seen:
            raise InputFileError(path, n, f"duplicate id {sid!r:.80} (first on line {seen[sid]})")
        seen[sid] = n
        yield n, sid, obj


def reply_mode(mode: str, texts) -> str:
    """The mode one responses-file line is decoded in: `mode` itself unless it is "auto"; under "auto"
    fc when any of the line's texts (a multi-turn line's steps) holds a <tool_call> block, prompt
    otherwise. Decided line by line, so a file may mix replies of both kinds."""
    if mode != "auto":
        return mode
    return "fc" if any("<tool_call>" in t for t in texts) else "prompt"


def json_safe(obj, depth: int = 0):
    """A copy that json.dumps accepts: dict keys that JSON cannot hold become their repr, tuples become
    lists, an int too long for Python's int-to-str limit a short description, anything else unknown its
    str (model-made values can hold such things). Deeper than 200 levels: a description too."""
    if depth > 200:
        return "<value nested deeper than 200 levels>"
    if isinstance(obj, dict):
        return {_json_key(k): json_safe(v, depth + 1) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v, depth + 1) for v in obj]
    if isinstance(obj, int) and not isinstance(obj, bool):
        return obj if _int_writable(obj) else f"<integer of {obj.bit_length()} bits>"
    if obj is None or isinstance(obj, (str, float, bool)):
        return obj
    return _text(obj, str)


def _int_writable(n: int) -> bool:
    try:
        str(n)
    except ValueError:  # over sys.get_int_max_str_digits()
        return False
    return True


def _text(obj, how) -> str:
    """str() or repr() of an odd value, which may itself hold an unwritable int or nest too deep."""
    try:
        return how(obj)
    except (ValueError, RecursionError):
        return f"<{type(obj).__name__} that cannot be written>"


def _json_key(k):
    if isinstance(k, int) and not isinstance(k, bool):
        return k if _int_writable(k) else f"<integer of {k.bit_length()} bits>"
    return k if isinstance(k, (str, float, bool)) or k is None else _text(k, repr)
