"""The results store: one TinyDB JSON file ($LOOPTOOL_HOME/looptool.db.json) behind one owner.

* Single owner: every TinyDB call, reads included, runs on one dedicated thread (a 1-worker
  ThreadPoolExecutor); sync methods block on its future, `a`-prefixed mirrors await it via
  run_in_executor, so an asyncio core never blocks its loop.
* Atomic + cached: CachingMiddleware holds the DB in memory; AtomicJSONStorage writes it whole to
  a temp file beside the target, fsyncs, os.replace()s. We flush at the meaningful points
  (add_eval, update_eval, close, flush()). A corrupt file is reported, never overwritten.
* Not process-safe: an exclusive non-blocking flock on a sibling `.lock` file -> StoreLocked.
"""
from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import json
import os
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

from tinydb import Query, TinyDB
from tinydb.middlewares import CachingMiddleware
from tinydb.storages import Storage

from core import paths
from core.errors import UserError

TABLES = ("evals", "runs", "iterations", "audit")
MIN_PREFIX = 4


class StoreLocked(UserError):
    """Another process has the results store open."""


class AtomicJSONStorage(Storage):
    """JSON storage that replaces the file atomically (temp file + fsync + os.replace)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def read(self) -> dict | None:
        try:
            text = self.path.read_text(encoding="utf-8")
            data = json.loads(text) if text.strip() else None
        except FileNotFoundError:
            return None
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise UserError(f"{self.path}: not valid JSON ({e}); fix or move it aside, "
                            "looptool will not overwrite it") from None
        if data is not None and not isinstance(data, dict):
            raise UserError(f"{self.path}: not valid JSON for a looptool store (top level is a "
                            f"{type(data).__name__}, not an object); looptool will not overwrite it")
        return data

    def write(self, data: dict) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f, ensure_ascii=False)
                f.flush()
                os.fsync(f.fileno())
            if self.path.exists():  # keep the file's mode (mkstemp creates 0600)
                os.chmod(tmp, self.path.stat().st_mode & 0o777)
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        dfd = os.open(self.path.parent, os.O_RDONLY)  # make the rename itself durable
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


class _Caching(CachingMiddleware):
    WRITE_CACHE_SIZE = 1000  # a backstop only; ResultStore flushes at the meaningful points


def _owner_thread(impl: Callable) -> Callable:
    """Method decorator: the body runs on the store's owner thread; the caller blocks on it."""
    @functools.wraps(impl)
    def method(self, *args, **kwargs):
        return self._call(impl, self, *args, **kwargs)
    return method


def _async_mirror(method: Callable) -> Callable:
    """`aNAME` for a sync `NAME`: same body, awaited on the same owner thread via run_in_executor."""
    impl = method.__wrapped__

    @functools.wraps(impl)
    async def amethod(self, *args, **kwargs):
        return await self._acall(impl, self, *args, **kwargs)
    amethod.__name__ = "a" + impl.__name__
    amethod.__qualname__ = impl.__qualname__.rsplit(".", 1)[0] + "." + amethod.__name__
    return amethod


def _plain(obj: Any) -> Any:
    """A deep, plain-JSON copy (validates JSON-ability; detaches from tinydb's cache)."""
    return json.loads(json.dumps(obj))


