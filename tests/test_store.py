"""core/store.py against real tinydb on tmp_path: API, durability, locking, thread ownership."""
from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from core.errors import UserError
from core.store import ResultStore, StoreLocked

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "store" / "looptool.db.json"  # parent does not exist yet: the store creates it


@pytest.fixture
def store(db_path: Path):
    with ResultStore(db_path) as s:
        yield s


def _summary(eval_id: str, started_at: str, benchmark: str = "bfcl", **extra) -> dict:
    return {"eval_id": eval_id, "started_at": started_at, "benchmark": benchmark, **extra}


# -- API round trips ----------------------------------------------------------------------------
def test_add_get_list_update_round_trip(store: ResultStore):
    assert store.add_eval(_summary("e1-aaaa", "2025-01-01T00:00:00", scores={"acc": 0.5})) == "e1-aaaa"
    assert store.get_eval("e1-aaaa") == _summary("e1-aaaa", "2025-01-01T00:00:00", scores={"acc": 0.5})
    store.update_eval("e1-aaaa", status="done", scores={"acc": 0.75})
    got = store.get_eval("e1-aaaa")
    assert got["status"] == "done" and got["scores"] == {"acc": 0.75}
    assert [e["eval_id"] for e in store.list_evals()] == ["e1-aaaa"]
    assert store.get_eval("nope-nope") is None
    with pytest.raises(UserError, match="no eval"):
        store.update_eval("missing", status="done")


def test_add_eval_upserts_by_eval_id(store: ResultStore):
    store.add_eval(_summary("same-id", "2025-01-01", status="running"))
    store.add_eval({"eval_id": "same-id", "status": "done"})
    assert len(store.list_evals()) == 1
    assert store.get_eval("same-id") == _summary("same-id", "2025-01-01", status="done")
    with pytest.raises(ValueError):
        store.add_eval({"no_id": 1})


def test_prefix_lookup_and_ambiguity(store: ResultStore):
    store.add_eval(_summary("abcd1234", "2025-01-01"))
    store.add_eval(_summary("abcd5678", "2025-01-02"))
    store.add_eval(_summary("ffff0000", "2025-01-03"))
    assert store.get_eval("ffff")["eval_id"] == "ffff0000"
    assert store.get_eval("abcd12")["eval_id"] == "abcd1234"
    assert store.get_eval("fff") is None  # shorter than 4 chars: exact match only
    with pytest.raises(UserError, match="ambiguous") as exc:
        store.get_eval("abcd")
    assert "abcd1234" in str(exc.value) and "abcd5678" in str(exc.value)


def test_list_evals_newest_first_limit_and_benchmark(store: ResultStore):
    for eid, ts, bench in [("e-mid", "2025-02-01T10:00:00", "bfcl"), ("e-old", "2024-12-31T23:59:59", "ace"),
                           ("e-new", "2025-03-01T00:00:00", "bfcl")]:
        store.add_eval(_summary(eid, ts, bench))
    assert [e["eval_id"] for e in store.list_evals()] == ["e-new", "e-mid", "e-old"]
    assert [e["eval_id"] for e in store.list_evals(limit=2)] == ["e-new", "e-mid"]
    assert [e["eval_id"] for e in store.list_evals(benchmark="bfcl")] == ["e-new", "e-mid"]
    assert [e["eval_id"] for e in store.list_evals(benchmark="ace")] == ["e-old"]


def test_generic_docs_upsert_match_and_copies(store: ResultStore):
    store.add_doc("runs", {"run_id": "r1", "status": "running", "tags": ["a"]}, key="run_id")
    store.add_doc("runs", {"run_id": "r1", "status": "done"}, key="run_id")
    store.add_doc("runs", {"run_id": "r2", "status": "done"}, key="run_id")
    store.add_doc("audit", {"event": "x"})
    store.add_doc("audit", {"event": "x"})  # no key: plain insert
    assert store.get_docs("runs", run_id="r1") == [{"run_id": "r1", "status": "done", "tags": ["a"]}]
    assert len(store.get_docs("runs", status="done")) == 2
    assert len(store.get_docs("audit")) == 2
    assert store.get_docs("iterations") == []
    # returned docs are plain copies: mutating them does not touch the store
    doc = store.get_docs("runs", run_id="r1")[0]
    assert type(doc) is dict
    doc["tags"].append("mutated")
    assert store.get_docs("runs", run_id="r1")[0]["tags"] == ["a"]
    with pytest.raises(ValueError, match="unknown table"):
        store.add_doc("nope", {})
    with pytest.raises(TypeError):
        store.add_doc("audit", {"bad": object()})


