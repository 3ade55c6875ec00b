"""`looptool store rebuild`: the results store, made again from the files it was made from.

    $LOOPTOOL_HOME/runs/<run_id>/run.json        -> runs         (core/engine.py writes it beside the
                                                                    store document, the same dict)
    $LOOPTOOL_HOME/runs/<run_id>/config.toml     -> which stages each iteration has
                                                    (core.engine.iteration_stages)
    .../iter-<j>/<stage>.done, all of them       -> iterations   (core.store_format.iteration_doc)
    .../iter-<j>/eval.done "summaries"           -> evals, with the run's run_id (the loop's evals)
    $LOOPTOOL_HOME/evals/<eval_id>/summary.json  -> evals        (every runner writes it; the loop's
                                                                    copy above adds run_dir/iteration)

An on-demand eval (core/eval_job.py) comes back from its summary.json alone, without the run_id,
run_dir and iteration that only its store record held. The `audit` table exists only in the store: it
is carried over when the old file still reads, else it starts empty. A run directory without run.json
(its core never started) and an eval directory without summary.json (unfinished) are skipped and
listed. Any other unreadable source file stops the rebuild with its name before anything is written;
a done marker is read as the engine reads it (an unreadable one: the stage has not finished).

The rebuild holds the writers' lock throughout (it is refused while a core or an eval has the store
open), keeps the old file aside as `looptool.db.json.before-rebuild-<UTC time>` and writes the new one
with the store's own atomic write.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from tinydb import TinyDB
from tinydb.storages import MemoryStorage

from core import paths
from core.errors import UserError
from core.store import AtomicJSONStorage, hold_writer_lock, release_writer_lock
from core.store_format import (TABLES, UNIQUE, check_nesting, iteration_doc, missing_keys,
                                 read_store_file)


@dataclass
class RebuildReport:
    path: Path
    counts: dict[str, int] = field(default_factory=dict)
    aside: Path | None = None  # where the old file was kept
    audit_kept: bool = False  # the old file was readable, its audit table is carried over
    skipped: list[str] = field(default_factory=list)  # "<dir>: why"


def rebuild_store() -> RebuildReport:
    store = paths.store_path()
    report = RebuildReport(store)
    fd = hold_writer_lock(store)
    try:
        tables = collect(report)
        tables["audit"] = _old_audit(store, report)
        data = _tinydb_data(tables)
        report.aside = _keep_aside(store)
        AtomicJSONStorage(store).write(data)
    finally:
        release_writer_lock(fd)
    report.counts = {t: len(tables[t]) for t in TABLES}
    return report


def collect(report: RebuildReport) -> dict[str, list[dict]]:
    """The evals, runs and iterations documents the source files make (see the module docstring)."""
    from core.config import parse
    from core.engine import brief_stats, iteration_stages
    from core.stages.base import is_done

    evals: dict[str, dict] = {}
    for d in sorted(p for p in paths.evals_dir().iterdir() if p.is_dir()):
        if not (d / "summary.json").exists():
            report.skipped.append(f"{d}: no summary.json (an unfinished evaluation)")
            continue
        summary = _source_doc(d / "summary.json", "evals")
        evals[summary["eval_id"]] = summary
    runs: list[dict] = []
    iterations: list[dict] = []
    runs_root = paths.home() / "runs"  # core.engine.run_dir_for
    run_dirs = sorted(p for p in runs_root.iterdir() if p.is_dir()) if runs_root.is_dir() else []
    loaded = []
    for run_dir in run_dirs:
        if not (run_dir / "run.json").exists():
            report.skipped.append(f"{run_dir}: no run.json (its core never started the run)")
            continue
        run = _source_doc(run_dir / "run.json", "runs")
        cfg_file = run_dir / "config.toml"
        try:
            cfg = parse(cfg_file.read_text(encoding="utf-8"), str(cfg_file))
        except (OSError, UnicodeDecodeError) as e:
            raise UserError(f"{cfg_file}: cannot read the run's config ({e})") from None
        loaded.append((run, run_dir, cfg))
    # oldest first: where two runs share an eval id (the same base model and eval config), the newer
    # run's record wins, as the store's upsert made it
    for run, run_dir, cfg in sorted(loaded, key=lambda x: x[0]["updated_at"]):
        runs.append(run)
        for j in range(0, cfg.run.iterations + 1):
            iter_dir = run_dir / f"iter-{j}"
            if (eval_done := is_done(iter_dir, "eval")) is not None:
                for summary in _eval_summaries(iter_dir / "eval.done", eval_done):
                    evals[summary["eval_id"]] = {**evals.get(summary["eval_id"], {}), **summary,
                                                 "run_id": run["run_id"]}
            if j == 0:
                continue
            stats = {s: is_done(iter_dir, s) for s in iteration_stages(cfg, j)}
            if all(v is not None for v in stats.values()):  # the engine records an iteration once it ends
                briefs = {s: brief_stats(s, v) for s, v in stats.items()}
                iterations.append(iteration_doc(run["run_id"], j, briefs))
    return {"evals": list(evals.values()), "runs": runs, "iterations": iterations}


def _eval_summaries(marker: Path, stats: dict) -> list[dict]:
    """The summaries of an eval.done marker (core/stages/eval.py), each checked like summary.json."""
    summaries = stats.get("summaries")
    if not isinstance(summaries, dict):
        raise UserError(f"{marker}: summaries: expected an object of benchmark summaries")
    out = []
    for name, summary in summaries.items():
        if not isinstance(summary, dict):
            raise UserError(f"{marker}: summaries.{name}: expected an object")
        for key, what in missing_keys("evals", summary):
            raise UserError(f"{marker}: summaries.{name}.{key}: {what}")
        out.append(summary)
    return out


def _source_doc(path: Path, table: str) -> dict:
    doc = _read_object(path)
    for key, what in missing_keys(table, doc):
        raise UserError(f"{path}: {key}: {what}")
    return doc


def _read_object(path: Path) -> dict:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise UserError(f"{path}: cannot read it as JSON ({e}); fix it or move it aside, then rerun "
                        "`looptool store rebuild`") from None
    if not isinstance(doc, dict):
        raise UserError(f"{path}: expected a JSON object")
    return doc


def _old_audit(store: Path, report: RebuildReport) -> list[dict]:
    try:
        data = read_store_file(store)
    except UserError:
        return []
    if data is None:
        return []
    report.audit_kept = True
    return list((data.get("audit") or {}).values())


def _tinydb_data(tables: dict[str, list[dict]]) -> dict:
    """The tables in TinyDB's own layout (doc ids and all), made by TinyDB itself."""
    db = TinyDB(storage=MemoryStorage)
    for name, docs in tables.items():
        for doc in docs:
            try:
                check_nesting(doc)  # what ResultStore would refuse, the rebuild does not write either
            except ValueError as e:
                raise UserError(f"{name} {doc.get(UNIQUE[name])!r}: {e}") from None
        db.table(name).insert_multiple(docs)
    return db.storage.read() or {}


def _keep_aside(store: Path) -> Path | None:
    if not store.exists():
        return None
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    for n in range(1, 1000):
        aside = store.with_name(f"{store.name}.before-rebuild-{stamp}" + (f"-{n}" if n > 1 else ""))
        try:
            os.link(store, aside)  # fails if the name is taken: never overwrite an earlier one
            return aside
        except FileExistsError:
            continue
        except OSError:  # a filesystem without hard links
            with contextlib.suppress(FileExistsError):
                with open(aside, "xb") as out, open(store, "rb") as src:
                    shutil.copyfileobj(src, out)
                return aside
    raise UserError(f"{store}: cannot find a free name to keep the old store aside")
