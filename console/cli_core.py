"""Running the loop: `looptool config ...` (run configs), `looptool core` (a run on the bus) and
`looptool broker ...` (a mosquitto setup for cores and consoles)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from core.errors import UserError

config_app = typer.Typer(help="Run configurations and the shipped presets.", no_args_is_help=True)
broker_app = typer.Typer(help="MQTT broker setup (mosquitto) for cores and consoles.", no_args_is_help=True)


@config_app.command("show")
def config_show(preset: str = typer.Argument(..., help="cpu-demo | cpu-demo-static | qwen3-8b-paper")):
    """Print a preset's TOML, to save and edit as your own run config."""
    from core.config import preset_text

    typer.echo(preset_text(preset), nl=False)


@config_app.command("check")
def config_check(path: Path = typer.Argument(..., help="A run config TOML file."),
                 syntax_only: bool = typer.Option(False, "--syntax-only", help="Check keys and values "
                                                  "only, not what they name on this machine (models, the "
                                                  "seed file, categories, devices).")):
    """Validate a run config, and what it names on this machine (core.preflight: models, the seed file,
    benchmark categories, devices), as a run would before writing anything; errors name the key path."""
    from core.config import load
    from core.preflight import check_run

    cfg = load(str(path))
    notes = [] if syntax_only else check_run(cfg, str(path))
    typer.echo(f"{path}: ok (run {cfg.run.name}, {cfg.run.iterations} iterations, "
               f"methods {cfg.train.methods}, budget {cfg.assemble.budget})")
    for note in notes:
        typer.echo(f"  {note}")


def core_cmd(
    config: Optional[str] = typer.Option(None, "--config", help="Run config TOML file or preset name."),
    resume: Optional[str] = typer.Option(None, "--resume", help="Continue this run id from its last "
                                         "completed unit (after a crash, kill -9 or stop)."),
    broker: Optional[str] = typer.Option(None, "--broker", help="MQTT broker URL mqtt://host:port (user "
                                         "and password: prefer --broker-credentials or LOOPTOOL_MQTT_USER/"
                                         "LOOPTOOL_MQTT_PASSWORD; a password in the URL shows in `ps`). "
                                         "Default: an embedded broker on 127.0.0.1."),
    broker_credentials: Optional[Path] = typer.Option(None, "--broker-credentials", help="A 0600 file "
                                                      "holding `user:password` for the broker."),
    core_id: Optional[str] = typer.Option(None, "--core-id", help="This core's id on the bus "
                                          "(default: the host name)."),
    stay: bool = typer.Option(False, "--stay", help="Keep serving the bus (status, evals, history) after "
                              "the run ends, until a stop command or SIGTERM."),
    paused: bool = typer.Option(False, "--paused", help="Start paused: nothing runs until a resume "
                                "(console, or kill -USR1 PID)."),
    no_bus: bool = typer.Option(False, "--no-bus", help="Headless only: no broker, no bus, progress lines."),
):
    """Run the loop and put it on the bus (printing progress lines too). Ctrl-C stops at the next safe
    point (training saves a checkpoint first); `kill -USR1 PID` pauses/resumes; `--resume RUN`
    continues a run."""
    from core.config import load
    from core.engine import Engine, new_run_id, run_dir_for
    from core.preflight import check_run
    from core.store import ResultStore
    from console.headless import LinePrinter, run_headless

    if (config is None) == (resume is None):
        raise UserError("give exactly one of --config FILE|PRESET or --resume RUN_ID")
    if no_bus and (broker or broker_credentials or core_id or stay):
        raise UserError("--no-bus runs without a bus: drop --broker/--broker-credentials/--core-id/--stay")
    if not no_bus:
        target, cid = check_bus_options(broker, str(broker_credentials) if broker_credentials else None, core_id)
    if resume is not None:
        cfg_file = run_dir_for(resume) / "config.toml"
        if not cfg_file.exists():
            raise UserError(f"--resume {resume}: no such run (see `looptool runs list`)")
        cfg, run_id = load(str(cfg_file)), resume
    else:
        cfg = load(config)
        check_run(cfg, config)  # what the config names on this machine, before the run directory exists
        run_id = new_run_id(cfg)
    with ResultStore() as store:
        engine = Engine(cfg, run_id, store=store)  # parsed once; only cfg.text goes to the stage processes
        typer.echo(f"run {run_id}: {engine.run_dir}")
        if paused:
            engine.pause()
        if no_bus:
            final = run_headless(engine)
        else:
            from core.daemon import run_daemon

            engine.subscribe(LinePrinter())
            final = run_daemon(engine, store, broker=target, core_id=cid, stay=stay, say=typer.echo)
    typer.echo(f"run {run_id}: {final}")
    if final == "stopped":
        typer.echo(f"continue it with: looptool core --resume {run_id}")
    raise typer.Exit(0 if final in ("finished", "stopped") else 1)


