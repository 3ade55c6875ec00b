"""`looptool store check`: every problem of a store file, one line each (core/store_format.py says
what a good file is), and whether the run directories its runs and evals name still exist.

It reads the file as it is on disk and takes no lock: it works while a core is writing, and on a file
that is not the live store (`--file looptool.db.json.prev`, before restoring it).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from core.errors import UserError
from core.store_format import TABLES, doc_problems, parse_store_text, shape_problems


@dataclass
class StoreReport:
    path: Path
    exists: bool = False
    counts: dict[str, int] = field(default_factory=dict)  # table -> documents
    problems: list[str] = field(default_factory=list)  # "<file>: <key path>: <what>"


def check_store(path: Path) -> StoreReport:
    report = StoreReport(path)
    try:
        data = parse_store_text(path)
    except UserError as e:
        report.exists, report.problems = True, [str(e)]
        return report
    if data is None:
        return report
    report.exists = True
    found = [*shape_problems(data), *doc_problems(data), *_missing_run_dirs(data)]
    report.problems = [f"{path}: {where}: {what}" for where, what in found]
    report.counts = {t: len(data[t]) if isinstance(data.get(t), dict) else 0 for t in TABLES}
    return report


def _missing_run_dirs(data: dict):
    """Runs name their run directory; evals of a run (the loop's and on-demand ones) do too."""
    for table in ("runs", "evals"):
        docs = data.get(table)
        if not isinstance(docs, dict):
            continue
        for doc_id, doc in docs.items():
            run_dir = doc.get("run_dir") if isinstance(doc, dict) else None
            if isinstance(run_dir, str) and not Path(run_dir).is_dir():
                yield f"{table}.{doc_id}.run_dir", f"run directory {run_dir} does not exist"
