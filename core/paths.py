"""Where looptool keeps its files: $LOOPTOOL_HOME (default ~/.cache/looptool); models may live
elsewhere through $LOOPTOOL_MODELS."""
from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    root = Path(os.environ.get("LOOPTOOL_HOME") or Path.home() / ".cache" / "looptool")
    root.mkdir(parents=True, exist_ok=True)
    return root


def models_dir() -> Path:
    """Converted/cached model checkpoints; $LOOPTOOL_MODELS overrides (tests share one model cache)."""
    override = os.environ.get("LOOPTOOL_MODELS")
    if override:
        p = Path(override)
        p.mkdir(parents=True, exist_ok=True)
        return p
    return _sub("models")


def evals_dir() -> Path:
    return _sub("evals")


def store_path() -> Path:
    return home() / "looptool.db.json"


def _sub(name: str) -> Path:
    p = home() / name
    p.mkdir(parents=True, exist_ok=True)
    return p
