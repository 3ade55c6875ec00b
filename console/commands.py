"""`looptool console` (attach to a running core) and `looptool run` (start a core detached, then attach).

Registered on the CLI by console/cli.py. Textual and the MQTT client are imported only when a
command runs, so `looptool --help` stays fast.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import typer

from core.errors import UserError


def register(app: typer.Typer) -> None:
    app.command("console")(console_cmd)
    app.command("run")(run_cmd)
    app.command("stop")(stop_cmd)


def console_cmd(
    core_id: Optional[str] = typer.Option(None, "--core-id", "--core", help="The core to attach to (default: "
                                          "the only core running on this host, from its discovery file)."),
    broker: Optional[str] = typer.Option(None, "--broker", help="Broker URL mqtt://host:port of a core that "
                                         "is not on this host (then --core-id is needed). User/password: "
                                         "LOOPTOOL_MQTT_USER/LOOPTOOL_MQTT_PASSWORD or --broker-credentials."),
    broker_credentials: Optional[Path] = typer.Option(None, "--broker-credentials", help="A 0600 file "
                                                      "holding `user:password` for the broker."),
    read_only: bool = typer.Option(False, "--read-only", help="Viewer mode: no commands, nothing published "
                                   "(on a local core's embedded broker: as its read-only user `viewer`)."),
    stale_after: float = typer.Option(15.0, "--stale-after", min=1.0, help="Mark the core stale when its "
                                      "status has not advanced for this many seconds."),
):
    """Attach the operator console to a running core. Leaving it (q) never stops the core."""
    target = _find(core_id, broker)
    _attach(target, broker_credentials, read_only, stale_after)


def run_cmd(
    config: str = typer.Option("cpu-demo", "--config", help="Run config TOML file or preset name."),
    core_id: Optional[str] = typer.Option(None, "--core-id", help="The core's id on the bus (default: the "
                                          "host name)."),
    stay: bool = typer.Option(True, "--stay/--exit-when-done", help="After the last iteration the core keeps "
                              "serving the console (history, on-demand evals of any iteration, export) until "
                              "you stop it (s in the console, or `looptool stop`); --exit-when-done ends it "
                              "with the run."),
    paused: bool = typer.Option(False, "--paused", help="Start the core paused: nothing runs until you "
                                "press p in the console."),
    wait: float = typer.Option(120.0, "--wait", min=1.0, help="Seconds to wait for the core to come up."),
):
    """Start a core detached (its own session, embedded broker, log in $LOOPTOOL_HOME/logs/), wait for
    it, then attach the console. Leaving the console leaves the core running; a finished run's core
    keeps serving until it is stopped."""
    from core import paths
    from core.config import load
    from core.discovery import default_core_id, live_discovery
    from core.preflight import check_run

    # a bad config, or one naming what this machine lacks, fails here, not in a detached process
    check_run(load(config), config)
    cid = core_id or default_core_id()
    other = live_discovery(cid)
    if other is not None:
        raise UserError(f"core {cid} is already running (pid {other.get('pid')}, run {other.get('run_id')}): "
                        f"attach with `looptool console --core-id {cid}`, or start another with --core-id")
    logs = paths.home() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"core-{cid}-{time.strftime('%Y%m%d-%H%M%S')}.log"
    cmd = [sys.executable, "-m", "console.cli", "core", "--config", config, "--core-id", cid]
    if stay:
        cmd.append("--stay")
    if paused:
        cmd.append("--paused")
    proc = spawn_detached(cmd, log_path)
    typer.echo(f"core {cid}: started (pid {proc.pid}), log {log_path}")
    target = wait_for_core(cid, proc, log_path, wait)
    _attach(target, None, False, 15.0, log_path=log_path)


def stop_cmd(
    core_id: Optional[str] = typer.Option(None, "--core-id", "--core", help="The core to stop (default: the "
                                          "only core running on this host)."),
    wait: float = typer.Option(300.0, "--wait", min=0.0, help="Seconds to wait for it to exit (a running "
                               "training saves a checkpoint first); 0: do not wait."),
):
    """Stop a core running on this host, as `s` in the console does: a running loop stops at its next
    safe point (continue it with `looptool core --resume RUN`); a finished run's core stops serving."""
    from console.discovery import find_core
    from core.discovery import live_discovery

    doc = find_core(core_id, None)
    cid, pid = doc["core_id"], doc.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        raise UserError(f"core {cid}: its discovery file names no process; stop it from the console (s)")
    try:
        os.kill(pid, signal.SIGTERM)  # the core's handler: stop at the next safe point, or leave --stay
    except ProcessLookupError:
        raise UserError(f"core {cid} (pid {pid}) is not running any more") from None
    except PermissionError:
        raise UserError(f"core {cid} (pid {pid}) belongs to another user; stop it from its console (s)") from None
    typer.echo(f"core {cid}: asked to stop (pid {pid}, run {doc.get('run_id') or '?'})")
    deadline = time.monotonic() + wait
    while wait and time.monotonic() < deadline:
        if live_discovery(cid) is None or not _alive(pid):
            typer.echo(f"core {cid}: stopped")
            return
        time.sleep(0.2)
    if wait:
        raise UserError(f"core {cid} (pid {pid}) has not exited after {wait:g}s; it may still be saving a "
                        f"checkpoint: see its log in $LOOPTOOL_HOME/logs/, or `kill -KILL {pid}`")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def spawn_detached(cmd: list[str], log_path: Path) -> subprocess.Popen:
    """Its own session (no SIGINT/SIGHUP from this terminal), no stdin, output to the log file."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True, cwd=os.getcwd())


def wait_for_core(cid: str, proc: subprocess.Popen, log_path: Path, timeout: float) -> dict:
    """Until the core's discovery file names this process and its broker accepts connections."""
    from core.bus import parse_url
    from core.discovery import live_discovery

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace").strip().splitlines()[-5:]
            raise UserError(f"the core exited with code {proc.returncode} before coming up; see {log_path}: "
                            + " | ".join(tail))
        doc = live_discovery(cid)
        if doc is not None and doc.get("pid") == proc.pid:
            b = parse_url(doc["url"], f"discovery file of {cid}")
            try:
                socket.create_connection((b.host, b.port), timeout=1).close()
                return doc
            except OSError:
                pass
        time.sleep(0.2)
    raise UserError(f"the core did not come up within {timeout:g}s (pid {proc.pid} still running); see "
                    f"{log_path}; attach later with `looptool console --core-id {cid}`")


