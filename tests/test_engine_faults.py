"""A core that meets a fault it can survive pauses, says why, and goes on after `resume`, losing nothing:
a full disk inside a stage (a real ENOSPC from the kernel: /dev/full), a store write that fails with
ENOSPC, and a core SIGKILLed between a finished eval stage and its store write."""
from __future__ import annotations

import asyncio
import errno
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import core.store
from core.config import parse
from core.engine import Engine, run_dir_for
from core.store import ResultStore

ROOT = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent


def tiny_config(tmp_path: Path, iterations: int = 1):
    """tests/data/tiny-run.toml on a local model directory (no stage here loads it)."""
    model = tmp_path / "model"
    model.mkdir(exist_ok=True)
    (model / "config.json").write_text("{}")
    text = (TESTS / "data" / "tiny-run.toml").read_text()
    text = text.replace('name = "embedded"', f'name = "{model}"').replace("iterations = 2", f"iterations = {iterations}")
    return parse(text, "tiny-run.toml")


def real_summary(tmp_path: Path) -> dict:
    """A real BFCL summary, scored by the real checker from a two-line responses file (no model)."""
    from evals import bfcl_data
    from evals.bfcl_responses import score_file

    entries = bfcl_data.load_category("simple_python")[:2]
    f = tmp_path / "responses.jsonl"
    f.write_text("".join(json.dumps({"id": e.id, "result": "I cannot help."}) + "\n" for e in entries))
    return score_file(f, progress=False)


def comparable(store_path: Path) -> dict:
    """The store's tables without their wall-clock stamps and with the home folder named HOME."""
    data = json.loads(store_path.read_text().replace(json.dumps(str(store_path.parent))[1:-1], "HOME"))
    return {table: sorted((json.dumps({k: v for k, v in doc.items() if k != "updated_at"}, sort_keys=True)
                           for doc in docs.values()))
            for table, docs in data.items()}


def run(engine: Engine) -> str:
    return asyncio.run(asyncio.wait_for(engine.run(), 900))  # a guard against a hang, not a time limit


def test_a_full_disk_inside_a_stage_pauses_the_run_and_resume_runs_the_stage_again(tmp_path):
    cfg = tiny_config(tmp_path)

    def seed_only(run_id: str, full_disk: bool):
        engine = Engine(cfg, run_id)
        events = []
        d1 = engine.run_dir / "iter-1"
        if full_disk:  # the seed stage writes D_1 through this temp file: every write to it fails with ENOSPC
            d1.mkdir(parents=True)
            (d1 / "dataset.jsonl.tmp").symlink_to("/dev/full")

        def on(kind, data):
            if kind != "event":
                return
            events.append(data)
            if data["event"] == "fault":  # the operator frees space, then resumes
                (d1 / "dataset.jsonl.tmp").unlink()
                assert engine.state["state"] == "paused" and engine.resume()
            if data["event"] == "stage_finished" and data["stage"] == "seed":
                engine.stop()

        engine.subscribe(on)
        assert run(engine) == "stopped"
        return engine, events

    faulted, events = seed_only("faults-seed-full", full_disk=True)
    faults = [e for e in events if e["event"] == "fault"]
    assert len(faults) == 1 and "No space left on device" in faults[0]["message"]
    assert faults[0]["where"] == "stage seed (iteration 1)"
    assert not [e for e in events if e["event"] == "error"]
    clean, _ = seed_only("faults-seed-clean", full_disk=False)
    for name in ("pool.jsonl", "iter-1/dataset.jsonl"):
        assert (faulted.run_dir / name).read_bytes() == (clean.run_dir / name).read_bytes()
    assert json.loads((faulted.run_dir / "run.json").read_text())["state"] == "stopped"


