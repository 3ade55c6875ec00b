"""Find the cores running on this host: their discovery files, $LOOPTOOL_HOME/cores/<core-id>.json,
written by the core daemon ({core_id, url, pid, run_id, ...}) and removed when it exits. A file
whose process is gone (a core killed with -9) is ignored."""
from __future__ import annotations

import json
import os

from core.discovery import discovery_dir
from core.errors import UserError


def _alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except (OSError, ValueError, TypeError):
        return False
    return True


def running_cores() -> list[dict]:
    out = []
    for p in sorted(discovery_dir().glob("*.json")):
        try:
            doc = json.loads(p.read_text())
        except (OSError, ValueError):
            continue  # being written or garbage: not a core we can attach to
        if isinstance(doc, dict) and isinstance(doc.get("url"), str) and doc.get("core_id") == p.stem \
                and _alive(doc.get("pid")):
            out.append(doc)
    return out


def find_core(core_id: str | None, broker: str | None) -> dict:
    """{core_id, url, pid?} to attach to; UserError that says what to do when there is none."""
    if broker is not None:
        if core_id is None:
            raise UserError("--broker needs --core-id (the core's id on that broker)")
        return {"core_id": core_id, "url": broker, "pid": None}
    cores = running_cores()
    if core_id is not None:
        for doc in cores:
            if doc["core_id"] == core_id:
                return doc
        known = ", ".join(d["core_id"] for d in cores) or "none"
        raise UserError(f"--core-id {core_id}: no such core running on this host (running: {known}; "
                        f"discovery files in {discovery_dir()}); for a core elsewhere give --broker URL too")
    if not cores:
        raise UserError("no looptool core is running on this host: start one with `looptool run` or "
                        "`looptool core --config cpu-demo`, or give --broker URL --core-id ID")
    if len(cores) > 1:
        listing = ", ".join(f"{d['core_id']} (run {d.get('run_id')})" for d in cores)
        raise UserError(f"several cores are running ({listing}): pick one with --core-id")
    return cores[0]
