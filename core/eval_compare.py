"""Regressions between two evals of one benchmark: per-category accuracy, the difference B - A with its
95 % interval, and the entries that flipped (right -> wrong, wrong -> right) with both outputs.

`compare(store, a, b)` is what `looptool eval compare A B` prints and what the `compare` bus verb answers.
An eval is named by its id (or a unique prefix, as `eval show` takes it) or as ``RUN:J`` (run RUN's
iteration-J eval: its BFCL held-out eval, or ``RUN:J:acebench``).

* Matching: by scored unit, the benchmark's own (`core.benchmarks.scored_unit_of`): an entry's record,
  or for ACEBench's multi-turn files a dialogue, right when all its turns are. A unit is in a category
  as its eval's summary counts it; units in only one of the two evals are reported (counted, ids
  listed), never silently dropped, and left out of the accuracies, which are over the shared units.
* Statistics (core/stats.py): the two evals scored the same units, so each category's difference is a
  paired one, Newcombe's method 10 for paired data; the overall line is the eval's own metric, the mean
  of per-category accuracies, with the MOVER interval of the mean of the per-category differences, and
  the pooled count of all shared units beside it.
* Streaming: the records files are read a line at a time, twice: once for the verdicts (no outputs
  kept), once for the outputs of the flips listed (`max_flips` per direction, each cut to `raw_chars`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from core import paths
from core.benchmarks import scored_unit_of
from core.errors import UserError
from core.records import dumps, iter_records
from core.samples import evals_of, run_dir_of
from core.stats import mean_difference, paired_difference

RAW_CHARS = 4000  # an output in a flip is cut here (a model that rambles writes kilobytes)
INTERVAL = "95 % Newcombe method 10 for paired data (per category, pooled); MOVER for the mean of categories"


@dataclass
class Unit:
    """What a pass over the verdicts keeps of one scored unit (no outputs)."""
    category: str
    valid: bool = True
    error_type: str | None = None  # the first wrong record's
    records: list[str] = field(default_factory=list)


# -- naming an eval ---------------------------------------------------------------------------------

def resolve(store, ref: str) -> dict:
    """The stored summary an eval reference names: an eval id or a unique prefix, or RUN:J[:BENCHMARK]."""
    summary = store.get_eval(ref)  # UserError for an ambiguous prefix
    if summary is not None:
        return summary
    run_id, sep, rest = ref.partition(":")
    if not sep:
        raise UserError(f"no evaluation with id {ref!r} (see `looptool eval list`; RUN:J names run RUN's "
                        "iteration-J eval)")
    iteration, _, benchmark = rest.partition(":")
    if not iteration.isdigit():
        raise UserError(f"{ref!r}: expected RUN:J with J an iteration number (0 is the base model)")
    docs = [d for d in store.get_docs("evals", run_id=run_id) if not d.get("on_demand")]
    here = paths.home() / "runs" / run_id
    try:
        run_dir = run_dir_of(store.get_docs("runs", run_id=run_id), run_id, here)
    except UserError:  # neither in the store nor under this home: the eval documents alone
        run_dir = here
    if not docs and not run_dir.is_dir():
        raise UserError(f"{ref!r}: no stored evals of run {run_id!r} (see `looptool runs list`)")
    # the iteration's eval.done first: a base-model eval shared with a newer run is stored under that run
    own = evals_of(docs, run_id, run_dir, int(iteration))
    found = [d for d in own if str(d.get("benchmark", "")).startswith(benchmark or "bfcl")]
    if not found:
        have = sorted({(d.get("iteration"), str(d.get("benchmark"))) for d in docs}, key=str)
        raise UserError(f"{ref!r}: run {run_id} has no {benchmark or 'bfcl'} eval of iteration {iteration}; "
                        f"it has {', '.join(f'{b} of iteration {j}' for j, b in have) or 'none in the store'}")
    return found[0]


def records_path(summary: dict) -> Path:
    """The eval's records file: where its summary says, else under this $LOOPTOOL_HOME (a moved home)."""
    eval_id = str(summary.get("eval_id"))
    named = Path(str(summary["records"])) if summary.get("records") else None
    if named is not None and named.is_file():
        return named
    local = paths.home() / "evals" / eval_id / "records.jsonl"
    if local.is_file():
        return local
    raise UserError(f"eval {eval_id}: its records file is missing ({named or local}); without it the "
                    "entries cannot be compared")


