"""Build the seed pool: source -> rule validation -> contamination guard -> dedup -> shuffle -> JSONL.

Sources (cfg.seeds.source): procedural (core.seeds.synth, no model), file (core.seeds.importers on
cfg.seeds.path), hub (a configured Hugging Face dataset id), llm (core.seeds.llmgen with the generator
model: cfg.expand.llm, else cfg.judge.llm). The pool is shuffled with cfg.run.seed, cut to
cfg.seeds.pool_size and written atomically (core.schema.write_samples). A source that yields no usable
sample at all is a UserError naming the first rejected row (`path:line: key path: problem`), which
`looptool config check` and the start of a run report before anything is written (core.preflight).
"""
from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

from core.config import RunConfig
from core.errors import UserError
from core.schema import Sample, write_samples
from core.seeds.validate import filter_valid

SHOW_REJECTED = 5
_ATTEMPTS = 4  # procedural: grow the request this many times when filters leave too few samples


def content_key(s: Sample) -> str:
    """Two samples with the same tool names, context and label are duplicates."""
    blob = json.dumps([sorted(str(t.get("name")) for t in s.tools),
                       [m.model_dump(exclude_none=True) for m in s.messages],
                       s.label.model_dump(exclude_none=True)], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


def dedup(samples: list[Sample]) -> tuple[list[Sample], int]:
    """Drop content duplicates; give a repeated id a -dupN suffix. (kept, duplicates dropped)"""
    seen, ids, out = set(), {}, []
    for s in samples:
        key = content_key(s)
        if key in seen:
            continue
        seen.add(key)
        if s.id in ids:
            ids[s.id] += 1
            s = s.model_copy(update={"id": f"{s.id}-dup{ids[s.id]}"})
        ids.setdefault(s.id, 0)
        out.append(s)
    return out, len(samples) - len(out)


def require_usable(valid: list[Sample], rejected: list[tuple[str, str]], source: str) -> None:
    """UserError when not one sample passed import and validation: the first rejected row says why."""
    if valid:
        return
    if rejected:
        where, problem = rejected[0]
        raise UserError(f"{where}: {problem} (no usable seed sample: {len(rejected)} rejected, the first "
                        "shown)")
    raise UserError(f"seeds ({source}): no seed samples at all")


def file_seeds(cfg: RunConfig) -> tuple[list[Sample], list[tuple[str, str]]]:
    """The seed file's samples that pass validation, and the rejected rows; UserError when none pass."""
    from core.seeds.importers import import_file

    samples, rejected = import_file(cfg.seeds.path, cfg.seeds.format)
    valid, invalid = filter_valid(samples, "file")
    require_usable(valid, rejected + invalid, "file")
    return valid, rejected + invalid


def _load(cfg: RunConfig, n: int) -> tuple[list[Sample], list[tuple[str, str]], dict]:
    seeds_cfg = cfg.seeds
    extra: dict = {}
    if seeds_cfg.source == "procedural":
        from core.seeds.synth import synthesize

        return synthesize(n, seed=cfg.run.seed, text_fraction=seeds_cfg.text_fraction,
                          multi_turn_fraction=seeds_cfg.multi_turn_fraction, refuse_share=seeds_cfg.refuse_share,
                          refuse_same_domain=seeds_cfg.refuse_same_domain), [], extra
    if seeds_cfg.source == "file":
        from core.seeds.importers import import_file

        samples, rejected = import_file(seeds_cfg.path, seeds_cfg.format)
        return samples, rejected, extra
    if seeds_cfg.source == "hub":
        from core.seeds.importers import import_hub

        samples, rejected = import_hub(seeds_cfg.hub_id, seeds_cfg.format)
        return samples, rejected, extra
    from core.seeds.llmgen import open_generator, synthesize_llm

    # the config requires one (core.config: seeds.source = 'llm' needs [expand.llm] or [judge.llm])
    backend = open_generator(cfg.expand.llm or cfg.judge.llm, device=cfg.model.device)
    try:
        samples, stats = synthesize_llm(backend, n, seed=cfg.run.seed)
    finally:
        backend.close()
    extra["llm"] = stats
    rejected = [(f"llm-{cfg.run.seed}", reason) for reason, count in stats["reasons"].items()
                for _ in range(count)]
    return samples, rejected, extra


def build_pool(cfg: RunConfig, out_path: Path) -> dict:
    """Write the seed pool to out_path; return {source, generated, rejected, rejected_first,
    contaminated, contaminated_by_reason, duplicates, kept, guard} (guard: per benchmark "guarded" or
    why not; {} with the guard off)."""
    seeds_cfg = cfg.seeds
    guard, coverage = None, {}
    if seeds_cfg.contamination_guard:
        from core.seeds.contamination import guard_for

        guard, coverage = guard_for(cfg)
    want = seeds_cfg.pool_size
    request = want if seeds_cfg.source != "procedural" else max(want + 8, int(want * 1.1))
    for _attempt in range(_ATTEMPTS if seeds_cfg.source == "procedural" else 1):
        raw, rejected, extra = _load(cfg, request)
        valid, invalid = filter_valid(raw, seeds_cfg.source)
        rejected = rejected + invalid
        dropped: dict[str, int] = {}
        clean = valid
        if guard is not None:
            clean, dropped = guard.drop_contaminated(valid)
        unique, dups = dedup(clean)
        if len(unique) >= want:
            break
        request = int(request * 1.5) + 8
    require_usable(valid, rejected, seeds_cfg.source)
    if not unique:
        raise UserError(f"seeds ({seeds_cfg.source}): the contamination guard dropped every sample "
                        f"({', '.join(f'{k}: {v}' for k, v in dropped.items())})")
    random.Random(cfg.run.seed).shuffle(unique)
    pool = unique[:want]
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    write_samples(out_path, pool)
    return {"source": seeds_cfg.source, "generated": len(raw) + (len(rejected) - len(invalid)),
            "rejected": len(rejected), "rejected_first": [f"{w}: {p}" for w, p in rejected[:SHOW_REJECTED]],
            "contaminated": sum(dropped.values()), "contaminated_by_reason": dropped,
            "duplicates": dups, "kept": len(pool), "guard": coverage, **extra}
