"""The results store under bad content, bad files and concurrent use: core/store.py, core/store_format.py,
`looptool store check|rebuild` (core/store_check.py, core/store_rebuild.py), and the read-only CLI
commands reading a snapshot while a core holds the store.

The $LOOPTOOL_HOME of the check/rebuild tests is written by the engine's own writers (run.json and the
store's run / iteration / loop-eval records), the stages' done markers (mark_done) and real BFCL
scoring of response files (evals/bfcl_responses.py: summary.json), not by hand.
"""
from __future__ import annotations

import asyncio
import fcntl
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from core.errors import UserError
from core.store import ResultStore, StoreLocked

REPO = Path(__file__).resolve().parents[1]
TINY_RUN = REPO / "tests" / "data" / "tiny-run.toml"
RUN_ID = "tiny-20260101-000000"


def looptool(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "LOOPTOOL_HOME": str(home), "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "console.cli", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


def ok(p: subprocess.CompletedProcess) -> str:
    assert p.returncode == 0, (p.stdout, p.stderr)
    return p.stdout


def error_lines(p: subprocess.CompletedProcess) -> list[str]:
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert "Traceback" not in p.stderr, p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert lines and all(ln.startswith("error: ") for ln in lines), p.stderr
    return lines


def one_error_line(p: subprocess.CompletedProcess, *needles: str) -> str:
    lines = error_lines(p)
    assert len(lines) == 1, p.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def tables(path: Path) -> dict[str, list[dict]]:
    """The store file's tables as sorted lists of documents (doc ids are TinyDB's business)."""
    data = json.loads(path.read_text())
    return {t: sorted(docs.values(), key=lambda d: json.dumps(d, sort_keys=True)) for t, docs in data.items()
            if docs}


def nested(depth: int):
    value: object = "leaf"
    for _ in range(depth):
        value = [value]
    return value


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "looptool.db.json"


# -- content: any str, any accepted document, always flushes ------------------------------------------
def test_a_lone_surrogate_round_trips_through_flush_and_reopen(db: Path):
    odd = {"key": "core-1/\ud800", "id": "\ud800", "verb": "pause", "status": "rejected", "ts": 1.0,
           "detail": "caf\u00e9 \U0001f600 \udfff"}
    with ResultStore(db) as store:
        store.add_doc("audit", odd, key="key")
        store.flush()
        store.add_doc("runs", {"run_id": "r1", "state": "running"}, key="run_id")
        store.flush()  # a later flush still works
    assert db.read_bytes().isascii()
    with ResultStore(db) as store:
        assert store.get_docs("audit") == [odd]
        assert store.get_docs("runs") == [{"run_id": "r1", "state": "running"}]
    with ResultStore(db, read_only=True) as store:
        assert store.get_docs("audit", id="\ud800") == [odd]


def test_a_document_too_deep_to_flush_is_refused_when_added_and_the_store_goes_on(db: Path):
    with ResultStore(db) as store:
        with pytest.raises(ValueError, match="nested deeper"):
            store.add_doc("audit", {"key": "deep", "args": nested(990)}, key="key")  # encodes alone, not in the file
        store.add_doc("runs", {"run_id": "r1"}, key="run_id")
        store.flush()
        store.add_eval({"eval_id": "e-ok", "args": nested(150)})
    assert tables(db)["runs"] == [{"run_id": "r1"}]
    assert [e["eval_id"] for e in tables(db)["evals"]] == ["e-ok"]


# -- files: empty, wrongly shaped, the previous generation ---------------------------------------------
@pytest.mark.parametrize("content", [b"", b"  \n\t\n"], ids=["zero-bytes", "whitespace"])
def test_an_empty_store_is_refused_with_the_way_out_and_left_alone(tmp_path: Path, content: bytes):
    db = tmp_path / "looptool.db.json"
    db.write_bytes(content)
    for read_only in (False, True):
        with pytest.raises(UserError, match="empty") as exc:
            ResultStore(db, read_only=read_only)
        assert not isinstance(exc.value, StoreLocked)
        assert str(db) in str(exc.value) and "looptool store rebuild" in str(exc.value)
        assert "looptool.db.json.prev" in str(exc.value)
    one_error_line(looptool(tmp_path, "runs", "list"), str(db), "empty")
    assert db.read_bytes() == content


@pytest.mark.parametrize("data,where", [
    ({"evals": [1, 2]}, "evals: a table must be an object"),
    ({"runs": {"1": "a run"}}, "runs.1: a document must be an object, not a string"),
    ({"iterations": {"one": {"iteration": 1}}}, "iterations.one: a document id must be an integer"),
    ({"evals": {}, "audit": 7}, "audit: a table must be an object"),
])
def test_wrong_table_shapes_are_one_error_naming_the_file_and_key_path(tmp_path: Path, data: dict, where: str):
    db = tmp_path / "looptool.db.json"
    db.write_text(json.dumps(data))
    before = db.read_bytes()
    for read_only in (False, True):
        with pytest.raises(UserError) as exc:
            ResultStore(db, read_only=read_only)
        assert f"{db}: {where}" in str(exc.value)
    one_error_line(looptool(tmp_path, "eval", "list"), f"{db}: {where}")
    one_error_line(looptool(tmp_path, "runs", "list"), f"{db}: {where}")
    assert db.read_bytes() == before


def test_every_flush_keeps_the_previous_generation(db: Path):
    prev = db.with_name("looptool.db.json.prev")
    with ResultStore(db) as store:
        store.add_eval({"eval_id": "gen-1"})
        first = db.read_bytes()
        assert not prev.exists()  # nothing came before the first write
        store.add_eval({"eval_id": "gen-2"})
        assert prev.read_bytes() == first
        second = db.read_bytes()
        store.add_doc("runs", {"run_id": "r1"}, key="run_id")
        store.flush()
        assert prev.read_bytes() == second != db.read_bytes()
    names = sorted(p.name for p in db.parent.iterdir())
    assert names == ["looptool.db.json", "looptool.db.json.lock", "looptool.db.json.prev"]  # no temp files
    with ResultStore(prev, read_only=True) as older:  # a whole store, one generation back
        assert sorted(e["eval_id"] for e in older.list_evals()) == ["gen-1", "gen-2"]
        assert older.get_docs("runs") == []


# -- readers: a snapshot, no lock ----------------------------------------------------------------------
def test_a_read_only_store_is_a_snapshot_that_takes_no_lock_and_refuses_writes(db: Path):
    with ResultStore(db) as writer:
        writer.add_eval({"eval_id": "e-first"})
        reader = ResultStore(db, read_only=True)  # opens while the writer holds the lock
        writer.add_eval({"eval_id": "e-second"})
        assert [e["eval_id"] for e in reader.list_evals()] == ["e-first"]  # the file as it was at open
        with ResultStore(db, read_only=True) as later:
            assert {e["eval_id"] for e in later.list_evals()} == {"e-first", "e-second"}
        for write in (lambda: reader.add_eval({"eval_id": "x"}), lambda: reader.add_doc("runs", {"run_id": "x"}),
                      lambda: reader.update_eval("e-first", status="x"), reader.flush):
            with pytest.raises(RuntimeError, match="read-only"):
                write()
        reader.close()
    assert "x" not in db.read_text()


def test_read_commands_take_no_lock_and_work_in_a_read_only_directory(tmp_path: Path):
    home = tmp_path / "home"
    home.mkdir()
    db = home / "looptool.db.json"
    with ResultStore(db) as store:
        store.add_eval({"eval_id": "bfcl-ro", "benchmark": "bfcl-v3", "started_at": "2026-01-01T00:00:00",
                        "scores": {"overall": 0.5}})
    (home / "looptool.db.json.lock").unlink()
    db.chmod(0o444)
    home.chmod(0o555)  # (root ignores modes: the lock file staying absent is what shows no lock was taken)
    try:
        assert "bfcl-ro" in ok(looptool(home, "eval", "list"))
        assert ok(looptool(home, "runs", "list")) == ""
        assert sorted(p.name for p in home.iterdir()) == ["looptool.db.json"]
    finally:
        home.chmod(0o755)


def test_a_writer_that_cannot_open_the_lock_file_gets_one_error_naming_it(db: Path):
    db.write_text("{}")
    lock = db.with_name("looptool.db.json.lock")
    lock.mkdir()  # unopenable for writing, for root too
    with pytest.raises(UserError, match="cannot open the store's lock file") as exc:
        ResultStore(db)
    assert str(lock) in str(exc.value)
    with ResultStore(db, read_only=True) as reader:  # readers never touch it
        assert reader.list_evals() == []


# -- a $LOOPTOOL_HOME written as the engine and the eval runners write it ------------------------------
def _responses(home: Path, name: str, entries) -> Path:
    from evals.bfcl_truth import single_turn_text

    f = home / f"{name}.jsonl"
    f.write_text("".join(json.dumps({"id": e.id, "result": single_turn_text(e, "prompt")}) + "\n" for e in entries))
    return f


@pytest.fixture
def home(tmp_path: Path, monkeypatch) -> Path:
    """A run of tiny-run.toml (2 iterations) stopped in iteration 2 after its training: seed, eval 0,
    iteration 1 whole, iteration 2's train; plus a standalone `eval bfcl --responses` and one audit
    record. Returns $LOOPTOOL_HOME; its store is closed."""
    from core.config import parse
    from core.engine import Engine, iteration_stages
    from core.stages.base import mark_done
    from evals import bfcl_data
    from evals.bfcl_responses import score_file

    home = tmp_path / "home"
    monkeypatch.setenv("LOOPTOOL_HOME", str(home))
    cfg = parse(TINY_RUN.read_text(), str(TINY_RUN))
    entries = bfcl_data.select(["simple_python"], 4)
    with ResultStore() as store:
        engine = Engine(cfg, RUN_ID, store=store)
        asyncio.run(engine._record_run("running"))
        mark_done(engine.run_dir, "seed", {"pool": 40})
        for j, stages in ((0, ["eval"]), (1, iteration_stages(cfg, 1)), (2, ["train"])):
            (engine.run_dir / f"iter-{j}").mkdir()  # as StageContext.iter_dir makes it
            stats = {}
            for stage in stages:
                if stage == "eval":  # the bfcl plugin's run writes summary.json; the stage adds where it ran
                    summary = score_file(_responses(home, f"iter{j}", entries[j:j + 1]), progress=False)
                    summary.update(run_dir=str(engine.run_dir), iteration=j)  # as core/stages/eval.py's evaluate
                    data = {"iteration": j, "run_dir": str(engine.run_dir), "summaries": {"bfcl": summary},
                            "skipped": {}, "wall_s": 1.5}
                else:
                    data = {"stage": stage, "iteration": j, "count": 3 + j}
                mark_done(engine.run_dir / f"iter-{j}", stage, data)
                if stage == "eval":
                    asyncio.run(engine._store_eval_summaries(data))
                stats[stage] = data
            if j == 1:
                asyncio.run(engine._record_iteration(1, stats))
        engine._lock.close()
        score_file(_responses(home, "standalone", entries[3:4]), store=store, progress=False)
        store.add_doc("audit", {"key": "core-1/c1", "ts": 1.0, "verb": "pause", "status": "done",
                                "id": "c1\ud800"}, key="key")
        store.flush()
    (home / "runs" / "not-started").mkdir()  # a run directory whose core never got to run.json
    return home


def _store(home: Path) -> Path:
    return home / "looptool.db.json"


_HOLD_THE_STORE = textwrap.dedent("""
    import sys
    from core.store import ResultStore
    store = ResultStore()  # as `looptool core` does: open (and locked) for the whole run
    print("HOLDING", flush=True)
    sys.stdin.readline()
    store.close()
""")


class HeldStore:
    """A separate Python process holding the store open as a writer, until the context exits."""

    def __init__(self, home: Path):
        env = {**os.environ, "LOOPTOOL_HOME": str(home), "PYTHONPATH": str(REPO)}
        self.proc = subprocess.Popen([sys.executable, "-c", _HOLD_THE_STORE], cwd=REPO, env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lock = home / "looptool.db.json.lock"

    def __enter__(self) -> HeldStore:
        line = self.proc.stdout.readline()
        assert line.strip() == "HOLDING", (line, self.proc.stderr.read() if self.proc.poll() is not None else "")
        with open(self.lock) as fh:  # the writer really holds the lock
            with pytest.raises(BlockingIOError):
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return self

    def __exit__(self, *exc) -> None:
        self.proc.communicate("\n", timeout=60)
        assert self.proc.returncode == 0


def test_runs_show_and_eval_list_work_while_a_core_holds_the_run(home: Path):
    evals = {e.get("iteration"): e["eval_id"] for e in tables(_store(home))["evals"]}
    with HeldStore(home):
        shown = ok(looptool(home, "runs", "show", RUN_ID))
        assert RUN_ID in shown
        doc = json.loads(ok(looptool(home, "runs", "show", RUN_ID, "--json")))
        assert doc["run"]["state"] == "running" and [i["iteration"] for i in doc["iterations"]] == [1]
        assert [e["eval_id"] for e in doc["evals"]] == [evals[0], evals[1]]
        assert RUN_ID in ok(looptool(home, "runs", "list"))
        listed = json.loads(ok(looptool(home, "eval", "list", "--json")))
        assert {e["eval_id"] for e in listed} == set(evals.values())
        assert "simple_python" in ok(looptool(home, "eval", "show", evals[None]))
        assert "ok:" in ok(looptool(home, "store", "check"))


# -- store check ------------------------------------------------------------------------------------------
def test_store_check_passes_a_good_store_and_an_absent_one(home: Path, tmp_path: Path):
    out = ok(looptool(home, "store", "check"))
    assert out.startswith(f"ok: {_store(home)}: 3 evals, 1 runs, 1 iterations, 1 audit")
    assert "no store yet" in ok(looptool(tmp_path / "empty-home", "store", "check"))


def test_store_check_gives_one_line_per_problem_and_exit_2(home: Path):
    db = _store(home)
    data = json.loads(db.read_text())
    eval_ids = list(data["evals"])
    del data["evals"][eval_ids[0]]["eval_id"]
    data["evals"][eval_ids[1]]["scores"] = [0.5]
    run_id = next(iter(data["runs"]))
    data["runs"][run_id]["run_dir"] = str(home / "runs" / "gone")
    data["iterations"]["7"] = {"key": f"{RUN_ID}/1", "run_id": RUN_ID, "iteration": "1"}
    data["bogus"] = {}
    data["audit"]["x"] = {"key": "k"}
    db.write_text(json.dumps(data))
    lines = error_lines(looptool(home, "store", "check"))
    expected = [f"evals.{eval_ids[0]}.eval_id: missing", f"evals.{eval_ids[1]}.scores: expected an object",
                f"runs.{run_id}.run_dir: run directory {home / 'runs' / 'gone'} does not exist",
                "iterations.7.iteration: expected an integer, got a string",
                f"iterations.7.key: '{RUN_ID}/1' is also in iterations.1",
                "bogus: unknown table", "audit.x: a document id must be an integer"]
    assert len(lines) == len(expected), lines
    for want in expected:
        assert sum(ln.startswith(f"error: {db}: {want}") for ln in lines) == 1, (want, lines)


def test_store_check_reads_another_file_and_reports_an_unreadable_one_in_one_line(home: Path):
    prev = home / "looptool.db.json.prev"
    assert prev.exists()
    assert ok(looptool(home, "store", "check", "--file", str(prev))).startswith(f"ok: {prev}: ")
    broken = home / "broken.json"
    broken.write_text('{"evals": {"1": ')
    one_error_line(looptool(home, "store", "check", "--file", str(broken)), str(broken), "not valid JSON")


# -- store rebuild ------------------------------------------------------------------------------------------
def test_rebuild_reproduces_the_store_from_run_dirs_and_summaries(home: Path):
    db = _store(home)
    original, original_bytes = tables(db), db.read_bytes()
    # what the engine stored: the run, iteration 1 (iteration 2 has not ended), evals 0, 1 and the standalone one
    assert [r["run_id"] for r in original["runs"]] == [RUN_ID]
    assert [i["key"] for i in original["iterations"]] == [f"{RUN_ID}/1"]
    assert sorted(e.get("iteration", -1) for e in original["evals"]) == [-1, 0, 1]
    assert len(original["audit"]) == 1
    out = ok(looptool(home, "store", "rebuild"))
    assert tables(db) == original  # the audit table carried over from the readable old file
    assert "audit: carried over" in out and "not-started: no run.json" in out
    asides = sorted(home.glob("looptool.db.json.before-rebuild-*"))
    assert len(asides) == 1 and asides[0].read_bytes() == original_bytes
    assert f"the old store is kept at {asides[0]}" in out
    ok(looptool(home, "store", "rebuild"))  # a second rebuild keeps its own copy, never overwrites the first
    assert len(list(home.glob("looptool.db.json.before-rebuild-*"))) == 2
    assert asides[0].read_bytes() == original_bytes


def test_rebuild_is_the_way_out_of_an_empty_store(home: Path):
    db = _store(home)
    original = tables(db)
    db.write_bytes(b"")
    one_error_line(looptool(home, "runs", "list"), "empty", "looptool store rebuild")
    out = ok(looptool(home, "store", "rebuild"))
    assert "audit: starts empty" in out
    rebuilt = tables(db)
    assert rebuilt == {t: docs for t, docs in original.items() if t != "audit"}
    assert RUN_ID in ok(looptool(home, "runs", "list"))
    assert ok(looptool(home, "store", "check")).startswith("ok:")


def test_rebuild_is_refused_while_a_writer_holds_the_lock(home: Path):
    db = _store(home)
    before = db.read_bytes()
    with HeldStore(home):
        one_error_line(looptool(home, "store", "rebuild"), str(db), "in use by another looptool process")
    assert db.read_bytes() == before
    assert not list(home.glob("looptool.db.json.before-rebuild-*"))


def test_rebuild_names_an_unreadable_source_file_and_writes_nothing(home: Path):
    db = _store(home)
    before = db.read_bytes()
    run_json = home / "runs" / RUN_ID / "run.json"
    run_json.write_text('{"run_id": "tiny-2026')
    one_error_line(looptool(home, "store", "rebuild"), str(run_json), "cannot read it as JSON")
    run_json.write_text(json.dumps({"run_id": RUN_ID, "state": "running"}))
    one_error_line(looptool(home, "store", "rebuild"), f"{run_json}: run_dir: missing")
    assert db.read_bytes() == before
    assert not list(home.glob("looptool.db.json.before-rebuild-*"))