def check_bus_options(broker: str | None, credentials: str | None, core_id: str | None):
    """Check the bus options before anything is created: (BrokerURL or None = embedded, core id)."""
    from core import busproto as bp
    from core.bus import resolve
    from core.discovery import default_core_id, live_discovery

    cid = core_id or default_core_id()
    try:
        bp.check_id(cid)
    except bp.BadPayload as e:
        raise UserError(f"--core-id: {e}") from None
    if credentials and not broker:
        raise UserError("--broker-credentials needs --broker (the embedded broker makes its own)")
    other = live_discovery(cid)
    if other is not None and other.get("pid") != os.getpid():
        raise UserError(f"--core-id {cid}: a core with this id is running (pid {other['pid']}, "
                        f"run {other.get('run_id')}); pick another --core-id")
    return (resolve(broker, credentials) if broker else None), cid


@broker_app.command("config")
def broker_config(
    directory: Path = typer.Argument(..., help="Where to write mosquitto.conf, passwd, acl, credentials/."),
    port: int = typer.Option(1883, help="Listener port (always bound to 127.0.0.1)."),
    core_password_file: Optional[Path] = typer.Option(None, "--core-password-file", help="Use this "
                                                      "password for the core role (else generated)."),
    operator_password_file: Optional[Path] = typer.Option(None, "--operator-password-file"),
    viewer_password_file: Optional[Path] = typer.Option(None, "--viewer-password-file"),
    persistence: bool = typer.Option(False, help="Keep retained state across broker restarts."),
    rotate: bool = typer.Option(False, "--rotate", help="New passwords for the roles not given by a "
                                "--*-password-file (a re-run otherwise keeps those in DIR/credentials/)."),
    root_user: bool = typer.Option(False, "--root-user", help="Write `user root` (throw-away CI only)."),
):
    """Write a mosquitto config: loopback listener, no anonymous access, users core/operator/viewer
    with an ACL (only operator and core may publish commands). Passwords go to DIR/credentials/<role>
    (0600, `role:password`, for --broker-credentials); a re-run keeps them unless --rotate. Nothing
    secret is printed or passed on a command line; DIR's mode is left as it is."""
    from core.broker import _read_password_file, write_mosquitto_config

    given = {}
    for role, f in (("core", core_password_file), ("operator", operator_password_file),
                    ("viewer", viewer_password_file)):
        if f is not None:
            given[role] = _read_password_file(str(f), role)
    out = write_mosquitto_config(directory, port=port, persistence=persistence, passwords=given,
                                 rotate=rotate, root_user=root_user)
    typer.echo(f"config:      {out['config']}")
    typer.echo(f"passwords:   {out['passwd']} (hashed with {out['hashed_with']})")
    by_source: dict[str, list[str]] = {}
    for role, source in out["password_source"].items():
        by_source.setdefault(source, []).append(role)
    words = {"kept": "kept from DIR/credentials/ (--rotate makes new ones)", "new": "new",
             "given": "from the given password files"}
    for source in ("kept", "new", "given"):
        if source in by_source:
            typer.echo(f"             {', '.join(by_source[source])}: {words[source]}")
    typer.echo(f"acl:         {out['acl']}")
    for role, p in out["credentials"].items():
        typer.echo(f"credentials: {p}  ({role})")
    if out["owner_note"]:
        typer.echo(f"note: {out['owner_note']}")
    typer.echo(f"start it:    mosquitto -c {out['config']}")
    typer.echo(f"core:        looptool core --config ... --broker mqtt://127.0.0.1:{port} "
               f"--broker-credentials {out['credentials']['core']}")
