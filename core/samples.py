"""An iteration's examples, a page at a time: probe failures, judge verdicts, expansions, eval records.

One home for reading them, shared by `looptool runs samples` and the `samples` bus verb (the console's
examples screen). A page is computed by streaming the stage's JSONL file once: filters are applied to
each record as it is read, only the page's rows are kept, and the joins (the dataset's label beside the
probe reply, the seed beside its expansion) are one more streaming pass over the files they need for the
page's ids alone. No file is ever loaded whole, so a page costs the same for 100 records or 10 million.

    stage   file(s) in run_dir/iter-J/              left | right
    probe   probe.jsonl (+ dataset.jsonl)           the label | the policy's reply
    judge   judge.jsonl (+ probe, dataset)          the label | the reply; the relabel and the reason below
    expand  expand.jsonl (+ dataset, judge, seeds)  the seed | the new sample (conversation and label)
    eval    records.jsonl of each of iteration J's evals in the store   the raw reply | what was decoded

Rows are bounded: every string is cut to MAX_TEXT_CHARS with a marker saying how much was left out, so
a page of MAX_LIMIT rows stays far under the bus's payload bound. Filters are `key=value` pairs (FILTERS
names the keys of each stage); a value matches a field equal to it, ignoring case, and for the error
classes also a field it is a `:`-separated prefix of (`error_type=ast_decoder` matches
`ast_decoder:decoder_failed:syntax`).

`prompt()` renders one sample's prompt as the policy saw it (core.stages.probe.build_prompt with the
run's tokenizer and prompt mode). Eval records do not carry their prompt, and the benchmarks' prompts
are built by evals/, which core never imports: the reply says so instead.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Iterator

from core.busproto import MAX_SAMPLES_LIMIT, SAMPLE_STAGES
from core.errors import UserError
from core.records import iter_records

MAX_LIMIT = MAX_SAMPLES_LIMIT  # rows in one page (the bus verb's bound too)
MAX_TEXT_CHARS = 2000  # a label, a reply, a reason
MAX_FIELD_CHARS = 200  # a table cell: an id, a kind, an error type
MAX_PROMPT_CHARS = 60_000  # a rendered prompt (BFCL's system prompt lists every tool doc)
MAX_FILTERS = 8

# the keys each stage filters on; `id` is a prefix of the sample id in every stage
FILTERS: dict[str, tuple[str, ...]] = {
    "probe": ("id", "kind", "failure", "mastered"),
    "judge": ("id", "verdict", "outcome", "by"),
    "expand": ("id", "seed", "kind", "variation"),
    "eval": ("id", "benchmark", "category", "error_type", "valid"),
}
ALIASES = {"category": "kind", "error_type": "failure"}  # the same question asked of probe / expand
BOOLEAN_KEYS = ("mastered", "valid")
PREFIX_KEYS = ("id", "failure", "error_type")  # ids, and error classes ("a:b:c" matches "a" and "a:b")

COLUMNS: dict[str, tuple[str, ...]] = {  # the table of a page, in order (each a key of every row)
    "probe": ("id", "kind", "mastered", "failure", "reward", "ppl"),
    "judge": ("id", "verdict", "outcome", "by", "relabelled"),
    "expand": ("id", "seed", "kind", "variation"),
    "eval": ("id", "benchmark", "category", "valid", "error_type"),
}
SIDES = {"probe": ("label", "prediction"), "judge": ("label", "prediction"),
         "expand": ("seed", "expansion"), "eval": ("raw reply", "decoded")}


# -- bounds ------------------------------------------------------------------------------------

def clip(value, limit: int = MAX_TEXT_CHARS) -> str:
    """`value` as text of at most `limit` characters (+ a marker naming how many were left out)."""
    text = value if isinstance(value, str) else ("" if value is None else json.dumps(value, default=str))
    if len(text) <= limit:
        return text
    return text[:limit] + f" … [{len(text) - limit} more characters]"


def check_filters(stage: str, filters: dict[str, str] | None) -> dict[str, str]:
    """The filters with aliases resolved; UserError naming the bad key (and the stage's keys)."""
    if stage not in SAMPLE_STAGES:
        raise UserError(f"stage {stage!r}: expected one of {', '.join(SAMPLE_STAGES)}")
    filters = dict(filters or {})
    if len(filters) > MAX_FILTERS:
        raise UserError(f"{len(filters)} filters; at most {MAX_FILTERS}")
    out: dict[str, str] = {}
    for key, value in filters.items():
        name = key if key in FILTERS[stage] else ALIASES.get(key, key)
        if name not in FILTERS[stage]:
            raise UserError(f"filter {key!r}: not a key of stage {stage}; its keys are {', '.join(FILTERS[stage])}")
        if not isinstance(value, str) or not value:
            raise UserError(f"filter {key}: expected a non-empty value")
        if name in BOOLEAN_KEYS and value.lower() not in ("true", "false"):
            raise UserError(f"filter {key}={value!r}: expected true or false")
        out[name] = value
    return out


def parse_filters(pairs: list[str] | None) -> dict[str, str]:
    """`["key=value", ...]` (the CLI's --filter) -> {key: value}; UserError on a pair without `=`."""
    out: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--filter {pair!r}: expected key=value (e.g. failure=no_call)")
        out[key.strip()] = value.strip()
    return out


def _matches(fields: dict, filters: dict[str, str]) -> bool:
    for key, want in filters.items():
        got = fields.get(key)
        got = "" if got is None else (str(got).lower() if isinstance(got, bool) else str(got))
        got, want = got.casefold(), want.casefold()
        if got == want:
            continue
        if key == "id" and got.startswith(want):
            continue
        if key in PREFIX_KEYS and got.startswith(want + ":"):
            continue
        return False
    return True


# -- streaming ---------------------------------------------------------------------------------

def _by_id(path: Path, ids: set[str], key: str = "id") -> dict[str, dict]:
    """The records of `path` whose `key` is in `ids` (one pass; nothing else kept)."""
    found: dict[str, dict] = {}
    if not ids or not path.exists():
        return found
    for rec in iter_records(path):
        if rec.get(key) in ids:
            found.setdefault(rec[key], rec)
            if len(found) == len(ids):
                break
    return found


# -- where the files are -----------------------------------------------------------------------

def iteration_dir(run_dir: Path, iteration: int) -> Path:
    d = Path(run_dir) / f"iter-{iteration}"
    if not d.is_dir():
        raise UserError(f"run {Path(run_dir).name} has no iteration {iteration} ({d} does not exist)")
    return d


def stage_file(run_dir: Path, iteration: int, stage: str) -> Path:
    path = iteration_dir(run_dir, iteration) / f"{stage}.jsonl"
    if not path.exists():
        raise UserError(f"{path} does not exist: iteration {iteration} has no {stage} output (not run yet, "
                        "or the last iteration, which stops after its eval)")
    return path


def run_dir_of(run_docs: list[dict], run_id: str, fallback: Path | None = None) -> Path:
    """The run directory the store's runs table names for `run_id` (else `fallback`); UserError if none."""
    for doc in run_docs:
        if doc.get("run_id") == run_id and isinstance(doc.get("run_dir"), str):
            return Path(doc["run_dir"])
    if fallback is not None and Path(fallback).is_dir():
        return Path(fallback)
    raise UserError(f"no run {run_id!r} in the store (see `looptool runs list`)")


def evals_of(eval_docs: list[dict], run_id: str, run_dir: Path, iteration: int) -> list[dict]:
    """One iteration's own evals (core.run_scores.iteration_evals: its eval.done first, then the store's
    documents), in benchmark order (bfcl-v3 before acebench)."""
    from core.run_scores import iteration_evals

    docs = iteration_evals(run_id, run_dir, iteration, eval_docs).values()
    return sorted(docs, key=lambda d: (str(d.get("benchmark") or "") != "bfcl-v3", str(d.get("benchmark"))))


def _records_path(doc: dict) -> Path:
    from core import paths

    rec = doc.get("records")
    return Path(rec) if isinstance(rec, str) and rec else paths.evals_dir() / str(doc.get("eval_id")) / "records.jsonl"


# -- the rows of each stage ----------------------------------------------------------------------

def _probe_fields(rec: dict) -> dict:
    return {"id": rec["id"], "kind": rec.get("kind"), "failure": rec.get("failure"),
            "mastered": bool(rec.get("mastered")), "reward": rec.get("reward"),
            "ppl": round(rec["ppl"], 4) if isinstance(rec.get("ppl"), (int, float)) else None}


def _judge_fields(rec: dict) -> dict:
    return {"id": rec["id"], "verdict": rec.get("verdict"), "outcome": rec.get("outcome"), "by": rec.get("by"),
            "relabelled": isinstance(rec.get("relabel"), dict)}


def _expand_fields(rec: dict) -> dict:
    meta = rec.get("meta") if isinstance(rec.get("meta"), dict) else {}
    return {"id": rec["id"], "seed": rec.get("parent"), "kind": meta.get("kind"), "variation": meta.get("variation")}


def _eval_fields(rec: dict) -> dict:
    return {"id": rec["id"], "category": rec.get("category"), "valid": bool(rec.get("valid")),
            "error_type": rec.get("error_type")}


class _Run:
    """What the joins need of the run: its prompt mode (labels are shown in the format the policy
    answers in) and its samples as Samples."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self._mode: str | None = None

    @property
    def mode(self) -> str:
        if self._mode is None:
            self._mode = load_config(self.run_dir).model.mode
        return self._mode

    def sample(self, raw: dict | None):
        """A Sample from its JSON, or None when there is none or it does not validate."""
        from pydantic import ValidationError

        from core.schema import Sample

        if not isinstance(raw, dict):
            return None
        try:
            return Sample.model_validate(raw)
        except ValidationError:
            return None

    def label(self, raw: dict | None) -> str:
        from core.prompt_format import label_text

        sample = self.sample(raw)
        if sample is None:
            return "(the sample is not in the dataset file)" if raw is None else "(the sample does not validate)"
        try:
            return label_text(sample, self.mode)
        except ValueError as e:  # an argument name no Python call can carry
            return f"(the label cannot be rendered: {e})"

    def conversation(self, raw: dict | None) -> str:
        """The sample's messages, one per line, then its label."""
        sample = self.sample(raw)
        if sample is None:
            return self.label(raw)
        from core.toolcalls import render_python

        lines = []
        for m in sample.messages:
            if m.tool_calls:
                try:
                    lines.append(f"{m.role}: {render_python([c.tool_call() for c in m.tool_calls])}")
                except ValueError as e:
                    lines.append(f"{m.role}: (calls that cannot be rendered: {e})")
            else:
                lines.append(f"{m.role}{'(' + m.name + ')' if m.name else ''}: {m.content}")
        return "\n".join(lines) + "\n=> label: " + self.label(raw)


def load_config(run_dir: Path):
    from core.config import parse

    path = Path(run_dir) / "config.toml"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise UserError(f"{path}: cannot read the run's config ({e.strerror or e})") from None
    return parse(text, str(path))


def _last_user(raw: dict | None) -> str:
    msgs = raw.get("messages") if isinstance(raw, dict) else None
    users = [m.get("content") for m in msgs or [] if isinstance(m, dict) and m.get("role") == "user"]
    return users[-1] if users and isinstance(users[-1], str) else ""


def _join_probe(run: _Run, iter_dir: Path, rows: list[dict]) -> None:
    data = _by_id(iter_dir / "dataset.jsonl", {r["id"] for r in rows})
    for row in rows:
        rec = row.pop("_rec")
        row["left"] = run.label(data.get(row["id"]))
        row["right"] = rec.get("response", "")
        row["detail"] = (f"question: {_last_user(data.get(row['id']))}\n"
                         f"finish: {rec.get('finish')}, {rec.get('tokens')} tokens, ppl of the call "
                         f"{rec.get('ppl_call')}")


def _join_judge(run: _Run, iter_dir: Path, rows: list[dict]) -> None:
    ids = {r["id"] for r in rows}
    data, probe = _by_id(iter_dir / "dataset.jsonl", ids), _by_id(iter_dir / "probe.jsonl", ids)
    for row in rows:
        rec = row.pop("_rec")
        row["left"] = run.label(data.get(row["id"]))
        row["right"] = (probe.get(row["id"]) or {}).get("response", "(no probe record)")
        votes = rec.get("votes") if isinstance(rec.get("votes"), list) else []
        row["relabel"] = run.label(rec["relabel"]) if isinstance(rec.get("relabel"), dict) else None
        row["detail"] = (f"reason: {rec.get('reason', '')}"
                         + (f"\nvotes: {', '.join(map(str, votes))}" if votes else "")
                         + (f"\nrelabelled to: {row['relabel']}" if row["relabel"] is not None else ""))


def _join_expand(run: _Run, iter_dir: Path, rows: list[dict]) -> None:
    seeds = {r["seed"] for r in rows if isinstance(r.get("seed"), str)}
    data, judged = _by_id(iter_dir / "dataset.jsonl", seeds), _by_id(iter_dir / "judge.jsonl", seeds)
    counts = _by_id(iter_dir / "expand.seeds.jsonl", seeds)
    for row in rows:
        rec = row.pop("_rec")
        seed_id = row.get("seed")
        relabel = (judged.get(seed_id) or {}).get("relabel")
        seed = relabel if isinstance(relabel, dict) else data.get(seed_id)  # LABEL_WRONG seeds: the fixed label
        row["left"] = run.conversation(seed) if seed is not None else f"(seed {seed_id} is not in the dataset file)"
        row["right"] = run.conversation(rec)
        c = counts.get(seed_id) or {}
        row["detail"] = (f"seed {seed_id}: verdict {(judged.get(seed_id) or {}).get('verdict', '?')}"
                         + (f", {c.get('kept')} of {c.get('generated')} generated kept" if c else ""))


def _join_eval(rows: list[dict]) -> None:
    for row in rows:
        rec = row.pop("_rec")
        row["left"] = rec.get("raw", "")
        decoded = rec.get("decoded")
        row["right"] = json.dumps(decoded, ensure_ascii=False, default=str) if decoded is not None else "(nothing decoded)"
        row["detail"] = f"error: {rec.get('error')}" if rec.get("error") else ("valid" if rec.get("valid") else "")


def _records(run_dir: Path, iteration: int, stage: str, evals: list[dict] | None
             ) -> Iterator[tuple[dict, dict]]:
    """(filter fields, record) of every record of the stage, in file order."""
    if stage == "eval":
        if not evals:
            raise UserError(f"iteration {iteration} of run {Path(run_dir).name} has no eval in the store")
        for doc in evals:
            path = _records_path(doc)
            if not path.exists():
                raise UserError(f"{path} does not exist (eval {doc.get('eval_id')})")
            benchmark = str(doc.get("benchmark") or "")
            for rec in iter_records(path):
                yield {**_eval_fields(rec), "benchmark": benchmark, "eval_id": doc.get("eval_id")}, rec
        return
    fields: Callable[[dict], dict] = {"probe": _probe_fields, "judge": _judge_fields,
                                      "expand": _expand_fields}[stage]
    for rec in iter_records(stage_file(run_dir, iteration, stage)):
        yield fields(rec), rec


def page(run_dir: Path, iteration: int, stage: str, filters: dict[str, str] | None = None, offset: int = 0,
         limit: int = 20, *, evals: list[dict] | None = None) -> dict:
    """One page of a stage's examples: {stage, iteration, run_id, columns, sides, filters, offset, limit,
    total (rows matching the filters), rows}. Each row has the COLUMNS of its stage, `left` and
    `right` (SIDES), and `detail`; every string bounded. `evals`: the store's eval docs of the
    iteration (evals_of), for stage eval. UserError for a bad stage, filter, offset or limit, and for
    files that do not exist."""
    filters = check_filters(stage, filters)
    if not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise UserError(f"limit {limit!r}: expected 1..{MAX_LIMIT}")
    if not isinstance(offset, int) or offset < 0:
        raise UserError(f"offset {offset!r}: expected 0 or more")
    rows: list[dict] = []
    total = 0
    for fields, rec in _records(run_dir, iteration, stage, evals):
        if not _matches(fields, filters):
            continue
        if offset <= total < offset + limit:
            rows.append({**fields, "_rec": rec})
        total += 1
    if rows:
        if stage == "eval":
            _join_eval(rows)
        else:
            run, iter_dir = _Run(run_dir), iteration_dir(run_dir, iteration)
            {"probe": _join_probe, "judge": _join_judge, "expand": _join_expand}[stage](run, iter_dir, rows)
    for row in rows:
        for key, value in row.items():
            if isinstance(value, str):
                row[key] = clip(value, MAX_TEXT_CHARS if key in ("left", "right", "detail", "relabel")
                                else MAX_FIELD_CHARS)
    return {"run_id": Path(run_dir).name, "iteration": iteration, "stage": stage, "filters": filters,
            "columns": list(COLUMNS[stage]), "sides": list(SIDES[stage]), "offset": offset, "limit": limit,
            "total": total, "rows": rows}


# -- the rendered prompt -----------------------------------------------------------------------

_TOKENIZERS: dict[str, object] = {}  # model path -> tokenizer (a console asks for prompt after prompt)


def _tokenizer(model: str):
    tok = _TOKENIZERS.get(model)
    if tok is None:
        from transformers import AutoTokenizer

        try:
            tok = AutoTokenizer.from_pretrained(model)
        except (OSError, ValueError) as e:
            raise UserError(f"cannot load the tokenizer of {model}: {str(e).splitlines()[0][:300]}") from None
        _TOKENIZERS.clear()  # one model at a time: a core serves one run
        _TOKENIZERS[model] = tok
    return tok


def prompt(run_dir: Path, iteration: int, stage: str, sample_id: str, *, evals: list[dict] | None = None) -> dict:
    """{id, stage, iteration, prompt (None for eval records), mode, model, note}: sample `sample_id`'s
    prompt rendered as the policy of iteration `iteration` saw it (probe, judge: the dataset's sample;
    expand: the new sample, as the next iteration's policy will see it). UserError when the sample is
    not there."""
    check_filters(stage, None)
    out = {"id": sample_id, "stage": stage, "iteration": iteration}
    if stage == "eval":
        for fields, rec in _records(run_dir, iteration, "eval", evals):
            if rec["id"] == sample_id:
                return {**out, "prompt": None, "benchmark": fields["benchmark"], "eval_id": fields["eval_id"],
                        "note": "eval records do not carry their prompt: the benchmark's prompt is built by "
                                "evals/, which the core does not import; `looptool eval bfcl|acebench --ids "
                                f"{sample_id}` with --model and --adapter of this iteration shows the run again"}
        raise UserError(f"no eval record {sample_id!r} in iteration {iteration}'s evals")
    iter_dir = iteration_dir(run_dir, iteration)
    source = iter_dir / ("expand.jsonl" if stage == "expand" else "dataset.jsonl")
    raw = _by_id(source, {sample_id}).get(sample_id) if source.exists() else None
    if raw is None:
        raise UserError(f"no sample {sample_id!r} in {source}")
    run = _Run(run_dir)
    sample = run.sample(raw)
    if sample is None:
        raise UserError(f"{source}: sample {sample_id!r} does not validate")
    from core import weights
    from core.stages.probe import build_prompt

    cfg = load_config(run_dir)
    # the weights the probe of iteration j used; a LoRA adapter shares its model's tokenizer
    used = weights.left_by(iter_dir / "policy", weights.start(cfg, Path(run_dir), iteration))
    text = build_prompt(sample, _tokenizer(used.model), cfg.model.mode)
    note = "the next iteration's policy sees this sample; rendered with this run's tokenizer" \
        if stage == "expand" else "as the probe put it to the policy"
    return {**out, "prompt": clip(text, MAX_PROMPT_CHARS), "mode": cfg.model.mode, "model": used.model,
            "adapter": used.adapter, "note": note}