def test_a_store_write_failing_with_enospc_pauses_and_the_final_store_equals_an_uninterrupted_runs(
        tmp_path, monkeypatch):
    from tests.fault_workers import stage_stand_in

    summary = real_summary(tmp_path)
    cfg = tiny_config(tmp_path, iterations=2)
    writes = {"full": False, "refused": 0}
    real_write = core.store.AtomicJSONStorage.write

    def write(self, data):  # fault injection: the disk is full while writes["full"]
        if writes["full"]:
            writes["refused"] += 1
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.path))
        return real_write(self, data)

    monkeypatch.setattr(core.store.AtomicJSONStorage, "write", write)

    def whole_run(home: Path, fault: bool) -> tuple[dict, list]:
        monkeypatch.setenv("LOOPTOOL_HOME", str(home))
        run_dir_for("faults-store").mkdir(parents=True)
        (run_dir_for("faults-store") / "summary-for-stand-in.json").write_text(json.dumps(summary))
        store = ResultStore(home / "looptool.db.json")
        engine = Engine(cfg, "faults-store", store=store)
        engine.stage_target = stage_stand_in
        events = []

        def on(kind, data):
            if kind != "event":
                return
            events.append(data)
            if fault and data["event"] == "stage_finished" and data["stage"] == "eval" and data["iteration"] == 1:
                writes["full"] = True  # the disk fills up just before the engine stores iteration 1's eval
            if data["event"] == "fault":
                asyncio.get_running_loop().call_later(0.5, clear_and_resume)

        def clear_and_resume():
            assert engine.state["state"] == "paused"
            writes["full"] = False
            engine.resume()

        engine.subscribe(on)
        assert run(engine) == "finished"
        store.close()
        return comparable(home / "looptool.db.json"), events

    faulted, events = whole_run(tmp_path / "a", fault=True)
    clean, _ = whole_run(tmp_path / "b", fault=False)
    faults = [e for e in events if e["event"] == "fault"]
    assert writes["refused"] >= 1 and len(faults) == 1
    assert "No space left on device" in faults[0]["message"] and "eval summary" in faults[0]["where"]
    assert faulted == clean
    assert len(faulted["evals"]) == 3  # base, iteration 1, iteration 2


KILLED_CORE = textwrap.dedent("""
    import asyncio, os, signal, sys
    sys.path[:0] = [{tests!r}, {root!r}]
    import core.store
    from core.config import parse
    from core.engine import Engine
    from core.store import ResultStore
    from fault_workers import stage_stand_in


    async def killed(self, summary):  # the core dies between the eval stage's eval.done and the store write
        os.kill(os.getpid(), signal.SIGKILL)


    if __name__ == "__main__":  # (spawned workers import this file again)
        if sys.argv[1] == "kill":
            core.store.ResultStore.aadd_eval = killed
        engine = Engine(parse(open(sys.argv[2]).read(), "run config"), "faults-kill",
                        store=ResultStore(core.store.paths.home() / "looptool.db.json"))
        engine.stage_target = stage_stand_in
        print(asyncio.run(engine.run()))
""")


def test_a_core_killed_between_eval_done_and_the_store_write_stores_the_summary_once_on_resume(tmp_path):
    summary = real_summary(tmp_path)
    home = tmp_path / "home"
    env = {**os.environ, "LOOPTOOL_HOME": str(home), "PYTHONPATH": str(ROOT)}
    run_dir = home / "runs" / "faults-kill"
    run_dir.mkdir(parents=True)
    (run_dir / "summary-for-stand-in.json").write_text(json.dumps(summary))
    config = tmp_path / "run.toml"
    config.write_text(tiny_config(tmp_path).text)
    script = tmp_path / "core_process.py"
    script.write_text(KILLED_CORE.format(tests=str(TESTS), root=str(ROOT)))

    def core_process(mode: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(script), mode, str(config)], env=env, capture_output=True,
                              text=True, timeout=900)

    killed = core_process("kill")
    assert killed.returncode == -9, killed.stderr
    assert (run_dir / "iter-0" / "eval.done").exists()
    store_file = home / "looptool.db.json"
    stored = json.loads(store_file.read_text()) if store_file.exists() else {}
    assert not stored.get("evals")  # the kill came before the summary reached the store
    for _ in range(2):  # resume, and resume a finished run again: the summary is there exactly once
        resumed = core_process("resume")
        assert resumed.returncode == 0 and resumed.stdout.strip() == "finished", resumed.stderr
        evals = list(json.loads(store_file.read_text())["evals"].values())
        assert sorted(e["eval_id"] for e in evals) == sorted({f"{summary['eval_id']}-it0", f"{summary['eval_id']}-it1"})


@pytest.mark.parametrize("content", [b"", b"{\"steps\": 3", b"\x00\x00\x00\x00"])
def test_an_empty_or_torn_done_marker_counts_as_not_done(tmp_path, content):
    from core.stages.base import is_done, mark_done

    (tmp_path / "train.done").write_bytes(content)
    assert is_done(tmp_path, "train") is None
    mark_done(tmp_path, "train", {"steps": 3})
    assert is_done(tmp_path, "train") == {"steps": 3}
    assert not list(tmp_path.glob("*.tmp"))
