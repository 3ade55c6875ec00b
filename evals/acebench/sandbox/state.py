"""The sandbox's starting state, read from ``initial_state_en.json`` (ACEBench data, MIT License).

Every instance gets a fresh deep copy. ``inbox`` and ``reminder_list`` keys are ints in the sandbox (JSON
can only store them as strings), as upstream keeps them.
"""
from __future__ import annotations

import copy
import json
from functools import lru_cache
from pathlib import Path

_FILE = Path(__file__).with_name("initial_state_en.json")
_INT_KEYED = ("inbox", "reminder_list")


@lru_cache(maxsize=1)
def _data() -> dict:
    return json.loads(_FILE.read_text(encoding="utf-8"))


def constants() -> dict:
    return _data()["constants"]


def saved_attributes() -> dict[str, list[str]]:
    return constants()["saved_attributes"]


def initial(cls_name: str) -> dict:
    """A fresh copy of the class's constructor state, attribute order as upstream."""
    attrs = copy.deepcopy(_data()["classes"][cls_name]["initial_attributes"])
    for key in _INT_KEYED:
        if key in attrs:
            attrs[key] = {int(k): v for k, v in attrs[key].items()}
    return attrs


def fill(instance, cls_name: str) -> None:
    for k, v in initial(cls_name).items():
        setattr(instance, k, v)
