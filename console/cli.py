"""The `looptool` command line: the command tree; the commands live in console/cli_*.py and
console/commands.py.

Every command has --help. Bad input ends with one `error: ...` line on stderr and exit code 2.
"""
from __future__ import annotations

import sys

import typer

from console import cli_core, cli_eval, cli_export, cli_runs, cli_store
from console.commands import register as register_console_commands
from core.errors import UserError

app = typer.Typer(help="looptool: close the data-training loop for tool-calling LLMs.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
app.command("core")(cli_core.core_cmd)
app.command("models")(cli_eval.models_cmd)
app.command("export")(cli_export.export_cmd)
register_console_commands(app)  # `looptool console` and `looptool run` (the operator console)
app.add_typer(cli_eval.eval_app, name="eval")
app.add_typer(cli_runs.runs_app, name="runs")
app.add_typer(cli_store.store_app, name="store")
app.add_typer(cli_core.config_app, name="config")
app.add_typer(cli_core.broker_app, name="broker")


def main() -> None:
    try:
        app()
    except UserError as e:
        typer.echo(f"error: {e}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("interrupted: rerun the same command to resume", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
