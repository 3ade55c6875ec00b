"""Import bfcl-eval as a library without its side effects.

Two things must happen before the first ``bfcl_eval`` import (reference/bfcl-v3.md §3):
  * ``BFCL_PROJECT_ROOT`` points at a directory looptool owns, because importing
    ``bfcl_eval.constants.eval_config`` creates result/, score/ and .file_locks/ under it;
  * a stand-in for ``bfcl_eval.constants.model_config`` sits in ``sys.modules``: the real module
    imports every API SDK, and the AST checker only reads ``MODEL_CONFIG_MAPPING[name].underscore_to_dot``.

Call :func:`bfcl` (idempotent) and import bfcl_eval submodules after it.
"""
from __future__ import annotations

import os
import sys
import types
from dataclasses import dataclass

from core import paths

MODEL_NAME = "looptool"  # the name we score under; contains no "_" (eval_runner maps _ -> /)
_ready = False


@dataclass
class _ModelConfig:
    model_name: str = MODEL_NAME
    display_name: str = MODEL_NAME
    url: str = ""
    org: str = ""
    license: str = ""
    model_handler: object = None
    input_price: float | None = None
    output_price: float | None = None
    is_fc_model: bool = False
    underscore_to_dot: bool = False


class _ConfigMapping(dict):
    """A missing key yields the default config (underscore_to_dot=False)."""

    def __missing__(self, key):
        return _ModelConfig(model_name=key, display_name=key)


def bfcl() -> None:
    """Prepare the process for importing bfcl_eval. Safe to call many times."""
    global _ready
    if _ready:
        return
    root = paths.home() / "bfcl-project"
    root.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("BFCL_PROJECT_ROOT", str(root))
    name = "bfcl_eval.constants.model_config"
    if name not in sys.modules:
        stand_in = types.ModuleType(name)
        stand_in.MODEL_CONFIG_MAPPING = _ConfigMapping()
        stand_in.ModelConfig = _ModelConfig
        sys.modules[name] = stand_in
    try:
        import bfcl_eval  # noqa: F401
    except ImportError:
        from core.errors import UserError

        raise UserError("bfcl-eval is not installed: pip install --no-deps bfcl-eval==2026.3.23") from None
    _ready = True


def register_model(name: str, underscore_to_dot: bool) -> None:
    """Tell the AST checker whether `name` was shown sanitised (dots as underscores) tool names."""
    bfcl()
    from bfcl_eval.constants.model_config import MODEL_CONFIG_MAPPING

    MODEL_CONFIG_MAPPING[name] = _ModelConfig(
        model_name=name, display_name=name, underscore_to_dot=underscore_to_dot
    )
