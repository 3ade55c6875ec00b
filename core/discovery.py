"""Discovery files: how `looptool console` finds a core on this host.

$LOOPTOOL_HOME/cores/<core-id>.json holds {core_id, url (never a password), pid, run_id, ...}; the core
writes it once its broker is up and removes it on a clean exit; a record whose process died is ignored.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from core import busproto as bp
from core import paths


def discovery_dir() -> Path:
    d = paths.home() / "cores"
    d.mkdir(parents=True, exist_ok=True)
    return d


def write_discovery(core_id: str, url: str, run_id: str, embedded: bool) -> Path:
    """$LOOPTOOL_HOME/cores/<core-id>.json: {core_id, url (never a password), pid, run_id, ...}."""
    p = discovery_dir() / f"{bp.check_id(core_id)}.json"
    doc = {"core_id": core_id, "url": url, "pid": os.getpid(), "run_id": run_id, "embedded_broker": embedded,
           "started_at": time.time()}
    tmp = p.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=2))
    tmp.replace(p)
    return p


def live_discovery(core_id: str) -> dict | None:
    """The discovery record of a core with this id whose process is still alive, else None."""
    import psutil

    p = discovery_dir() / f"{core_id}.json"
    try:
        doc = json.loads(p.read_text())
        if psutil.Process(int(doc["pid"])).status() == psutil.STATUS_ZOMBIE:
            return None
    except (OSError, ValueError, KeyError, TypeError, psutil.Error):
        return None
    return doc


def remove_discovery(core_id: str) -> None:
    p = discovery_dir() / f"{core_id}.json"
    try:
        doc = json.loads(p.read_text())
        if doc.get("pid") == os.getpid():
            p.unlink()
    except (OSError, ValueError):
        pass


def default_core_id() -> str:
    import re
    import socket

    host = socket.gethostname().split(".")[0] or "core"
    cid = re.sub(r"[^A-Za-z0-9_.-]", "-", host)[:64]
    return cid if cid != bp.CONSOLE_SPACE else "core"
