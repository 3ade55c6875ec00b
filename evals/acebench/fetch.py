"""Getting and checking the English ACEBench data (the 34 JSON Lines files at the pinned commit).

* :func:`verify` checks a directory against ``checksums.json`` (sha256 of every file, kept in the
  project); used for ``--data-dir`` copies and for the cache.
* :func:`download` fetches the files with httpx from GitHub's raw host (or any base URL serving the
  upstream layout, e.g. a local mirror), checks each file's sha256 before it is written, and writes it
  atomically (temporary file + rename), so a partial or corrupted download never looks complete.
  A server that cannot be reached (within ``connect_timeout`` when nothing answers) or that refuses
  raises :class:`DataUnavailable`; the loop's eval stage then skips ACEBench (evals/acebench/loop.py).

    python -m evals.acebench.fetch [TARGET]   download into TARGET (default: the cache) and verify
"""
from __future__ import annotations

import hashlib
import json
import os
from functools import lru_cache
from pathlib import Path

from core import paths
from core.errors import UserError

CHECKSUMS = Path(__file__).with_name("checksums.json")
RAW_BASE = "https://raw.githubusercontent.com"
URL_ENV = "LOOPTOOL_ACEBENCH_URL"  # optional mirror: <base>/<upstream_dir>/<file>


class DataUnavailable(UserError):
    """The data cannot be had: no complete copy and the download could not reach its server (offline,
    firewalled) or was refused. ``reason`` is the cause alone, without the advice on what to do.
    An altered file (sha256 mismatch) is a different, louder failure: a plain UserError."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


@lru_cache(maxsize=1)
def manifest() -> dict:
    return json.loads(CHECKSUMS.read_text())


def commit() -> str:
    return manifest()["commit"]


def default_dir() -> Path:
    """Where the download goes: $LOOPTOOL_HOME/acebench/<commit[:12]>/data_en."""
    return paths.home() / "acebench" / commit()[:12] / "data_en"


def default_base_url() -> str:
    m = manifest()
    return os.environ.get(URL_ENV) or f"{RAW_BASE}/{m['repo']}/{m['commit']}"


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def problems(root: Path) -> list[str]:
    """What is wrong with a data directory (missing or altered files); [] when it is complete."""
    out = []
    for rel, meta in manifest()["files"].items():
        p = root / rel
        if not p.is_file():
            out.append(f"{p}: missing")
        elif sha256_file(p) != meta["sha256"]:
            out.append(f"{p}: sha256 differs from ACEBench at commit {commit()[:12]} (file altered or another version)")
    return out


_verified: set[str] = set()


def verify(root: Path) -> None:
    """UserError naming the first bad file unless ``root`` holds exactly the pinned data."""
    key = str(root.resolve())
    if key in _verified:
        return
    if not root.is_dir():
        raise UserError(f"--data-dir {root}: no such directory (expected ACEBench's data_en folder)")
    bad = problems(root)
    if bad:
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise UserError(f"ACEBench data in {root}: {bad[0]}{more}")
    _verified.add(key)


def download(target: Path | None = None, base_url: str | None = None, timeout: float = 60.0,
             progress=None, connect_timeout: float = 10.0) -> Path:
    """Fetch every file that is missing or wrong into ``target`` (default: :func:`default_dir`).

    Raises DataUnavailable when the server cannot be reached (``connect_timeout`` bounds each connection
    attempt, so a firewalled machine fails in seconds, not minutes) or answers other than 200."""
    import httpx

    target = target or default_dir()
    base = (base_url or default_base_url()).rstrip("/")
    m = manifest()
    limits = httpx.Timeout(timeout, connect=min(timeout, connect_timeout))
    with httpx.Client(timeout=limits, follow_redirects=True) as client:
        for rel, meta in m["files"].items():
            dest = target / rel
            if dest.is_file() and sha256_file(dest) == meta["sha256"]:
                continue
            url = f"{base}/{m['upstream_dir']}/{rel}"
            try:
                resp = client.get(url)
            except httpx.HTTPError as e:
                reason = f"cannot download ACEBench data ({url}): {type(e).__name__}: {e}"
                raise DataUnavailable(f"{reason}. Offline? Pass --data-dir with a copy of ACEBench's data_en "
                                      f"folder (commit {m['commit'][:12]})", reason) from None
            if resp.status_code != 200:
                reason = f"cannot download ACEBench data: {url} answered HTTP {resp.status_code}"
                raise DataUnavailable(f"{reason}. Pass --data-dir with a copy of ACEBench's data_en folder "
                                      f"(commit {m['commit'][:12]})", reason)
            body = resp.content
            got = hashlib.sha256(body).hexdigest()
            if got != meta["sha256"]:
                raise UserError(f"downloaded {url}: sha256 {got[:16]}... does not match the pinned "
                                f"{meta['sha256'][:16]}...; nothing was written")
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(dest.name + ".part")
            tmp.write_bytes(body)
            os.replace(tmp, dest)
            if progress is not None:
                progress(rel)
    verify(target)
    return target


def resolve_data_dir(data_dir: str | Path | None) -> Path:
    """The verified data directory: ``data_dir`` as given, or the cache (downloaded when incomplete)."""
    if data_dir is not None:
        root = Path(data_dir)
        verify(root)
        return root
    root = default_dir()
    if root.is_dir() and not problems(root):
        _verified.add(str(root.resolve()))
        return root
    return download(root)


def main(argv: list[str] | None = None) -> None:
    """``python -m evals.acebench.fetch [TARGET]``: download (or complete) and verify, print the folder."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if len(args) > 1 or (args and args[0].startswith("-")):
        sys.exit("usage: python -m evals.acebench.fetch [TARGET]   (default TARGET: "
                 f"{default_dir()}; mirror: ${URL_ENV})")
    try:
        root = download(Path(args[0]) if args else None, progress=lambda rel: print(f"  {rel}", file=sys.stderr))
    except DataUnavailable as e:
        sys.exit(f"error: {e.reason}. Offline? Set ${URL_ENV} to a mirror, or copy ACEBench's data_en folder "
                 f"(commit {commit()[:12]}) by hand and name it with --data-dir or eval.acebench_data_dir")
    except UserError as e:
        sys.exit(f"error: {e}")
    print(root)


if __name__ == "__main__":
    main()
