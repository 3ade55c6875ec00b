"""Reading a train curve file (iter_dir/train_curve.jsonl; its lines and their writer:
core/stages/train_callback.py), without transformers: the stage's stats and `looptool runs report` read it."""
from __future__ import annotations

import json
import math
from pathlib import Path

CURVE_FILE = "train_curve.jsonl"


def read_curve(path: Path) -> list[dict]:
    """The curve's points in step order, the last line per step kept (a torn last line is ignored)."""
    by_step: dict[int, dict] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                point = json.loads(line)
            except json.JSONDecodeError:
                break
            if isinstance(point, dict) and isinstance(point.get("step"), int):  # anything else is no point
                by_step[point["step"]] = point
    return [by_step[k] for k in sorted(by_step)]


def compact_curve(points: list[dict], digits: int = 5) -> list[dict]:
    """The points with floats rounded to `digits` significant digits (for train.done stats)."""
    def short(v):
        return float(f"{v:.{digits}g}") if isinstance(v, float) and math.isfinite(v) else v

    return [{k: short(v) for k, v in p.items()} for p in points]
