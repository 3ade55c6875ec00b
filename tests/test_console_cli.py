"""`looptool console` / `looptool run`: their errors (one line, exit 2) and the detached start."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from brokers import ThreadedEmbeddedBroker, embedded_broker  # noqa: F401

from console.commands import spawn_detached, wait_for_core
from core.errors import UserError

ROOT = Path(__file__).resolve().parent.parent


def looptool(*args, home: Path, env: dict | None = None):
    e = {**os.environ, "LOOPTOOL_HOME": str(home), **(env or {})}
    return subprocess.run([sys.executable, "-m", "console.cli", *args], cwd=ROOT, env=e, capture_output=True,
                          text=True, timeout=120)


def test_console_without_a_core_says_how_to_start_one(tmp_path):
    p = looptool("console", home=tmp_path)
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == [
        "error: no looptool core is running on this host: start one with `looptool run` or "
        "`looptool core --config cpu-demo`, or give --broker URL --core-id ID"]
    p = looptool("console", "--core-id", "gpu9", home=tmp_path)
    assert p.returncode == 2 and "error: --core-id gpu9: no such core running on this host" in p.stderr
    p = looptool("console", "--broker", "mqtt://127.0.0.1:1883", home=tmp_path)
    assert p.returncode == 2 and p.stderr.strip() == "error: --broker needs --core-id (the core's id on that broker)"


def test_console_bad_keymap_and_bad_broker_url(tmp_path):
    cores = tmp_path / "cores"
    cores.mkdir()
    (cores / "gpu0.json").write_text(json.dumps({"core_id": "gpu0", "url": "mqtt://127.0.0.1:1",
                                                 "pid": os.getpid()}))
    (tmp_path / "keymap.toml").write_text('pause = "space"\nreboot = "r"\n')
    p = looptool("console", home=tmp_path)
    assert p.returncode == 2
    assert p.stderr.startswith(f"error: {tmp_path / 'keymap.toml'}: reboot: unknown binding id")
    (tmp_path / "keymap.toml").unlink()
    p = looptool("console", "--core-id", "far", "--broker", "tcp://127.0.0.1:1883", home=tmp_path)
    assert p.returncode == 2 and "scheme 'tcp' is not supported" in p.stderr


def test_run_rejects_a_bad_config_before_starting_anything(tmp_path):
    p = looptool("run", "--config", str(tmp_path / "missing.toml"), home=tmp_path)
    assert p.returncode == 2 and p.stderr.startswith("error: ")
    assert not (tmp_path / "logs").exists() or not any((tmp_path / "logs").iterdir())


FAKE_CORE = textwrap.dedent("""
    import json, os, sys, time
    home, cid, url = sys.argv[1:4]
    print("core starting", flush=True)
    os.makedirs(os.path.join(home, "cores"), exist_ok=True)
    with open(os.path.join(home, "cores", cid + ".json"), "w") as f:
        json.dump({"core_id": cid, "url": url, "pid": os.getpid(), "run_id": "r1"}, f)
    time.sleep(60)
""")


def test_spawned_core_is_detached_and_waited_for(tmp_path, monkeypatch, embedded_broker):
    monkeypatch.setenv("LOOPTOOL_HOME", str(tmp_path))
    log = tmp_path / "core.log"
    proc = spawn_detached([sys.executable, "-c", FAKE_CORE, str(tmp_path), "fake0", embedded_broker.url], log)
    try:
        doc = wait_for_core("fake0", proc, log, timeout=30)
        assert doc["pid"] == proc.pid and doc["url"] == embedded_broker.url
        assert os.getsid(proc.pid) == proc.pid != os.getsid(0)  # its own session: no signals from our terminal
        assert "core starting" in log.read_text()
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(10)


def test_a_core_that_dies_at_start_is_reported_with_its_log(tmp_path, monkeypatch):
    monkeypatch.setenv("LOOPTOOL_HOME", str(tmp_path))
    log = tmp_path / "core.log"
    proc = spawn_detached([sys.executable, "-c", "print('error: port in use'); raise SystemExit(2)"], log)
    with pytest.raises(UserError, match=r"the core exited with code 2 before coming up; see .*core.log: "
                                        r"error: port in use"):
        wait_for_core("fake1", proc, log, timeout=30)
