"""Seed pool: rule validation, importers, procedural + LLM synthesis, contamination guard, pool building."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from core.checks import ungrounded
from core.config import parse
from core.errors import UserError
from core.schema import Call, Label, Message, Sample, load_samples
from core.seeds.apis import CONSTRAINT_TREE, all_leaf_names, make_api, spec_from_doc
from core.seeds.catalog import DOMAINS, LEAVES, tree
from core.seeds.contamination import Guard
from core.seeds.importers import import_file
from core.seeds.pool import build_pool
from core.seeds.synth import synthesize, synthesize_llm
from core.seeds.validate import filter_valid, validate

ACEBENCH = "/work/shared/acebench/data_en"
DOC = {"name": "book_room", "description": "Book a room.", "parameters": {"type": "dict", "required": ["city", "nights"],
       "properties": {"city": {"type": "string"}, "nights": {"type": "integer"}, "budget": {"type": "float"},
                      "breakfast": {"type": "boolean"}, "guests": {"type": "array", "items": {"type": "string"}},
                      "filters": {"type": "dict", "properties": {"stars": {"type": "integer"}}},
                      "room": {"type": "string", "enum": ["single", "double"]}, "extra": {"type": "any"},
                      "custom": {"type": "HashMap"}}}}


def sample(args: dict, name: str = "book_room", history: list[Message] | None = None) -> Sample:
    return Sample(id="s1", tools=[DOC], messages=[*(history or []), Message(role="user", content="Book it")],
                  label=Label(calls=[Call(name=name, arguments=args)]))


# ------------------------------------------------------------------------------------ validate

def test_validate_accepts_a_good_sample_and_number_accepts_int():
    ok = {"city": "Oslo", "nights": 2, "budget": 120, "breakfast": True, "guests": ["A"], "filters": {"stars": 4},
          "room": "double", "extra": [1, "x"], "custom": "anything"}
    assert validate(sample(ok)) == []


@pytest.mark.parametrize("args,needle", [
    ({"nights": 2}, "missing required parameter 'city'"),
    ({"city": "Oslo", "nights": 2, "pets": True}, "unknown parameter 'pets'"),
    ({"city": 5, "nights": 2}, "expected string, got integer"),
    ({"city": "Oslo", "nights": "2"}, "expected integer, got string"),
    ({"city": "Oslo", "nights": True}, "expected integer, got boolean"),  # strict: bool is not an integer
    ({"city": "Oslo", "nights": 2.5}, "expected integer, got float"),
    ({"city": "Oslo", "nights": 2, "budget": "cheap"}, "expected float, got string"),
    ({"city": "Oslo", "nights": 2, "budget": False}, "expected float, got boolean"),
    ({"city": "Oslo", "nights": 2, "breakfast": "yes"}, "expected boolean, got string"),
    ({"city": "Oslo", "nights": 2, "guests": "A"}, "expected array, got string"),
    ({"city": "Oslo", "nights": 2, "guests": [1]}, "guests[0]: expected string"),
    ({"city": "Oslo", "nights": 2, "filters": []}, "expected dict, got array"),
    ({"city": "Oslo", "nights": 2, "filters": {"stars": "4"}}, "filters.stars: expected integer"),
    ({"city": "Oslo", "nights": 2, "room": "suite"}, "not one of the enum values"),
])
def test_validate_catches_each_rule(args, needle):
    problems = validate(sample(args))
    assert any(needle in p for p in problems), problems


def test_validate_unknown_function_history_calls_and_structure():
    assert "unknown function 'fly'" in validate(sample({}, name="fly"))[0]
    bad_history = [Message(role="user", content="hi"),
                   Message(role="assistant", tool_calls=[Call(name="book_room", arguments={"city": "Oslo"})]),
                   Message(role="tool", content="{}")]
    problems = validate(sample({"city": "Oslo", "nights": 1}, history=bad_history))
    assert problems == ["messages[1]: book_room: missing required parameter 'nights'"]
    ends_with_assistant = Sample(id="s", tools=[DOC], messages=[Message(role="user", content="x"),
                                 Message(role="assistant", content="y")], label=Label(text="z"))
    assert "ends with a assistant turn" in validate(ends_with_assistant)[0]
    kept, rejected = filter_valid([sample({"city": "Oslo", "nights": 1}), sample({}, name="fly")], "here")
    assert len(kept) == 1 and rejected == [("here:s1", "label: unknown function 'fly'")]


# ----------------------------------------------------------------------------------- importers

QWEN_TOOLS = [{"type": "function", "function": {"name": "get_quote", "description": "Stock quote.", "parameters": {
    "type": "object", "properties": {"symbol": {"type": "string", "description": "Ticker"},
                                     "opts": {"type": "object", "properties": {"live": {"type": "boolean"}}}},
    "required": ["symbol"]}}}]
INSTRUCTION = ("You are an expert in composing functions.\n# Tools\n\n<tools>\n"
               + "\n".join(json.dumps(t) for t in QWEN_TOOLS) + "\n</tools>\n\nFor each function call ...")
HISTORY = ('Quote ABC please<|im_end|>\n<|im_start|>assistant\n<tool_call>\n{"name": "get_quote", "arguments": '
           '{"symbol": "ABC"}}\n</tool_call><|im_end|>\n<|im_start|>user\n<tool_response>\n{"price": 3}\n'
           '</tool_response><|im_end|>\n<|im_start|>assistant\nIt is 3.<|im_end|>\n<|im_start|>user\nAnd XYZ?')


def test_import_looptool23k_json_list(tmp_path):
    rows = [{"instruction": INSTRUCTION, "input": HISTORY,
             "output": '<tool_call>\n{"name": "get_quote", "arguments": {"symbol": "XYZ"}}\n</tool_call>'},
            {"instruction": INSTRUCTION, "input": "Hello", "output": "<think>hm</think>Which ticker do you mean?"},
            {"instruction": INSTRUCTION, "input": "x", "output": "<tool_call>\n{broken\n</tool_call>"},
            {"instruction": INSTRUCTION, "input": 5, "output": "y"}]
    path = tmp_path / "loop.json"
    path.write_text(json.dumps(rows))
    samples, rejected = import_file(path)
    assert [r[0] for r in rejected] == [f"{path}:item 3", f"{path}:item 4"]
    first, second = samples
    assert first.tools[0]["parameters"]["type"] == "dict"
    assert first.tools[0]["parameters"]["properties"]["opts"]["type"] == "dict"
    assert [m.role for m in first.messages] == ["user", "assistant", "tool", "assistant", "user"]
    assert first.messages[1].tool_calls[0].arguments == {"symbol": "ABC"}
    assert first.messages[2].name == "get_quote" and first.messages[2].content == '{"price": 3}'
    assert first.messages[-1].content == "And XYZ?" and first.label.calls[0].arguments == {"symbol": "XYZ"}
    assert second.label.text == "Which ticker do you mean?" and second.source == "seed:looptool23k"
    assert validate(first) == [] and first.meta["origin"] == f"{path}:item 1"


def test_import_toolace_and_xlam_jsonl_with_bad_rows(tmp_path):
    system = ('You can call functions. Here is a list of functions in JSON format that you can invoke:\n'
              + json.dumps([{"name": "Weather_Api", "description": "w", "parameters": {"type": "dict",
                            "properties": {"city": {"type": "string"}}, "required": ["city"]}}]) + ". Answer.")
    good = {"system": system, "conversations": [
        {"from": "user", "value": "Weather in Oslo?"}, {"from": "assistant", "value": "[Weather_Api(city='Oslo')]"},
        {"from": "tool", "value": '[{"name": "Weather_Api", "results": {"t": 3}}]'},
        {"from": "assistant", "value": "It is 3 degrees in Oslo."}]}
    evil = {"system": system, "conversations": [{"from": "user", "value": "x"},
                                                {"from": "assistant", "value": "[Weather_Api(city=__import__('os'))]"}]}
    xlam = {"query": "Convert 12.5 USD to EUR", "answers": json.dumps([{"name": "cv", "arguments": {"amount": 12.5}}]),
            "tools": json.dumps([{"name": "cv", "description": "Convert.", "parameters": {
                "amount": {"type": "float", "description": "a"}, "to": {"type": "str, optional", "default": "EUR"}}}])}
    lines = [json.dumps(good), "{not json", json.dumps(evil), json.dumps(xlam),
             json.dumps({"query": "", "answers": "[]", "tools": "[]"}), json.dumps({"foo": 1}),
             json.dumps({**xlam, "answers": "[]"})]
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(lines) + "\n")
    samples, rejected = import_file(path)
    where = [w for w, _ in rejected]
    assert where == [f"{path}:2", f"{path}:3", f"{path}:5", f"{path}:6"]
    assert "not valid JSON" in rejected[0][1] and "not a literal" in rejected[1][1]
    assert "unknown row shape" in rejected[3][1]
    call_turn, text_turn, xl, refusal = samples
    assert call_turn.label.calls[0].arguments == {"city": "Oslo"} and len(call_turn.messages) == 1
    assert text_turn.label.text.startswith("It is 3") and [m.role for m in text_turn.messages] == ["user", "assistant", "tool"]
    assert text_turn.messages[2].name == "Weather_Api" and text_turn.id != call_turn.id
    assert xl.tools[0]["parameters"]["required"] == ["amount"]
    assert xl.tools[0]["parameters"]["properties"]["to"]["type"] == "string" and validate(xl) == []
    assert refusal.label.is_text
    assert import_file(path, "xlam")[1][0][0] == f"{path}:1"  # forced format: the ToolACE row is rejected


def test_import_native_format_and_hub(tmp_path):
    native = tmp_path / "native.jsonl"
    native.write_text(sample({"city": "Oslo", "nights": 1}).to_json() + "\n")
    (s,), rejected = import_file(native, "looptool")
    assert rejected == [] and s.id == "s1"
    with pytest.raises(UserError):
        import_file(tmp_path / "missing.json")
    hub_dir = tmp_path / "hub"
    hub_dir.mkdir()
    (hub_dir / "train.jsonl").write_text(json.dumps({"query": "q 1", "answers": "[]", "tools": "[]"}) + "\n")
    code = ("from core.seeds.importers import import_hub\nfrom core.errors import UserError\nimport sys\n"
            f"s, r = import_hub({str(hub_dir)!r}, 'xlam')\nassert len(s) == 1 and not r\n"
            "try:\n    import_hub('nobody/no-such-dataset')\nexcept UserError as e:\n    print('USERERROR', e)\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).parent.parent)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "USERERROR seeds.hub_id 'nobody/no-such-dataset': cannot load the dataset" in out.stdout


# --------------------------------------------------------------------------------------- synth

def test_catalogue_and_constraint_tree_sizes():
    assert len(DOMAINS) >= 8 and len(LEAVES) >= 40
    assert sum(len(v) for d in tree().values() for v in d.values()) == len(LEAVES)
    assert set(CONSTRAINT_TREE) == {"naming", "param_count", "type_focus", "description"}


def test_synthesize_is_deterministic_unique_valid_and_grounded():
    a = synthesize(300, seed=7, text_fraction=0.2, multi_turn_fraction=0.3)
    b = synthesize(300, seed=7, text_fraction=0.2, multi_turn_fraction=0.3)
    assert [s.to_json() for s in a] == [s.to_json() for s in b]
    assert synthesize(5, seed=8)[0].to_json() != a[0].to_json()
    assert len({s.id for s in a}) == 300 and a[12].id == "syn-7-12"
    assert all(validate(s) == [] for s in a)
    assert [s.id for s in a if ungrounded(s.label.tool_calls(), s)] == []
    assert sum(s.label.is_text for s in a) == 60
    multi = sum(any(m.role == "assistant" for m in s.messages) for s in a)
    assert multi == 90
    kinds = Counter(s.meta["kind"] for s in a)
    assert {"simple", "multiple", "parallel", "parallel_multiple", "sequential", "clarify_then_call",
            "follow_up", "clarify", "refuse"} <= set(kinds)
    parallel = next(s for s in a if s.meta["kind"] == "parallel")
    calls = parallel.label.calls
    assert len(calls) >= 2 and len({c.name for c in calls}) == 1 and calls[0].arguments != calls[1].arguments
    refuse = next(s for s in a if s.meta["kind"] == "refuse")
    assert refuse.label.is_text and ("tool" in refuse.label.text or "function" in refuse.label.text)
    names = {t["name"] for s in a for t in s.tools}
    assert any("." in n for n in names) and any(n != n.lower() for n in names) and any("_" in n for n in names)


def test_refusals_offer_same_domain_tools_when_asked():
    domain = {leaf.key: leaf.domain for leaf in LEAVES}

    def refusals(share):
        out = [s for s in synthesize(200, seed=3, text_fraction=0.5, refuse_share=1.0, refuse_same_domain=share)
               if s.meta["kind"].endswith("refuse")]
        assert len(out) == 100 and all(validate(s) == [] for s in out)
        return out

    def same(s):  # every tool offered is a sibling of the leaf the user asked for, and none is that leaf
        offered = set(s.meta["leaves"].values())
        return s.meta["asked"] not in offered and {domain[leaf] for leaf in offered} == {domain[s.meta["asked"]]}

    assert all(same(s) for s in refusals(1.0))
    assert not any(same(s) for s in refusals(0.0))
    assert 0.3 < sum(map(same, refusals(0.5))) / 100 < 0.7
    other = [{domain[leaf] for leaf in s.meta["leaves"].values()} for s in refusals(0.0)]
    assert all(domain[s.meta["asked"]] not in doms for s, doms in zip(refusals(0.0), other))


def _guard(acebench: bool = True) -> Guard:
    """BFCL's texts, and ACEBench's from the shared data folder (the registered benchmarks' own)."""
    from core.benchmarks import get

    cfg = parse(f'[run]\nname = "t"\n[eval]\nacebench_data_dir = "{ACEBENCH}"\n', "test config")
    return Guard([get("bfcl").eval_texts(cfg)] + ([get("acebench").eval_texts(cfg)] if acebench else []))


def test_no_synthesized_name_or_query_is_an_eval_one():
    guard = _guard()
    from core.seeds.contamination import name_key

    assert not [n for n in all_leaf_names() if name_key(n) in guard.names]
    kept, dropped = guard.drop_contaminated(synthesize(400, seed=1))
    assert len(kept) == 400 and dropped == {}


def test_make_api_and_spec_from_foreign_doc():
    import random

    api = make_api(random.Random(3))
    assert api.doc["parameters"]["type"] == "dict"
    assert set(api.doc["parameters"]["required"]) <= set(api.doc["parameters"]["properties"])
    foreign = {"name": "getStockNews", "description": "Retrieves news for a stock symbol.",
               "parameters": {"type": "dict", "required": ["symbol", "limit"], "properties": {
                   "symbol": {"type": "string"}, "limit": {"type": "integer"},
                   "sources": {"type": "array", "items": {"type": "string", "enum": ["wire", "blog"]}}}}}
    spec = spec_from_doc(foreign)
    assert spec.intents == ("retrieve news for a stock symbol",)
    rng = random.Random(0)
    values = {p.key: p.gen(rng) for p in spec.params}
    assert isinstance(values["limit"], int) and set(values["sources"]) <= {"wire", "blog"}


# ------------------------------------------------------------------------------- contamination

def test_guard_drops_samples_built_from_eval_entries():
    from evals.bfcl_data import load_category

    guard = _guard()
    entry = load_category("simple_python")[0]
    query = entry.question[0][-1]["content"]
    real = Sample(id="b", tools=entry.functions, messages=[Message(role="user", content=query)], label=Label(text="x"))
    assert guard.check(real) == "tool_name"
    renamed = [{**entry.functions[0], "name": "zz_renamed_tool"}]
    assert guard.check(real.model_copy(update={"tools": renamed})) == "query_exact"
    reworded = Sample(id="c", tools=renamed, messages=[Message(role="user", content="Hey! " + query.upper() + " Thanks")],
                      label=Label(text="x"))
    assert guard.check(reworded) in ("query_exact", "query_ngram")
    longer = Sample(id="d", tools=renamed, label=Label(text="x"),
                    messages=[Message(role="user", content="I was wondering: " + query + " Also tell me a joke.")])
    assert guard.check(longer) == "query_ngram"
    ace = json.loads(Path(ACEBENCH, "data_normal_single_turn_single_function.json").read_text().splitlines()[0])
    ace_query = ace["question"].split("user:", 1)[1].strip()
    ace_sample = Sample(id="e", tools=renamed, messages=[Message(role="user", content=ace_query)], label=Label(text="x"))
    assert guard.check(ace_sample) == "query_exact"
    assert _guard(acebench=False).check(ace_sample) is None
    kept, dropped = guard.drop_contaminated([real, ace_sample, *synthesize(20, seed=2)])
    assert len(kept) == 20 and dropped == {"tool_name": 1, "query_exact": 1}


def _ace_query() -> str:
    ace = json.loads(Path(ACEBENCH, "data_normal_single_turn_single_function.json").read_text().splitlines()[0])
    return ace["question"].split("user:", 1)[1].strip()


def _seed_file(path: Path, queries: list[str]) -> Path:
    rows = [{"query": q, "answers": [{"name": "cv", "arguments": {"amount": 2.5}}],
             "tools": [{"name": "cv", "description": "c", "parameters": {"amount": {"type": "float"}}}]}
            for q in queries]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def test_the_guard_a_real_run_builds_covers_acebench_from_its_download_folder(tmp_path, monkeypatch):
    """build_pool as the seed stage runs it, no data folder configured: ACEBench's checked copy in
    $LOOPTOOL_HOME (where the fetcher puts it, acebench/<commit>/data_en) is guarded against."""
    from evals.acebench import fetch
    from evals.bfcl_data import load_category

    monkeypatch.setenv("LOOPTOOL_HOME", str(tmp_path / "home"))
    bfcl_query = load_category("simple_python")[0].question[0][-1]["content"]
    seeds = _seed_file(tmp_path / "seeds.jsonl", [_ace_query(), bfcl_query, "Convert 2.5 USD to EUR"])
    cfg = _cfg(f'source = "file"\npath = "{seeds}"\n')
    stats = build_pool(cfg, tmp_path / "p0.jsonl")  # no ACEBench copy here: said, not silent
    assert stats["guard"]["bfcl"] == "guarded" and stats["guard"]["acebench"].startswith("not guarded: no checked")
    assert stats["contaminated_by_reason"] == {"query_exact": 1} and stats["kept"] == 2
    fetch.default_dir().parent.mkdir(parents=True)
    fetch.default_dir().symlink_to(Path(ACEBENCH).resolve(), target_is_directory=True)
    stats = build_pool(cfg, tmp_path / "p1.jsonl")
    assert stats["guard"] == {"bfcl": "guarded", "acebench": "guarded"}
    assert stats["contaminated_by_reason"] == {"query_exact": 2} and stats["kept"] == 1
    assert load_samples(tmp_path / "p1.jsonl")[0].messages[-1].content == "Convert 2.5 USD to EUR"


# ---------------------------------------------------------------------------------------- pool

def _cfg(extra: str = ""):
    return parse('[run]\nname = "t"\nseed = 5\n[seeds]\npool_size = 60\n' + extra, "test config")


def test_build_pool_procedural_is_deterministic(tmp_path):
    stats = build_pool(_cfg(), tmp_path / "a" / "pool.jsonl")
    assert stats["kept"] == 60 and stats["rejected"] == 0 and stats["contaminated"] == 0
    assert stats["generated"] >= 60
    pool = load_samples(tmp_path / "a" / "pool.jsonl")
    assert len({s.id for s in pool}) == 60 and all(validate(s) == [] for s in pool)
    build_pool(_cfg(), tmp_path / "b.jsonl")
    assert (tmp_path / "b.jsonl").read_text() == (tmp_path / "a" / "pool.jsonl").read_text()


def test_build_pool_from_file_reports_rejects(tmp_path):
    rows = [{"query": f"Convert {i}.5 USD to EUR", "answers": [{"name": "cv", "arguments": {"amount": i + 0.5}}],
             "tools": [{"name": "cv", "description": "c", "parameters": {"amount": {"type": "float"}}}]} for i in range(4)]
    rows.append({**rows[0]})  # a duplicate
    rows.append({**rows[0], "answers": [{"name": "cv", "arguments": {"amount": "lots"}}]})  # fails the rules
    rows.append({"query": "x"})  # unknown shape
    path = tmp_path / "seeds.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    stats = build_pool(_cfg(f'source = "file"\npath = "{path}"\ncontamination_guard = false\n'), tmp_path / "p.jsonl")
    assert stats["generated"] == 7 and stats["rejected"] == 2 and stats["duplicates"] == 1 and stats["kept"] == 4
    assert stats["rejected_first"][0].startswith(f"{path}:7: unknown row shape")
    assert stats["rejected_first"][1] == f"{path}:6: label: cv.amount: expected float, got string"
    with pytest.raises(UserError, match="hub_id"):
        build_pool(_cfg('source = "hub"\n'), tmp_path / "h.jsonl")
    with pytest.raises(UserError, match="expand.llm"):
        build_pool(_cfg('source = "llm"\n'), tmp_path / "l.jsonl")


@pytest.mark.slow
def test_synthesize_llm_with_the_embedded_model_counts_rejects(hf_backend):
    samples, stats = synthesize_llm(hf_backend, n=2, seed=0, max_new_tokens=16, retries=0)
    assert stats["requested"] == 2 and stats["accepted"] + stats["rejected"] == 2
    assert sum(stats["reasons"].values()) == stats["rejected"] and len(samples) == stats["accepted"]
    assert all(validate(s) == [] for s in samples)