def test_default_path_from_looptool_home(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("LOOPTOOL_HOME", str(tmp_path / "home"))
    with ResultStore() as s:
        assert s.path == tmp_path / "home" / "looptool.db.json"
        s.add_eval(_summary("home-eval", "2025-01-01"))
    assert json.loads(s.path.read_text())["evals"]


def test_closed_store_refuses_calls(db_path: Path):
    s = ResultStore(db_path)
    s.close()
    s.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        s.get_docs("runs")


# -- durability -----------------------------------------------------------------------------------
def test_data_survives_close_and_reopen(db_path: Path):
    with ResultStore(db_path) as s:
        s.add_eval(_summary("persist-1", "2025-01-01"))
        s.add_doc("iterations", {"it": 1, "loss": 0.5})
    with ResultStore(db_path) as s:
        assert s.get_eval("persist-1")["started_at"] == "2025-01-01"
        assert s.get_docs("iterations", it=1) == [{"it": 1, "loss": 0.5}]


def test_flush_makes_cached_docs_visible_on_disk(store: ResultStore, db_path: Path):
    store.add_eval(_summary("flushed", "2025-01-01"))  # add_eval flushes by itself
    assert json.loads(db_path.read_text())["evals"]
    store.add_doc("runs", {"run_id": "cached"})  # add_doc is only cached ...
    assert "runs" not in json.loads(db_path.read_text())
    store.flush()  # ... until an explicit flush
    assert list(json.loads(db_path.read_text())["runs"].values()) == [{"run_id": "cached"}]


def test_flush_is_atomic_and_leaves_no_temp_files(store: ResultStore, db_path: Path):
    for i in range(20):
        store.add_doc("audit", {"i": i, "text": "x" * i})
        store.flush()
        json.loads(db_path.read_text())  # always a whole, valid JSON file
    names = sorted(p.name for p in db_path.parent.iterdir())
    assert names == ["looptool.db.json", "looptool.db.json.lock", "looptool.db.json.prev"]


def test_corrupt_file_is_reported_and_left_alone(db_path: Path):
    db_path.parent.mkdir(parents=True)
    db_path.write_text('{"evals": {"1": {"eval_id": ')
    before = db_path.read_bytes()
    for _ in range(2):  # the second try gets the same error, not StoreLocked: the lock was released
        with pytest.raises(UserError, match="not valid JSON") as exc:
            ResultStore(db_path)
        assert not isinstance(exc.value, StoreLocked)
        assert str(db_path) in str(exc.value)
    assert db_path.read_bytes() == before


# -- process lock ---------------------------------------------------------------------------------
_CHILD = textwrap.dedent("""
    import sys
    from pathlib import Path
    from core.store import ResultStore, StoreLocked
    try:
        ResultStore(Path(sys.argv[1])).close()
    except StoreLocked as e:
        print("LOCKED " + str(e))
        sys.exit(3)
    print("OPENED")
""")


def _open_in_child(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _CHILD, str(path)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def test_second_process_gets_store_locked(db_path: Path):
    with ResultStore(db_path):
        child = _open_in_child(db_path)
        assert child.returncode == 3, child.stderr
        assert child.stdout.startswith("LOCKED ") and str(db_path) in child.stdout
    child = _open_in_child(db_path)  # released on close
    assert child.returncode == 0 and child.stdout.strip() == "OPENED", child.stderr


# -- single owner thread --------------------------------------------------------------------------
def test_all_tinydb_calls_run_on_one_owner_thread(store: ResultStore):
    n_threads, per_thread = 8, 50
    barrier = threading.Barrier(n_threads)
    errors: list[BaseException] = []

    def worker(t: int) -> None:
        try:
            barrier.wait()
            for i in range(per_thread):
                store.add_doc("audit", {"thread": t, "i": i})
        except BaseException as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(n_threads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    assert len(store.get_docs("audit")) == n_threads * per_thread == 400
    assert len(store.get_docs("audit", thread=3)) == per_thread
    owner = store._owner_thread_id
    assert owner is not None and owner != threading.get_ident()
    assert store._seen_threads == {owner}
    assert all(th.ident != owner for th in threads)


def test_async_api_does_not_block_the_loop(db_path: Path):
    async def main() -> tuple[int, int, ResultStore]:
        store = ResultStore(db_path)
        ticks, stop = 0, asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not stop.is_set():
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        for i in range(200):  # sequential awaits: the ticker only runs if each call yields the loop
            await store.aadd_doc("iterations", {"i": i})
        ticks_during = ticks
        stop.set()
        await task
        assert await store.aadd_eval(_summary("async-e1", "2025-05-05")) == "async-e1"
        await store.aupdate_eval("async-e1", status="done")
        assert (await store.aget_eval("asyn"))["status"] == "done"
        assert [e["eval_id"] for e in await store.alist_evals(benchmark="bfcl")] == ["async-e1"]
        n = len(await store.aget_docs("iterations"))
        assert await store.aget_docs("iterations", i=199) == [{"i": 199}]
        await store.aflush()
        await store.aclose()
        await store.aclose()  # idempotent
        return ticks_during, n, store

    ticks_during, n, store = asyncio.run(main())
    assert ticks_during > 0
    assert n == 200
    assert store._seen_threads == {store._owner_thread_id}
    on_disk = json.loads(db_path.read_text())
    assert len(on_disk["iterations"]) == 200 and on_disk["evals"]["1"]["status"] == "done"
