"""Scoring a file of pre-generated ACEBench responses (no model loaded).

JSONL, one object per line, upstream's result shape:

* normal and special ids: ``{"id": ..., "result": "<model text>"}`` (one line per turn id in the
  multi-turn files);
* agent ids: ``{"id": ..., "result": [{Class: {attr: value}}, ...], "process": ["[call(...)]", ...]}``,
  the saved sandbox state and the agent messages that reached the executor.

looptool's own records.jsonl can be rescored too (``raw`` for text, ``state`` for the agent state).
A multi-turn dialogue is scored as a whole: a turn missing from the file counts as an empty reply.
Any problem is reported as ``file:line: what is wrong`` before anything is scored. ``--mode auto`` is
decided line by line (evals.results.reply_mode): a file may mix prompt-mode and fc replies.
"""
from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path

from tqdm import tqdm

from core.errors import InputFileError, UserError
from core.records import RecordLog, write_json_atomic
from evals.acebench import data, fetch
from evals.acebench.runner import _record, summarize
from evals.acebench.score import score_agent, score_text
from evals.results import eval_dir, reply_mode, response_lines


def _field(obj: dict, *names):
    for n in names:
        if n in obj:
            return obj[n]
    return None


def read_responses(path: Path) -> list[tuple[int, str, dict]]:
    out = []
    for n, sid, obj in response_lines(path):
        try:
            cat = data.category_of_id(sid)
        except UserError:
            raise InputFileError(path, n, f"unknown ACEBench id {sid!r:.80}") from None
        out.append((n, sid, _shape(path, n, sid, cat, obj)))
    if not out:
        raise UserError(f"responses file {path}: no responses in it")
    return out


def _shape(path, n, sid, cat, obj) -> dict:
    if data.kind(cat) == "agent":
        state = _field(obj, "result", "state")
        if not isinstance(state, list) or not all(isinstance(d, dict) for d in state):
            raise InputFileError(path, n, f"id {sid!r:.80}: agent \"result\" must be the saved state, a list of "
                                          "{Class: {attribute: value}} objects")
        process = obj.get("process", [])
        if not isinstance(process, list) or not all(isinstance(p, str) for p in process):
            raise InputFileError(path, n, f"id {sid!r:.80}: \"process\" must be a list of call strings")
        return {"state": state, "process": process}
    text = _field(obj, "result", "raw")
    if text is None:
        raise InputFileError(path, n, f"id {sid!r:.80}: missing \"result\"")
    if not isinstance(text, str):
        raise InputFileError(path, n, f"id {sid!r:.80}: \"result\" must be the model's text (a string)")
    return {"text": text}


def score_file(path: Path, mode: str = "auto", data_dir=None, strict_arg_set: bool = False, store=None,
               progress: bool = True, decoding: str = "official") -> dict:
    if mode not in ("auto", "prompt", "fc"):
        raise UserError(f"--mode: unknown mode {mode!r}; choose from auto, prompt, fc")
    rows = read_responses(path)
    root = fetch.resolve_data_dir(data_dir)
    given = {sid: (n, res) for n, sid, res in rows}
    index = {}
    for cat in {data.category_of_id(sid) for sid in given}:
        index.update({e.id: e for e in data.load_category(root, cat)})
    for sid, (n, _) in given.items():
        if sid not in index:
            raise InputFileError(path, n, f"unknown ACEBench id {sid!r:.80}")
    cats = [c for c in data.CATEGORIES if any(data.category_of_id(s) == c for s in given)]
    entries = data.select(root, cats, ids=list(given))  # multi-turn ids expand to their whole dialogue
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:10]
    eid = f"acebench-file-{digest}-{mode}-{decoding}{'-argset' if strict_arg_set else ''}"
    d = eval_dir(eid)
    config = {"model": f"file:{path.name}", "backend": "responses-file", "adapter": None, "mode": mode,
              "responses_file": str(path.resolve()), "strict_arg_set": strict_arg_set,
              "decoding": decoding, "data_commit": fetch.commit()}
    write_json_atomic(d / "config.json", config)
    log = RecordLog(d / "records.jsonl")
    started = time.time()
    try:
        for e in tqdm(entries, desc=f"score {path.name}", unit="sample", disable=not progress, file=sys.stderr):
            if e.id in log:
                continue
            res = given.get(e.id, (0, None))[1]
            if e.kind == "agent":
                log.add(_record(e, None, {**res, **score_agent(e, res["state"], res["process"])}))
            else:
                text = res["text"] if res else ""
                verdict = score_text(e, text, reply_mode(mode, [text]), strict_arg_set, decoding)
                log.add(_record(e, text, {**verdict, **({} if res else {"missing": True})}))
    finally:
        log.close()
    summary = summarize(eid, config, entries, log.records)
    summary.update(wall_s=round(time.time() - started, 2), records=str(d / "records.jsonl"), data_dir=str(root))
    write_json_atomic(d / "summary.json", summary)
    if store is not None:
        store.add_eval(summary)
    return summary
