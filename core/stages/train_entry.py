"""Entry point of one launched training process: `accelerate launch ... -m core.stages.train_entry
--context CONTEXT.json` (see core/stages/train_launch.py). Exit code 0 = trained, 3 = stopped."""
from __future__ import annotations

import argparse
import os
import sys

from core.stages.base import StageStopped
from core.stages.train_launch import LAUNCHED_ENV, STOPPED_RC, read_context


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m core.stages.train_entry")
    ap.add_argument("--context", required=True, help="context.json written by train_launch.write_context")
    args = ap.parse_args(argv)
    os.environ[LAUNCHED_ENV] = "1"  # train.run must train here, not launch again
    ctx, dataset = read_context(args.context)
    from core.stages import train

    try:
        train.run(ctx, dataset)
    except StageStopped:
        return STOPPED_RC
    return 0


if __name__ == "__main__":
    sys.exit(main())
