"""Evaluation throughput, measured side by side in one run.

(a) looptool's BFCL pipeline end to end (render, generate, decode, check, write records) and
(b) the same backend's raw batched generate on the same rendered prompts, both on the embedded model and
the same 32 BFCL-v3 prompts, greedy, same token budget. Prints tokens/s of each and the ratio a/b
(target >= 0.9). Then times scoring a responses file that covers all 4,441 v3 entries (target <= 3 s on
2 cores).

    .venv/bin/python bench/eval_throughput.py [--prompts 32] [--max-new-tokens 64] [--batch-size 8]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
_home = Path(os.environ.get("LOOPTOOL_HOME") or Path.home() / ".cache" / "looptool")
os.environ.setdefault("LOOPTOOL_MODELS", str(_home / "models"))
os.environ["LOOPTOOL_HOME"] = tempfile.mkdtemp(prefix="looptool-bench-")  # no resume from old runs


def pick_entries(n: int):
    from evals import bfcl_data

    cats = bfcl_data.NON_LIVE + bfcl_data.LIVE
    per = -(-n // len(cats))
    return bfcl_data.select(list(cats), per)[:n]


def bench_generation(n: int, max_new_tokens: int, batch_size: int) -> None:
    from core.backends import GenParams
    from core.backends.hf import HFBackend
    from core.models import resolve
    from core.prompting import render
    from core import prompt_format
    from evals import bfcl_prompt
    from evals.bfcl import EvalConfig, run_eval

    entries = pick_entries(n)
    backend = HFBackend(resolve("embedded").path, batch_size=batch_size)
    mode = bfcl_prompt.resolve_mode("auto", backend.tokenizer)
    prompts = [render(backend.tokenizer, prompt_format.first_messages(e.question[0], e.functions, mode))
               for e in entries]
    params = GenParams(max_new_tokens=max_new_tokens, temperature=0.0, seed=0)
    backend.generate(prompts[:batch_size], params)  # warm-up, not timed

    t = time.perf_counter()
    outs = backend.generate(prompts, params)
    raw_s = time.perf_counter() - t
    raw_tokens = sum(g.num_tokens for g in outs)

    cfg = EvalConfig(model="embedded", mode=mode, categories=sorted({e.category for e in entries}),
                     ids=[e.id for e in entries], max_new_tokens=max_new_tokens)
    t = time.perf_counter()
    summary = run_eval(cfg, backend, progress=False)
    pipe_s = time.perf_counter() - t
    pipe_tokens = summary["generated_tokens"]
    backend.close()

    raw_tps, pipe_tps = raw_tokens / raw_s, pipe_tokens / pipe_s
    print(f"prompts={len(entries)} mode={mode} max_new_tokens={max_new_tokens} batch_size={batch_size}")
    print(f"(b) raw batched generate : {raw_tokens:6d} tokens in {raw_s:7.2f} s = {raw_tps:7.1f} tok/s")
    print(f"(a) eval pipeline e2e    : {pipe_tokens:6d} tokens in {pipe_s:7.2f} s = {pipe_tps:7.1f} tok/s")
    print(f"ratio a/b = {pipe_tps / raw_tps:.3f}  (target >= 0.9)")
    if raw_tokens != pipe_tokens:
        print(f"note: token counts differ ({pipe_tokens} vs {raw_tokens})")


def bench_scoring() -> None:
    from evals import bfcl_data
    from evals.bfcl_responses import score_file
    from evals.bfcl_truth import multi_turn_steps, single_turn_text

    rows = []
    for cat in bfcl_data.CATEGORIES:
        for e in bfcl_data.load_category(cat):
            if e.kind == "multi_turn":
                rows.append({"id": e.id, "result": multi_turn_steps(e)})
            else:
                rows.append({"id": e.id, "result": single_turn_text(e, "fc")})
    f = Path(os.environ["LOOPTOOL_HOME"]) / "all_v3_responses.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    t = time.perf_counter()
    summary = score_file(f, progress=False)
    s = time.perf_counter() - t
    n = sum(c["total"] for c in summary["per_category"].values())
    print(f"scoring {n} v3 entries from a responses file: {s:.2f} s (target <= 3 s); "
          f"v3 Overall of ground truth = {100 * summary['scores']['overall']:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--skip-generation", action="store_true")
    args = ap.parse_args()
    if not args.skip_generation:
        bench_generation(args.prompts, args.max_new_tokens, args.batch_size)
    bench_scoring()


if __name__ == "__main__":
    main()