# -- reading ----------------------------------------------------------------------------------------

def read_units(path: Path, unit_of) -> dict[str, Unit]:
    """unit id -> Unit, in file order; a record repeated later (a resumed eval) replaces the earlier one."""
    latest: dict[str, tuple[str, bool, str | None]] = {}
    for rec in iter_records(path):
        latest.pop(rec["id"], None)  # re-insert: file order of the latest copy
        latest[rec["id"]] = (str(rec.get("category") or "?"), rec.get("valid") is True, rec.get("error_type"))
    units: dict[str, Unit] = {}
    for rid, (category, valid, error_type) in latest.items():
        unit = units.setdefault(unit_of(rid), Unit(category))
        unit.records.append(rid)
        if not valid and unit.valid:
            unit.valid, unit.error_type = False, error_type
    return units


def read_outputs(path: Path, wanted: set[str], raw_chars: int) -> dict[str, dict]:
    """record id -> {valid, error_type, raw (cut)} for the wanted ids (their latest copies)."""
    out = {}
    for rec in iter_records(path):
        if rec["id"] in wanted:
            out[rec["id"]] = {"valid": rec.get("valid") is True, "error_type": rec.get("error_type"),
                              "raw": cut(rec.get("raw"), raw_chars)}
    return out


def cut(raw, limit: int) -> str:
    """A record's output as text (a list of turns or an agent's log as JSON), at most ~`limit` characters."""
    text = raw if isinstance(raw, str) else "" if raw is None else dumps(raw)
    if len(text) <= limit:
        return text
    more = len(text) - limit
    return text[:limit] + f" ... [{more} more character{'s' if more != 1 else ''}]"


# -- comparing --------------------------------------------------------------------------------------

def compare(store, a: str, b: str, *, category: str | None = None, max_flips: int | None = None,
            raw_chars: int = RAW_CHARS) -> dict:
    """Eval B against eval A (see the module docstring). Raises UserError for an unknown eval, two
    benchmarks, a missing records file or an unknown category."""
    return compare_summaries(resolve(store, a), resolve(store, b), category=category, max_flips=max_flips,
                             raw_chars=raw_chars)


def _side(summary: dict, path: Path) -> dict:
    keep = ("eval_id", "benchmark", "run_id", "iteration", "started_at", "decoding", "model", "adapter")
    return {**{k: summary.get(k) for k in keep}, "complete": summary.get("complete") is not False,
            "records": str(path)}