class ResultStore:
    """The results store. Sync methods block; `a`-prefixed mirrors are awaitable."""

    def __init__(self, path: Path | None = None):
        self.path = Path(path) if path is not None else paths.store_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self._lock_fd = self._acquire_lock()
        self._closed = False
        self._close_lock = threading.Lock()
        self._owner_thread_id: int | None = None
        self._seen_threads: set[int] = set()  # idents that ran TinyDB calls (test hook)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="looptool-store")
        try:
            self._db: TinyDB = self._executor.submit(self._open).result()
        except BaseException:
            self._executor.shutdown(wait=True)
            self._release_lock()
            raise

    # -- lifecycle ---------------------------------------------------------------------------
    def _acquire_lock(self) -> int:
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreLocked(f"{self.path}: the results store is in use by another looptool process "
                              f"(lock {self.lock_path.name} is held); close it and retry") from None
        return fd

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def _open(self) -> TinyDB:
        self._owner_thread_id = threading.get_ident()
        self._seen_threads.add(self._owner_thread_id)
        db = TinyDB(self.path, storage=_Caching(AtomicJSONStorage))
        db.storage.read()  # read now so a corrupt file fails at open, not on first use
        return db

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _begin_close(self) -> bool:
        with self._close_lock:
            first, self._closed = not self._closed, True
        return first

    def close(self) -> None:
        """Flush and close; idempotent."""
        if self._begin_close():
            try:
                self._executor.submit(self._owned(self._db.close)).result()
            finally:
                self._executor.shutdown(wait=True)
                self._release_lock()

    async def aclose(self) -> None:
        if self._begin_close():
            try:
                loop = asyncio.get_running_loop()
                await loop.run_in_executor(self._executor, self._owned(self._db.close))
            finally:
                self._executor.shutdown(wait=False)  # queue is empty; the thread just exits
                self._release_lock()

    # -- dispatch to the owner thread --------------------------------------------------------
    def _owned(self, fn: Callable, *args, **kwargs) -> Callable[[], Any]:
        def job():
            self._seen_threads.add(threading.get_ident())
            return fn(*args, **kwargs)
        return job

    def _call(self, fn: Callable, *args, **kwargs) -> Any:
        if self._closed:
            raise RuntimeError(f"ResultStore({self.path}) is closed")
        if threading.get_ident() == self._owner_thread_id:  # already on the owner: no deadlock
            return fn(*args, **kwargs)
        return self._executor.submit(self._owned(fn, *args, **kwargs)).result()

    async def _acall(self, fn: Callable, *args, **kwargs) -> Any:
        if self._closed:
            raise RuntimeError(f"ResultStore({self.path}) is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._owned(fn, *args, **kwargs))

    def _table(self, name: str):  # owner thread only
        if name not in TABLES:
            raise ValueError(f"unknown table {name!r}; expected one of {', '.join(TABLES)}")
        return self._db.table(name)

    # -- API: each body runs on the owner thread; a-prefixed async mirrors follow ---------------
    @_owner_thread
    def add_eval(self, summary: dict) -> str:
        """Upsert an eval summary by its "eval_id" (fields merge into an existing one); flushes."""
        eval_id = summary.get("eval_id") if isinstance(summary, dict) else None
        if not isinstance(eval_id, str) or not eval_id:
            raise ValueError("add_eval: summary must be a dict with a non-empty str 'eval_id'")
        self._table("evals").upsert(_plain(summary), Query().eval_id == eval_id)
        self._db.storage.flush()
        return eval_id

    @_owner_thread
    def get_eval(self, eval_id: str) -> dict | None:
        """By exact id, or by a unique prefix of >= 4 chars; an ambiguous prefix is a UserError."""
        table = self._table("evals")
        exact = table.get(Query().eval_id == eval_id)
        if exact is not None:
            return _plain(exact)
        if len(eval_id) < MIN_PREFIX:
            return None
        hits = [d for d in table.all() if str(d.get("eval_id", "")).startswith(eval_id)]
        if len(hits) > 1:
            ids = sorted(str(d["eval_id"]) for d in hits)
            shown = ", ".join(ids[:5]) + (", ..." if len(ids) > 5 else "")
            raise UserError(f"eval id prefix {eval_id!r} is ambiguous in {self.path}: "
                            f"matches {len(ids)} evals ({shown})")
        return _plain(hits[0]) if hits else None

    @_owner_thread
    def list_evals(self, limit: int | None = None, benchmark: str | None = None) -> list[dict]:
        """Eval summaries, newest first by "started_at" (those without one last)."""
        docs = self._table("evals").all()
        if benchmark is not None:
            docs = [d for d in docs if d.get("benchmark") == benchmark]
        docs.sort(key=lambda d: str(d.get("started_at") or ""), reverse=True)
        return _plain(docs if limit is None else docs[:max(limit, 0)])

    @_owner_thread
    def update_eval(self, eval_id: str, **fields) -> None:
        """Set fields on an existing eval (UserError if absent); flushes (this is how it finishes)."""
        if fields.get("eval_id", eval_id) != eval_id:
            raise ValueError("update_eval: cannot change eval_id")
        if not self._table("evals").update(_plain(fields), Query().eval_id == eval_id):
            raise UserError(f"no eval with id {eval_id!r} in {self.path}")
        self._db.storage.flush()

    @_owner_thread
    def add_doc(self, table: str, doc: dict, key: str | None = None) -> None:
        """Insert into one of TABLES, or upsert by doc[key] when key is given. Not flushed."""
        t, doc = self._table(table), _plain(doc)
        if key is None:
            t.insert(doc)
        elif key not in doc:
            raise ValueError(f"add_doc: document for {table!r} has no key field {key!r}")
        else:
            t.upsert(doc, Query()[key] == doc[key])

    @_owner_thread
    def get_docs(self, table: str, **match) -> list[dict]:
        """All docs in table whose fields equal the given values (all docs if none given)."""
        t = self._table(table)
        return _plain(t.search(Query().fragment(match)) if match else t.all())

    @_owner_thread
    def flush(self) -> None:
        """Write the in-memory cache to disk (atomically)."""
        self._db.storage.flush()

    aadd_eval = _async_mirror(add_eval)
    aget_eval = _async_mirror(get_eval)
    alist_evals = _async_mirror(list_evals)
    aupdate_eval = _async_mirror(update_eval)
    aadd_doc = _async_mirror(add_doc)
    aget_docs = _async_mirror(get_docs)
    aflush = _async_mirror(flush)
