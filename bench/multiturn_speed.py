"""BFCL-v3 multi-turn on the hf backend, with and without prefix reuse, side by side in one run.

Every step of a multi-turn entry re-sends the entry's whole history (4-10k tokens); with reuse
(core/backends/hf_prefix.py) only what the last step added is encoded. For each entry, both arms run
the real evaluation (evals.bfcl.run_eval, the embedded model, greedy, the eval's token budget), one
entry at a time so each entry's seconds and prefill tokens are its own. Printed per entry and in all:
seconds, prompt tokens encoded, model steps, and whether both arms wrote the same replies; then the
ratios (uncached / cached) with their range over entries. Targets (issue 13): >= 5x fewer prefill
tokens, >= 3x less wall time.

    .venv/bin/python bench/multiturn_speed.py [--entries 3] [--categories multi_turn_base] [--json F]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
_home = Path(os.environ.get("LOOPTOOL_HOME") or Path.home() / ".cache" / "looptool")
os.environ.setdefault("LOOPTOOL_MODELS", str(_home / "models"))


class _Steps:
    """Wraps a backend's generate to print one line per model step (a multi-turn entry runs minutes)."""

    def __init__(self, backend, label: str):
        self.backend, self.label, self.n = backend, label, 0

    def __getattr__(self, name):
        return getattr(self.backend, name)

    def generate(self, prompts, params, adapter=None):
        pre, t = self.backend.tokens_prefilled, time.perf_counter()
        gens = self.backend.generate(prompts, params, adapter)
        self.n += 1
        print(f"  {self.label} step {self.n:3d}: prompt {gens[0].prompt_tokens:5d} tokens, encoded "
              f"{self.backend.tokens_prefilled - pre:5d}, generated {gens[0].num_tokens:3d}, "
              f"{time.perf_counter() - t:5.1f} s", file=sys.stderr, flush=True)
        return gens


def one_entry(backend, model: str, category: str, entry_id: str, home: Path) -> dict:
    from evals.bfcl import EvalConfig, run_eval

    os.environ["LOOPTOOL_HOME"] = str(home)
    backend = _Steps(backend, "cached" if backend.prefix.enabled else "uncached")
    before = backend.tokens_prefilled, backend.tokens_reused
    t = time.perf_counter()
    summary = run_eval(EvalConfig(model=model, categories=[category], ids=[entry_id]), backend, progress=False)
    seconds = time.perf_counter() - t
    (rec,) = [json.loads(x) for x in Path(summary["records"]).read_text().splitlines()]
    return {"seconds": seconds, "prefilled": backend.tokens_prefilled - before[0],
            "reused": backend.tokens_reused - before[1], "steps": sum(len(t) for t in rec["raw"]),
            "raw": rec["raw"], "valid": rec["valid"]}


