"""The results store: one TinyDB JSON file ($LOOPTOOL_HOME/looptool.db.json) behind one owner.

* Single owner: every TinyDB call, reads included, runs on one dedicated thread (a 1-worker
  ThreadPoolExecutor); sync methods block on its future, `a`-prefixed mirrors await it via
  run_in_executor, so an asyncio core never blocks its loop.
* Atomic + cached: CachingMiddleware holds the DB in memory; AtomicJSONStorage writes it whole to
  a temp file beside the target, fsyncs, os.replace()s, after keeping the file it replaces as
  `looptool.db.json.prev` (itself put in place by os.replace). We flush at the meaningful points
  (add_eval, update_eval, close, flush()). The file format and its checks are core/store_format.py:
  a corrupt, empty or wrongly shaped file is reported, never overwritten.
* Writers are not process-safe: an exclusive non-blocking flock on a sibling `.lock` file ->
  StoreLocked. Readers (`ResultStore(read_only=True)`, every read-only CLI command) take no lock and
  write nothing: they read the file once, a whole snapshot because writers only ever replace it, so a
  running core never blocks them and a read-only directory or lock file does not either.
"""
from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import json
import os
import shutil
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
from core.store_format import TABLES, check_nesting, dumps, previous_path, read_store_file

MIN_PREFIX = 4


class StoreLocked(UserError):
    """Another process has the results store open."""


class AtomicJSONStorage(Storage):
    """JSON storage that replaces the file atomically (temp file + fsync + os.replace), keeping the
    generation it replaces as `<name>.prev`."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def read(self) -> dict:
        return read_store_file(self.path) or {}  # {} when there is no file yet: a fixed snapshot

    def write(self, data: dict) -> None:
        text = dumps(data)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="ascii") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            if self.path.exists():  # keep the file's mode (mkstemp creates 0600)
                os.chmod(tmp, self.path.stat().st_mode & 0o777)
            self._keep_previous()
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        dfd = os.open(self.path.parent, os.O_RDONLY)  # make the renames themselves durable
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    def _keep_previous(self) -> None:
        """The current file becomes `.prev`: a hard link (no copy, the old bytes stay where they are)
        renamed over the last `.prev`, so `.prev` is always one whole generation. Writers hold the
        lock, so the fixed temp name is theirs alone."""
        staged = self.path.with_name(f".{previous_path(self.path).name}.tmp")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(staged)
        try:
            os.link(self.path, staged)
        except FileNotFoundError:
            return  # the first write: there is no previous generation
        except OSError:  # a filesystem without hard links
            shutil.copyfile(self.path, staged)
        os.replace(staged, previous_path(self.path))


def writer_lock_path(store: Path) -> Path:
    return store.with_name(store.name + ".lock")


def hold_writer_lock(store: Path) -> int:
    """The writers' exclusive flock on `<store>.lock` (its fd); StoreLocked while another process has
    it, UserError when the lock file cannot be opened for writing."""
    lock_path = writer_lock_path(store)
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise UserError(f"{lock_path}: cannot open the store's lock file for writing ({e.strerror}); "
                        "commands that only read the store work without it") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StoreLocked(f"{store}: the results store is in use by another looptool process "
                          f"(lock {lock_path.name} is held); close it and retry") from None
    return fd


def release_writer_lock(fd: int) -> None:
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


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
    """A deep, plain-JSON copy (validates JSON-ability with the file's own encoding, so what is
    accepted here always flushes; detaches from tinydb's cache)."""
    check_nesting(obj)
    return json.loads(dumps(obj))


class ResultStore:
    """The results store. Sync methods block; `a`-prefixed mirrors are awaitable.

    read_only: no lock, no writes (the write methods raise RuntimeError); the file as it was at open."""

    def __init__(self, path: Path | None = None, read_only: bool = False):
        self.path = Path(path) if path is not None else paths.store_path()
        self.read_only = read_only
        self.lock_path = writer_lock_path(self.path)
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_fd = None if read_only else hold_writer_lock(self.path)
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
    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            release_writer_lock(self._lock_fd)
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

    def _writable(self) -> None:
        if self.read_only:
            raise RuntimeError(f"ResultStore({self.path}) is open read-only")

    def _table(self, name: str):  # owner thread only
        if name not in TABLES:
            raise ValueError(f"unknown table {name!r}; expected one of {', '.join(TABLES)}")
        return self._db.table(name)

    # -- API: each body runs on the owner thread; a-prefixed async mirrors follow ---------------
    @_owner_thread
    def add_eval(self, summary: dict) -> str:
        """Upsert an eval summary by its "eval_id" (fields merge into an existing one); flushes."""
        self._writable()
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
        self._writable()
        if fields.get("eval_id", eval_id) != eval_id:
            raise ValueError("update_eval: cannot change eval_id")
        if not self._table("evals").update(_plain(fields), Query().eval_id == eval_id):
            raise UserError(f"no eval with id {eval_id!r} in {self.path}")
        self._db.storage.flush()

    @_owner_thread
    def add_doc(self, table: str, doc: dict, key: str | None = None) -> None:
        """Insert into one of TABLES, or upsert by doc[key] when key is given. Not flushed."""
        self._writable()
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
        self._writable()
        self._db.storage.flush()

    aadd_eval = _async_mirror(add_eval)
    aget_eval = _async_mirror(get_eval)
    alist_evals = _async_mirror(list_evals)
    aupdate_eval = _async_mirror(update_eval)
    aadd_doc = _async_mirror(add_doc)
    aget_docs = _async_mirror(get_docs)
    aflush = _async_mirror(flush)
