"""A finished run stays operable (issue 14): `looptool run` starts `looptool core --stay`, and that core,
its run finished, keeps serving the console over its embedded broker (history, an on-demand eval of a
trained iteration's weights, an entry-by-entry compare of two evals) until `looptool stop` ends it.

The core here resumes a copy of the session's finished tiny run (tests/loop_runs.py), so nothing is
trained again and the reference run's own home is left as it was."""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from brokers import run_async
from daemon_client import Console, wait_for
from loop_runs import shared_reference

from core.bus import load_credentials

pytestmark = pytest.mark.slow
CORE_ID = "finished1"


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory, worker_id, embedded_path):
    return shared_reference(tmp_path_factory, worker_id)


def _discovered(home: Path, proc: subprocess.Popen, log: Path, timeout: float = 120) -> tuple[dict, tuple[str, str]]:
    """The core's discovery file and the credentials `looptool console` reads for its embedded broker."""
    doc_path = home / "cores" / f"{CORE_ID}.json"
    cred_path = home / "cores" / f"{CORE_ID}.core.credentials"  # what the console uses on a local core
    deadline = time.monotonic() + timeout
    while not (doc_path.exists() and cred_path.exists()):
        assert proc.poll() is None, f"the core exited:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"the core did not come up:\n{log.read_text()[-3000:]}"
        time.sleep(0.2)
    time.sleep(0.2)
    return json.loads(doc_path.read_text()), load_credentials(cred_path)


def test_a_finished_run_s_core_serves_evals_history_and_compare_until_looptool_stop(reference_run, tmp_path):
    home, run_dir, _ = reference_run
    mine = tmp_path / "home"
    shutil.copytree(home, mine, ignore=shutil.ignore_patterns("cores", "logs", "*.lock"))
    run_id = run_dir.name
    env = {**os.environ, "LOOPTOOL_HOME": str(mine), "PYTHONUNBUFFERED": "1"}
    log = tmp_path / "core.log"
    with open(log, "w") as f:  # a file, not a pipe nobody reads while the core serves
        proc = subprocess.Popen([sys.executable, "-m", "console.cli", "core", "--resume", run_id, "--stay",
                                 "--core-id", CORE_ID], env=env, stdout=f, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)
    try:
        doc, creds = _discovered(mine, proc, log)
        assert doc["pid"] == proc.pid and doc["run_id"] == run_id

        async def main():
            con = await Console(doc["url"], CORE_ID, creds=creds).start()
            await wait_for(lambda: con.state() == "finished", timeout=120, what="the resumed run finished")
            await asyncio.sleep(0.5)
            assert proc.poll() is None and con.latest("online") == b"true"  # FINISHED, and still there

            a = await con.final(await con.send("eval", {"iteration": 1}), timeout=300)
            assert a.status == "done", a.detail
            fresh = a.result
            assert fresh["iteration"] == 1 and fresh["eval_id"]

            a = await con.final(await con.send("history", {"table": "evals", "run_id": run_id}), timeout=30)
            assert a.status == "done"
            rows = a.result["rows"]
            assert fresh["eval_id"] in [r["eval_id"] for r in rows]
            assert {r["iteration"] for r in rows if not r.get("on_demand")} == {0, 1, 2}

            # the on-demand eval of iteration 1's weights against the run's own eval of iteration 1: the
            # same held-out entries, the same verdicts (greedy, same weights): nothing flips
            a = await con.final(await con.send("compare", {"a": f"{run_id}:1", "b": fresh["eval_id"]}), timeout=60)
            assert a.status == "done", a.detail
            cmp = a.result
            n = cmp["overall"]["n"]
            assert n == sum(c["total"] for c in json.loads((run_dir / "iter-1" / "eval.done").read_text())
                            ["summaries"]["bfcl"]["per_category"].values()) > 0
            assert cmp["right_to_wrong"]["count"] == cmp["wrong_to_right"]["count"] == 0
            assert cmp["b"]["eval_id"] == fresh["eval_id"] and cmp["a"]["iteration"] == 1
            await con.close()
        run_async(main(), timeout=420)

        out = subprocess.run([sys.executable, "-m", "console.cli", "stop", "--core-id", CORE_ID],
                             capture_output=True, text=True, env=env, timeout=120)
        assert out.returncode == 0, out.stderr
        assert out.stdout.splitlines()[-1] == f"core {CORE_ID}: stopped"
        assert proc.wait(timeout=60) == 0
        tail = log.read_text()
        assert f"run {run_id}: finished" in tail, tail
        assert not (mine / "cores" / f"{CORE_ID}.json").exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