def single_turn(backends: dict, n: int, seed: int) -> dict:
    """The shared system-prompt opening across single-turn entries (the cpu-demo's held-out categories):
    both arms on the same prompts, twice each in alternation, the faster of each arm's two passes."""
    from core import prompt_format
    from core.backends import GenParams
    from core.prompting import render
    from evals import bfcl_data

    cats = ["simple_python", "multiple", "parallel", "irrelevance"]
    entries = bfcl_data.select(cats, -(-n // len(cats)), None, seed)[:n]
    params = GenParams(max_new_tokens=64, temperature=0.0, seed=0)
    out = {}
    for rep in range(2):
        for name, b in backends.items():
            b.prefix.clear()
            prompts = [render(b.tokenizer, prompt_format.first_messages(e.question[0], e.functions, "prompt"))
                       for e in entries]
            pre = b.tokens_prefilled
            t = time.perf_counter()
            gens = b.generate(prompts, params)
            s = time.perf_counter() - t
            best = out.get(name)
            if best is None or s < best["seconds"]:
                out[name] = {"seconds": s, "prefilled": b.tokens_prefilled - pre, "texts": [g.text for g in gens]}
    u, c = out["uncached"], out["cached"]
    same = sum(a == b for a, b in zip(u["texts"], c["texts"]))
    print(f"\nsingle-turn, {len(entries)} prompts of {', '.join(cats)}: seconds {u['seconds']:.1f} / "
          f"{c['seconds']:.1f} = x{u['seconds'] / c['seconds']:.2f}; prefill tokens {u['prefilled']} / "
          f"{c['prefilled']} = x{u['prefilled'] / max(1, c['prefilled']):.2f}; identical replies {same}/{len(entries)}")
    return {k: {m: v[m] for m in ("seconds", "prefilled")} for k, v in out.items()} | {"same": same,
                                                                                         "prompts": len(entries)}


def _gmean(xs: list[float]) -> float:
    return math.exp(sum(math.log(x) for x in xs) / len(xs))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--entries", type=int, default=3, help="entries per category (seeded selection)")
    ap.add_argument("--categories", default="multi_turn_base", help="comma-separated multi-turn categories")
    ap.add_argument("--seed", type=int, default=0, help="selection seed")
    ap.add_argument("--dtype", default="auto", help="hf backend dtype (auto: bf16 where the CPU has it)")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--single-turn", type=int, default=32, help="single-turn prompts for the shared-prefix "
                    "comparison (0: skip)")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()

    import torch
    from core.backends.base import PREFIX_CACHE_MB
    from core.backends.hf import HFBackend
    from core.models import resolve
    from evals import bfcl_data

    model = resolve("embedded").path
    cats = [c.strip() for c in args.categories.split(",") if c.strip()]
    entries = [(e.category, e.id) for e in bfcl_data.select(cats, args.entries, None, args.seed)]
    arms = {"uncached": 0, "cached": PREFIX_CACHE_MB}
    backends = {name: HFBackend(model, dtype=args.dtype, batch_size=args.batch_size, prefix_cache_mb=n)
                for name, n in arms.items()}
    print(f"{len(entries)} entries of {', '.join(cats)}; dtype {backends['cached'].dtype}, "
          f"{torch.get_num_threads()} threads; prefix cache {PREFIX_CACHE_MB} MiB = {backends['cached'].prefix.max_tokens} tokens", flush=True)
    rows = []
    for cat, eid in entries:
        row = {"id": eid}
        for name, b in backends.items():  # alternate arms entry by entry: drift hits both alike
            b.prefix.clear()
            row[name] = one_entry(b, model, cat, eid, Path(tempfile.mkdtemp(prefix=f"mt-{name}-")))
        u, c = row["uncached"], row["cached"]
        row["same_replies"] = u["raw"] == c["raw"]
        if not u["steps"]:  # its first prompt is longer than the model's context: nothing was generated
            print(f"{eid:28s} does not fit the model's context (no step ran): left out", flush=True)
            continue
        print(f"{eid:28s} steps {u['steps']:3d}/{c['steps']:3d}  seconds {u['seconds']:7.1f} / {c['seconds']:6.1f}"
              f" = x{u['seconds'] / c['seconds']:4.2f}   prefill tokens {u['prefilled']:7d} / {c['prefilled']:6d}"
              f" = x{u['prefilled'] / max(1, c['prefilled']):5.2f}   same replies: {row['same_replies']}",
              flush=True)
        rows.append(row)
    time_ratio = [r["uncached"]["seconds"] / r["cached"]["seconds"] for r in rows]
    tok_ratio = [r["uncached"]["prefilled"] / max(1, r["cached"]["prefilled"]) for r in rows]
    tot = {k: {m: sum(r[k][m] for r in rows) for m in ("seconds", "prefilled", "steps")} for k in arms}
    print(f"\nper entry: {tot['uncached']['seconds'] / len(rows):.1f} s and "
          f"{tot['uncached']['prefilled'] / len(rows):.0f} prefill tokens uncached, "
          f"{tot['cached']['seconds'] / len(rows):.1f} s and {tot['cached']['prefilled'] / len(rows):.0f} cached")
    print(f"prefill tokens: x{_gmean(tok_ratio):.2f} fewer (geometric mean; range x{min(tok_ratio):.2f}"
          f"..x{max(tok_ratio):.2f}; target >= 5)")
    print(f"wall time:      x{_gmean(time_ratio):.2f} less (geometric mean; range x{min(time_ratio):.2f}"
          f"..x{max(time_ratio):.2f}; target >= 3)")
    print(f"identical replies in {sum(r['same_replies'] for r in rows)}/{len(rows)} entries")
    single = single_turn(backends, args.single_turn, args.seed) if args.single_turn else None
    if args.json:
        for r in rows:
            for k in arms:
                r[k].pop("raw")
        args.json.write_text(json.dumps({"entries": rows, "totals": tot, "dtype": str(backends["cached"].dtype),
                                         "threads": torch.get_num_threads(), "single_turn": single,
                                         "prefill_ratio_gmean": _gmean(tok_ratio),
                                         "time_ratio_gmean": _gmean(time_ratio)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
