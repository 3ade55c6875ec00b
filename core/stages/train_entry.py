"""Entry point of one launched training process: `accelerate launch ... -m core.stages.train_entry
--context CONTEXT.json` (see core/stages/train_launch.py). Exit code 0 = trained, 3 = stopped (and a
`stopped.rank<N>` marker beside the context: torchrun does not pass a rank's exit code on).

A rank dies with its parent, the launcher: torchrun starts each rank in a session of its own, so a
SIGKILL of the launcher's process group alone would leave the ranks training, and writing checkpoints,
beside the rerun that resumes from them."""
from __future__ import annotations

import os

PARENT_PID = os.getppid()  # first: the launcher could die while the imports below run

import argparse  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from core.stages.base import StageStopped  # noqa: E402
from core.stages.train_launch import LAUNCHED_ENV, STOPPED_RC, rank_marker, read_context  # noqa: E402


def die_with_parent(parent_pid: int) -> None:
    """Linux's PR_SET_PDEATHSIG, as core.child_process's trampoline sets it for a managed child; exits at
    once when the parent is already gone (it may have died before prctl took effect)."""
    import ctypes
    import signal

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent_pid:
        os._exit(1)


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
        rank_marker(Path(args.context).parent, "stopped", int(os.environ.get("RANK", "0"))).touch()
        return STOPPED_RC
    return 0


if __name__ == "__main__":
    if sys.platform.startswith("linux"):
        die_with_parent(PARENT_PID)
    sys.exit(main())
