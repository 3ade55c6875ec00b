"""Shared pytest fixtures."""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

# Every test run gets a fresh $LOOPTOOL_HOME (store, eval records, bfcl project dir), set before any
# looptool module runs and inherited by the subprocesses tests start. The converted embedded model is
# shared with the user's cache through $LOOPTOOL_MODELS so it is converted once per machine, not per run.
_user_home = Path(os.environ.get("LOOPTOOL_HOME") or Path.home() / ".cache" / "looptool")
os.environ.setdefault("LOOPTOOL_MODELS", str(_user_home / "models"))
os.environ["LOOPTOOL_HOME"] = tempfile.mkdtemp(prefix="looptool-test-home-")
# Under pytest-xdist (make test: 2 workers on 2 cores) each worker and everything it starts computes on
# one thread: two torch processes of 2 threads each on 2 cores wait at every parallel region for a
# descheduled thread, and decoding runs tens of times slower.
if os.environ.get("PYTEST_XDIST_WORKER"):
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")


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


# -- `make test-fast` (-m "not slow") loads no model ----------------------------------------------
# A test that asks for one of these fixtures loads the embedded model (and converts it from GGUF on a
# fresh machine), so it must be marked slow. Every other test runs with the embedded model's
# resolution and transformers' from_pretrained (models and tokenizers) refusing to load anything.
MODEL_FIXTURES = frozenset({"embedded_path", "hf_backend"})


class ModelLoadInFastTest(AssertionError):
    """A test not marked slow tried to load a model or tokenizer from disk."""


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """Runs before the test's fixtures are set up, so an unmarked test fails before the model loads."""
    if item.get_closest_marker("slow") is None:
        wanted = MODEL_FIXTURES.intersection(getattr(item, "fixturenames", ()))
        if wanted:
            pytest.fail(f"{item.nodeid} uses {', '.join(sorted(wanted))}, which load the embedded model: "
                        "mark it @pytest.mark.slow", pytrace=False)


@pytest.fixture(autouse=True)
def _no_model_loads_outside_slow_tests(request, monkeypatch):
    if request.node.get_closest_marker("slow") is not None:
        return

    def refuse(*args, **kwargs):
        raise ModelLoadInFastTest(f"{request.node.nodeid} loads a model or tokenizer from disk: mark it "
                                  "@pytest.mark.slow, or give it a stand-in")

    import core.models

    monkeypatch.setattr(core.models, "ensure_embedded", refuse)
    # only once transformers is imported (importing it here would cost every fast run seconds); the
    # Auto* classes end in these two, so patching them covers AutoModel* and AutoTokenizer too
    if "transformers" in sys.modules:
        from transformers.modeling_utils import PreTrainedModel
        from transformers.tokenization_utils_base import PreTrainedTokenizerBase

        for cls in (PreTrainedModel, PreTrainedTokenizerBase):
            monkeypatch.setattr(cls, "from_pretrained", classmethod(refuse))


# The longest files first: with `--dist loadfile --no-loadscope-reorder` (make test) pytest-xdist hands out
# files in collection order, the first two to the two workers and then a second one to each. The two loop
# files (the end-to-end run and the kill/resume run, about 5 minutes each on one thread; they share one
# reference run, tests/loop_runs.py) start at once, one per worker, each with a short file queued behind
# it, and the next longest follow. Collected alphabetically, or by test count as xdist reorders by default,
# a loop file started late and ran alone for its final minutes.
LONGEST_FIRST = ("test_engine_e2e.py", "test_engine_resume.py", "test_boundaries.py", "test_stage_plan.py",
                 "test_bfcl_e2e.py", "test_train_accelerate.py", "test_train.py", "test_acebench_e2e.py",
                 "test_prefix_cache.py", "test_backends.py")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: order within a file kept
