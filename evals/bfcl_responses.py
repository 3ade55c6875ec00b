"""Scoring a file of pre-generated responses (no model loaded).

JSONL, one object per line: ``{"id": "<bfcl id>", "result": ...}`` (bfcl's result-file shape; ``raw``
is accepted too, so looptool's own records.jsonl can be rescored). ``result`` is the raw model text for
single-turn ids and a list of turns, each a list of step texts, for multi-turn ids. Any problem is
reported as ``file:line: what is wrong`` before anything is scored. ``--mode auto`` is decided line by
line (evals.results.reply_mode).
"""
from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path

from tqdm import tqdm

from core.errors import InputFileError, UserError
from core.records import RecordLog, write_json_atomic
from evals import bfcl_data, bfcl_prompt, bfcl_score
from evals.bfcl import _record, summarize
from evals.results import eval_dir, reply_mode, response_lines


def read_responses(path: Path) -> list[tuple[int, str, object]]:
    out = []
    for n, sid, obj in response_lines(path):
        key = "result" if "result" in obj else "raw" if "raw" in obj else None
        if key is None:
            raise InputFileError(path, n, f"id {sid!r:.80}: missing \"result\"")
        try:
            cat = bfcl_data.category_of_id(sid)
        except UserError:
            raise InputFileError(path, n, f"unknown BFCL-v3 id {sid!r:.80}") from None
        _check_shape(path, n, sid, cat, obj[key])
        out.append((n, sid, obj[key]))
    if not out:
        raise UserError(f"responses file {path}: no responses in it")
    return out


def _check_shape(path, n, sid, cat, result) -> None:
    if bfcl_data.kind(cat) != "multi_turn":
        if not isinstance(result, str):
            raise InputFileError(path, n, f"id {sid!r:.80}: \"result\" must be the model's text (a string)")
        return
    ok = isinstance(result, list) and all(
        isinstance(t, list) and all(isinstance(s, str) for s in t) for t in result)
    if not ok:
        raise InputFileError(path, n, f"id {sid!r:.80}: multi-turn \"result\" must be a list of turns, "
                                      "each a list of step texts")


def score_file(path: Path, mode: str = "auto", store=None, progress: bool = True,
               decoding: str = "official") -> dict:
    bfcl_prompt.check_mode(mode)
    rows = read_responses(path)
    index = {}
    for cat in {bfcl_data.category_of_id(sid) for _, sid, _ in rows}:
        index.update({e.id: e for e in bfcl_data.load_category(cat)})
    for n, sid, _ in rows:
        if sid not in index:
            raise InputFileError(path, n, f"unknown BFCL-v3 id {sid!r:.80}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:10]
    eid = f"bfcl-file-{digest}-{mode}-{decoding}"
    d = eval_dir(eid)
    config = {"model": f"file:{path.name}", "backend": "responses-file", "adapter": None, "mode": mode,
              "decoding": decoding, "responses_file": str(path.resolve())}
    write_json_atomic(d / "config.json", config)
    log = RecordLog(d / "records.jsonl")
    started = time.time()
    try:
        for _, sid, result in tqdm(rows, desc=f"score {path.name}", unit="sample", disable=not progress,
                                   file=sys.stderr):
            if sid in log:
                continue
            e = index[sid]
            if e.kind == "multi_turn":
                m = reply_mode(mode, [s for t in result for s in t])
                res = bfcl_score.score_multi_turn(e, result, m, decoding)
            else:
                res = bfcl_score.score_single(e, result, reply_mode(mode, [result]), decoding)
            log.add(_record(e, result, res))
    finally:
        log.close()
    entries = [index[sid] for _, sid, _ in rows]
    summary = summarize(eid, config, entries, log.records)
    summary["wall_s"] = round(time.time() - started, 2)
    summary["records"] = str(d / "records.jsonl")
    write_json_atomic(d / "summary.json", summary)
    if store is not None:
        store.add_eval(summary)
    return summary
