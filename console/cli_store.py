"""`looptool store ...`: check the results store, or rebuild it from the run directories and eval
summaries (core/store_check.py, core/store_rebuild.py)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

store_app = typer.Typer(help="Check or rebuild the results store ($LOOPTOOL_HOME/looptool.db.json).",
                        no_args_is_help=True)


@store_app.command("check")
def store_check(file: Optional[Path] = typer.Option(None, "--file", help="Check this file instead of the live "
                                                    "store (e.g. looptool.db.json.prev before restoring it).")):
    """Check the store: JSON, table shapes, each document's keys, the run directories it names. Exit 0 when
    fine; otherwise one `error:` line per problem and exit 2. Takes no lock (works while a core runs)."""
    from core import paths
    from core.store_check import check_store

    report = check_store(file if file is not None else paths.store_path())
    if report.problems:
        for line in report.problems:
            typer.echo(f"error: {line}", err=True)
        raise typer.Exit(2)
    if not report.exists:
        typer.echo(f"ok: {report.path}: no store yet (nothing recorded)")
        return
    typer.echo(f"ok: {report.path}: " + ", ".join(f"{n} {t}" for t, n in report.counts.items()))


@store_app.command("rebuild")
def store_rebuild():
    """Rebuild the store from $LOOPTOOL_HOME's run directories and eval summaries, keeping the old file
    aside. Refused while a core or an eval has the store open."""
    from core.store_rebuild import rebuild_store

    report = rebuild_store()
    for line in report.skipped:
        typer.echo(f"skipped: {line}")
    typer.echo(f"rebuilt {report.path}: " + ", ".join(f"{n} {t}" for t, n in report.counts.items()))
    typer.echo("audit: carried over from the old store" if report.audit_kept else
               "audit: starts empty (it lives only in the store, and there was no readable old one)")
    if report.aside is not None:
        typer.echo(f"the old store is kept at {report.aside}")