def _find(core_id: str | None, broker: str | None) -> dict:
    from console.discovery import find_core

    return find_core(core_id, broker)


def _embedded_credentials(core_id: str, read_only: bool) -> Path:
    """The file a core's embedded broker wrote for this console's mode (`viewer` for --read-only,
    else `core`); UserError when it cannot be read, which is also what another user gets."""
    from core.broker import embedded_credentials_path
    from core.bus import load_credentials

    role = "viewer" if read_only else "core"
    path = embedded_credentials_path(core_id, role)
    try:
        load_credentials(path)
    except UserError as e:
        raise UserError(f"{e}: core {core_id}'s embedded broker admits only its {role} credentials, which "
                        "that core writes there for the user that started it") from None
    return path


def _attach(target: dict, credentials: Path | None, read_only: bool, stale_after: float,
            log_path: Path | None = None) -> None:
    from core.bus import resolve
    from console.app import LoopConsole, exit_message
    from console.keymap import load_keymap
    from console.link import MqttLink

    keymap = load_keymap()
    if credentials is None and target.get("embedded_broker"):
        credentials = _embedded_credentials(target["core_id"], read_only)
    b = resolve(target["url"], str(credentials) if credentials else None)
    link = MqttLink(b.url(), target["core_id"], read_only=read_only, username=b.username, password=b.password)
    result = LoopConsole(link, keymap=keymap, stale_after=stale_after).run()
    typer.echo(exit_message(link, target.get("pid")))
    if log_path is not None:
        typer.echo(f"  core log:  {log_path}")
    if result not in (None, "detached"):
        typer.echo(f"console: {result}", err=True)
