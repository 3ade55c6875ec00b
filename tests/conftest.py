"""Shared pytest fixtures."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# Every test run gets a fresh $LOOPTOOL_HOME (store, eval records, bfcl project dir), set before any
# looptool module runs and inherited by the subprocesses tests start. The converted embedded model is
# shared with the user's cache through $LOOPTOOL_MODELS so it is converted once per machine, not per run.
_user_home = Path(os.environ.get("LOOPTOOL_HOME") or Path.home() / ".cache" / "looptool")
os.environ.setdefault("LOOPTOOL_MODELS", str(_user_home / "models"))
os.environ["LOOPTOOL_HOME"] = tempfile.mkdtemp(prefix="looptool-test-home-")


@pytest.fixture(scope="session")
def embedded_path() -> str:
    """The embedded SmolLM2-135M-Instruct checkpoint (converted from GGUF once, ~25 s, then cached)."""
    from core.models import resolve

    return resolve("embedded").path


@pytest.fixture(scope="session")
def hf_backend(embedded_path):
    """One HF backend on the embedded model for the whole session (CPU here, batch size 4), in float32:
    the backend tests pin padding, ordering and logprobs bit for bit, which bf16 rounding blurs."""
    from core.backends.hf import HFBackend

    backend = HFBackend(embedded_path, batch_size=4, dtype="float32")
    yield backend
    backend.close()