def compare_summaries(sa: dict, sb: dict, *, category: str | None = None, max_flips: int | None = None,
                      raw_chars: int = RAW_CHARS) -> dict:
    bench_a, bench_b = sa.get("benchmark"), sb.get("benchmark")
    if bench_a != bench_b:
        raise UserError(f"eval {sa.get('eval_id')} is {bench_a} and eval {sb.get('eval_id')} is {bench_b}: "
                        "compare two evals of one benchmark")
    path_a, path_b = records_path(sa), records_path(sb)
    unit_of = scored_unit_of(str(bench_a))
    units_a, units_b = read_units(path_a, unit_of), read_units(path_b, unit_of)
    if category is not None:
        known = sorted({u.category for u in units_a.values()} | {u.category for u in units_b.values()})
        if category not in known:
            raise UserError(f"--category {category!r}: neither eval has it; they have {', '.join(known) or 'none'}")
        units_a = {k: u for k, u in units_a.items() if u.category == category}
        units_b = {k: u for k, u in units_b.items() if u.category == category}

    tables: dict[str, list[int]] = {}  # category -> [both, B only (wrong -> right), A only (right -> wrong), neither]
    flips: dict[str, list[str]] = {"right_to_wrong": [], "wrong_to_right": []}
    for uid, ua in units_a.items():
        ub = units_b.get(uid)
        if ub is None:
            continue
        cell = tables.setdefault(ua.category, [0, 0, 0, 0])
        if ua.valid and ub.valid:
            cell[0] += 1
        elif ub.valid:
            cell[1] += 1
            flips["wrong_to_right"].append(uid)
        elif ua.valid:
            cell[2] += 1
            flips["right_to_wrong"].append(uid)
        else:
            cell[3] += 1

    rows, diffs = [], []
    for cat, (both, fixed, broken, neither) in tables.items():
        n = both + fixed + broken + neither
        diff = paired_difference(both, fixed, broken, neither)  # p1 = B's accuracy, p2 = A's
        diffs.append(diff)
        rows.append({"category": cat, "n": n, "correct_a": both + broken, "correct_b": both + fixed,
                     "accuracy_a": (both + broken) / n, "accuracy_b": (both + fixed) / n,
                     "difference": diff.as_dict(), "right_to_wrong": broken, "wrong_to_right": fixed})
    overall = None
    if rows:
        pooled = [sum(t[i] for t in tables.values()) for i in range(4)]
        n = sum(pooled)
        overall = {"categories": len(rows), "n": n,
                   "accuracy_a": sum(r["accuracy_a"] for r in rows) / len(rows),
                   "accuracy_b": sum(r["accuracy_b"] for r in rows) / len(rows),
                   "difference": mean_difference(diffs).as_dict(),
                   "correct_a": pooled[0] + pooled[2], "correct_b": pooled[0] + pooled[1],
                   "pooled_difference": paired_difference(*pooled).as_dict()}

    listed = {k: v if max_flips is None else v[:max_flips] for k, v in flips.items()}
    wanted_a = {rid for k in listed for uid in listed[k] for rid in units_a[uid].records}
    wanted_b = {rid for k in listed for uid in listed[k] for rid in units_b[uid].records}
    out_a, out_b = read_outputs(path_a, wanted_a, raw_chars), read_outputs(path_b, wanted_b, raw_chars)

    def flip(uid: str) -> dict:
        ua, ub = units_a[uid], units_b[uid]
        return {"id": uid, "category": ua.category,
                "a": _unit_output(ua, out_a, raw_chars), "b": _unit_output(ub, out_b, raw_chars)}

    only_a = [u for u in units_a if u not in units_b]
    only_b = [u for u in units_b if u not in units_a]
    cap = (lambda ids: ids) if max_flips is None else (lambda ids: ids[:max_flips])
    return {
        "benchmark": bench_a, "a": _side(sa, path_a), "b": _side(sb, path_b), "category": category,
        "interval": INTERVAL, "categories": rows, "overall": overall,
        **{k: {"count": len(v), "entries": [flip(u) for u in listed[k]], "listed": len(listed[k])}
           for k, v in flips.items()},
        "only_in_a": {"count": len(only_a), "ids": cap(only_a)},
        "only_in_b": {"count": len(only_b), "ids": cap(only_b)},
        "warnings": _warnings(sa, sb, only_a, only_b),
    }


def _unit_output(unit: Unit, outputs: dict[str, dict], raw_chars: int) -> dict:
    """One side of a flip: the unit's verdict and its output (a dialogue's turns one per line, cut as one)."""
    if len(unit.records) == 1:
        raw = outputs.get(unit.records[0], {}).get("raw", "")
    else:
        raw = cut("\n".join(f"{rid}: {outputs.get(rid, {}).get('raw', '')}" for rid in unit.records), raw_chars)
    return {"valid": unit.valid, "error_type": unit.error_type, "raw": raw}


def _warnings(sa: dict, sb: dict, only_a: list, only_b: list) -> list[str]:
    out = []
    for s in (sa, sb):
        if s.get("complete") is False:
            out.append(f"eval {s.get('eval_id')} is incomplete: only its finished entries are compared")
    if sa.get("decoding") != sb.get("decoding"):
        out.append(f"the evals decoded replies differently ({sa.get('decoding')} vs {sb.get('decoding')}): "
                   "a flip may be the decoding, not the model")
    if only_a or only_b:
        out.append(f"{len(only_a)} unit(s) only in A and {len(only_b)} only in B are left out of the accuracies")
    return out

