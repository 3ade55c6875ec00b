"""Assembly of D_{j+1}: the paper's Table 3 schedule, the trimming rules, static mode, the stage files."""
from __future__ import annotations

import json
import random
from collections import Counter

import pytest

from core.config import RunConfig
from core.schema import Call, Label, Message, Sample, load_samples, write_samples
from core.stages import assemble as asm
from core.stages.base import StageContext, is_done

FRESH = [5632, 2816, 1408]


def cfg(budget=18304, fresh=FRESH, k=4, static=False, rule="top_ppl_fill") -> RunConfig:
    return RunConfig.model_validate({"run": {"name": "t"}, "expand": {"k": k}, "probe": {"hppl_rule": rule},
                                     "assemble": {"budget": budget, "fresh_seeds": fresh, "static": static}})


def text_sample(i: str, source: str = "seed:test", parent: str | None = None) -> Sample:
    return Sample(id=i, tools=[], messages=[Message(role="user", content="q " + i)], label=Label(text="a"),
                  source=source, parent=parent)


def world(es: int, ee: int, mastered: int, pool: int, label_wrong: int = 0, k: int = 4, no_ppl: int = 0,
          seed: int = 0):
    """D_j with `es` error seeds (the first `label_wrong` of them LABEL_WRONG), `mastered` mastered
    samples with distinct PPLs (+ `no_ppl` mastered without a PPL), some BOTH_WRONG; `ee` expansions
    spread as evenly as possible over the seeds (at most k each); a pool of `pool` unused seeds."""
    rng = random.Random(seed)
    dataset, probe, judge = [], [], []
    for n in range(es):
        s = text_sample(f"e{n}")
        dataset.append(s)
        probe.append({"id": s.id, "mastered": False, "ppl": 2.0})
        if n < label_wrong:
            fixed = s.model_copy(update={"label": Label(calls=[Call(name="f")]), "source": "relabel",
                                         "parent": s.id})
            judge.append({"id": s.id, "verdict": "LABEL_WRONG", "relabel": json.loads(fixed.to_json())})
        else:
            judge.append({"id": s.id, "verdict": "PRED_WRONG"})
    ppls = rng.sample(range(1000, 1000 + 10 * mastered), mastered)
    for n in range(mastered):
        dataset.append(text_sample(f"m{n}"))
        probe.append({"id": f"m{n}", "mastered": True, "ppl": ppls[n] / 1000})
    for n in range(no_ppl):
        dataset.append(text_sample(f"q{n}"))
        probe.append({"id": f"q{n}", "mastered": True, "ppl": None})
    for n in range(5):
        dataset.append(text_sample(f"w{n}"))
        probe.append({"id": f"w{n}", "mastered": False, "ppl": 3.0})
        judge.append({"id": f"w{n}", "verdict": "BOTH_WRONG"})
    per = [ee // es + (1 if n < ee % es else 0) for n in range(es)] if es else []
    assert all(p <= k for p in per)
    expansions = [text_sample(f"x{n}-{c}", "expand", f"e{n}") for n in range(es) for c in range(per[n])]
    pool_samples = [text_sample(f"p{n}") for n in range(pool)]
    return pool_samples, dataset, probe, judge, expansions


# Table 3 of the paper: (next iteration, ES, EE, HPPL, fresh seeds)
TABLE3 = [(2, 1919, 6566, 4187, 5632), (3, 3386, 8066, 4036, 2816), (4, 3731, 8169, 4996, 1408)]


@pytest.mark.parametrize("j1, es, ee, hppl, fresh", TABLE3)
def test_schedule_reproduces_table3(j1, es, ee, hppl, fresh):
    c = asm.schedule(18304, es, cfg().assemble.fresh_for(j1), ee, hppl=10_000, pool=20_000)
    assert (c["error_seeds"], c["expansions"], c["high_ppl"], c["fresh_seeds"]) == (es, ee, hppl, fresh)
    assert c["topped_up"] == c["shortfall"] == 0


@pytest.mark.parametrize("j1, es, ee, hppl, fresh", TABLE3)
def test_assemble_reproduces_table3(j1, es, ee, hppl, fresh):
    pool, dataset, probe, judge, expansions = world(es, ee, mastered=6000, pool=6000, label_wrong=100)
    samples, comp = asm.assemble(cfg(), j1, pool, dataset, probe, judge, expansions, random.Random(1))
    assert (comp["error_seeds"], comp["expansions"], comp["high_ppl"], comp["fresh_seeds"]) == (es, ee, hppl, fresh)
    assert comp["total"] == len(samples) == comp["budget"] == 18304 and comp["topped_up"] == 0
    assert comp["error_seeds_label_wrong"] == 100 and comp["shortfall"] == 0
    assert sum(comp["pct"].values()) == pytest.approx(100, abs=0.05)
    assert len({s.id for s in samples}) == len(samples)
    sets = Counter(s.meta["set"] for s in samples)
    assert sets == {"ES": es, "EE": ee, "HPPL": hppl, "fresh": fresh}
    # HPPL = the highest-PPL mastered samples; relabelled seeds carry their new label
    ppl = {r["id"]: r["ppl"] for r in probe}
    chosen = [ppl[s.id] for s in samples if s.meta["set"] == "HPPL"]
    taken = {x.id for x in samples}
    left = [ppl[s.id] for s in dataset if s.id.startswith("m") and s.id not in taken]
    assert min(chosen) > max(left)
    relabelled = [s for s in samples if s.source == "relabel"]
    assert len(relabelled) == 100 and all(s.label.calls for s in relabelled)
    assert all(s.id.startswith("p") for s in samples if s.meta["set"] == "fresh")


def test_table3_d2_percentages():
    pool, dataset, probe, judge, expansions = world(1919, 6566, mastered=5000, pool=6000)
    _, comp = asm.assemble(cfg(), 2, pool, dataset, probe, judge, expansions, random.Random(0))
    assert comp["pct"] == {"error_seeds": 10.48, "expansions": 35.87, "high_ppl": 22.87, "fresh_seeds": 30.77,
                           "topped_up": 0.0}


def test_ee_is_capped_at_k_per_seed_and_trimmed_per_seed_uniformly():
    # seeds e0..e3 with 10, 4, 2, 1 expansions; k = 4 caps them at 4, 4, 2, 1 = 11
    groups = {"e0": 10, "e1": 4, "e2": 2, "e3": 1}
    assert asm.ee_quota(groups, 4, 100, random.Random(0)) == {"e0": 4, "e1": 4, "e2": 2, "e3": 1}
    q = asm.ee_quota(groups, 4, 6, random.Random(0))  # 6 slots: one each, +1 for two of e0/e1/e2
    assert sum(q.values()) == 6 and q["e3"] == 1 and sorted(q.values()) == [1, 1, 2, 2]
    q = asm.ee_quota(groups, 4, 9, random.Random(0))  # cap 2 gives 7; +1 for two of e0 / e1
    assert q["e2"] == 2 and q["e3"] == 1 and q["e0"] == q["e1"] == 3
    # through assemble: budget 14 = 4 ES + 4 fresh + 6 EE, no HPPL room
    dataset = [text_sample(f"e{n}") for n in range(4)]
    judge = [{"id": s.id, "verdict": "PRED_WRONG"} for s in dataset]
    probe = [{"id": s.id, "mastered": False, "ppl": 2.0} for s in dataset]
    expansions = [text_sample(f"x{p}-{c}", "expand", p) for p, n in groups.items() for c in range(n)]
    pool = [text_sample(f"p{n}") for n in range(10)]
    samples, comp = asm.assemble(cfg(14, [4]), 2, pool, dataset, probe, judge, expansions, random.Random(3))
    per_seed = Counter(s.parent for s in samples if s.meta["set"] == "EE")
    assert comp["expansions"] == 6 and comp["high_ppl"] == 0 and comp["total"] == 14
    assert per_seed["e3"] == 1 and sorted(per_seed.values()) == [1, 1, 2, 2]


def test_es_overflow_is_subsampled_to_the_budget():
    pool, dataset, probe, judge, expansions = world(30, 60, mastered=20, pool=50)
    samples, comp = asm.assemble(cfg(12, [4]), 2, pool, dataset, probe, judge, expansions, random.Random(0))
    assert comp["error_seeds"] == comp["total"] == 12 and comp["error_seeds_available"] == 30
    assert comp["fresh_seeds"] == comp["expansions"] == comp["high_ppl"] == 0
    assert all(s.id.startswith("e") for s in samples) and len({s.id for s in samples}) == 12


def test_max_error_seeds_leaves_room_for_expansions():
    # the cpu-demo's situation: 67 error seeds would fill a budget of 96 with fresh seeds alone
    pool, dataset, probe, judge, expansions = world(67, 268, mastered=29, pool=300)
    c = cfg(96, [32])
    c.assemble.max_error_seeds = 16
    samples, comp = asm.assemble(c, 2, pool, dataset, probe, judge, expansions, random.Random(0))
    assert (comp["error_seeds"], comp["fresh_seeds"], comp["expansions"], comp["high_ppl"]) == (16, 32, 48, 0)
    assert comp["total"] == 96 and comp["error_seeds_available"] == 67
    es = [s for s in samples if s.meta["set"] == "ES"]
    assert len(es) == 16 and all(s.id.startswith("e") for s in es)
    per_seed = Counter(s.parent for s in samples if s.meta["set"] == "EE")
    assert max(per_seed.values()) == 1 and len(per_seed) == 48  # spread over 48 different seeds
    c.assemble.max_error_seeds = None  # the paper: every error seed
    _, comp = asm.assemble(c, 2, pool, dataset, probe, judge, expansions, random.Random(0))
    assert (comp["error_seeds"], comp["fresh_seeds"], comp["expansions"]) == (67, 29, 0)


def test_hppl_shortfall_tops_up_with_mastered_then_fresh():
    # 2 ES + 4 fresh + 2 EE + 5 HPPL + 3 mastered without PPL = 16; 4 more fresh reach the budget 20
    pool, dataset, probe, judge, expansions = world(2, 2, mastered=5, pool=8, no_ppl=3)
    samples, comp = asm.assemble(cfg(20, [4]), 2, pool, dataset, probe, judge, expansions, random.Random(0))
    assert (comp["error_seeds"], comp["fresh_seeds"], comp["expansions"], comp["high_ppl"]) == (2, 4, 2, 5)
    assert comp["topped_up_mastered"] == 3 and comp["topped_up_fresh"] == 4 and comp["topped_up"] == 7
    assert comp["total"] == 20 and comp["shortfall"] == 0
    assert {s.id for s in samples if s.meta["set"] == "HPPL"} == {f"m{n}" for n in range(5)}
    # the pool runs dry: the set stays short and says so
    pool, dataset, probe, judge, expansions = world(2, 2, mastered=5, pool=5)
    samples, comp = asm.assemble(cfg(20, [4]), 2, pool, dataset, probe, judge, expansions, random.Random(0))
    assert comp["total"] == len(samples) == 14 and comp["shortfall"] == 6 and comp["topped_up_fresh"] == 1


def test_hppl_rule_none_uses_random_mastered():
    pool, dataset, probe, judge, expansions = world(2, 0, mastered=10, pool=10)
    samples, comp = asm.assemble(cfg(10, [4], rule="none"), 2, pool, dataset, probe, judge, expansions,
                                 random.Random(0))
    assert comp["high_ppl"] == 0 and comp["topped_up_mastered"] == 4 and comp["total"] == 10


def test_both_correct_counts_as_mastered_and_k0_removes_ee():
    pool, dataset, probe, judge, expansions = world(2, 4, mastered=0, pool=10)
    judge.append({"id": "w0", "verdict": "BOTH_CORRECT"})
    judge[:] = [r for r in judge if not (r["id"] == "w0" and r["verdict"] == "BOTH_WRONG")]
    samples, comp = asm.assemble(cfg(20, [4], k=0), 2, pool, dataset, probe, judge, expansions,
                                 random.Random(0))
    assert comp["expansions"] == 0 and comp["high_ppl"] == 1
    assert [s.id for s in samples if s.meta["set"] == "HPPL"] == ["w0"]


def test_static_mode_is_fresh_seeds_only():
    pool, dataset, probe, judge, expansions = world(5, 10, mastered=10, pool=40)
    samples, comp = asm.assemble(cfg(16, [4], static=True), 2, pool, dataset, probe, judge, expansions,
                                 random.Random(0))
    assert comp["fresh_seeds"] == comp["total"] == 16 and comp["static"] is True
    assert all(s.id.startswith("p") for s in samples)
    # a pool too small: the rest is re-drawn from D_j
    samples, comp = asm.assemble(cfg(16, [4], static=True), 2, pool[:10], dataset, probe, judge, expansions,
                                 random.Random(0))
    assert comp["fresh_seeds"] == 10 and comp["topped_up_reused"] == 6 and comp["total"] == 16


def test_same_rng_same_dataset():
    args = world(20, 50, mastered=30, pool=30)
    a = asm.assemble(cfg(60, [10]), 2, *args, random.Random(7))
    b = asm.assemble(cfg(60, [10]), 2, *args, random.Random(7))
    assert [s.id for s in a[0]] == [s.id for s in b[0]] and a[1] == b[1]


def test_run_reads_the_iteration_files_and_writes_the_next_dataset(tmp_path):
    pool, dataset, probe, judge, expansions = world(3, 6, mastered=10, pool=12, label_wrong=1)
    write_samples(tmp_path / "pool.jsonl", pool + dataset)  # D_1 came from the pool
    it1 = tmp_path / "iter-1"
    it1.mkdir()
    write_samples(it1 / "dataset.jsonl", dataset)
    for name, recs in (("probe.jsonl", probe), ("judge.jsonl", judge)):
        (it1 / name).write_text("".join(json.dumps(r) + "\n" for r in recs))
    (it1 / "expand.jsonl").write_text("".join(s.to_json() + "\n" for s in expansions) + '{"not": "a sample"}\n')
    ctx = StageContext(cfg=cfg(24, [5]), run_dir=tmp_path, iteration=1, model_path="unused")
    comp = asm.run(ctx)
    written = load_samples(tmp_path / "iter-2" / "dataset.jsonl")
    assert len(written) == comp["total"] == 24 and comp["expansions_unreadable"] == 1
    assert (comp["error_seeds"], comp["fresh_seeds"], comp["expansions"], comp["high_ppl"]) == (3, 5, 6, 10)
    assert json.loads((it1 / "composition.json").read_text()) == comp == is_done(it1, "assemble")
    ids = {s.id for s in written}
    assert not ids & {s.id for s in dataset if s.id.startswith("w")}  # BOTH_WRONG left out
    fresh = [s for s in written if s.meta["set"] == "fresh"]
    assert all(s.id.startswith("p") for s in fresh)  # never a pool sample that was in D_1
    assert next(s for s in written if s.id == "e0").source == "relabel"
    assert not list(tmp_path.glob("iter-2/*.tmp"))


def _call_only_world(text_expansions: int, pool_text: int):
    """An error-driven D_2 of calls only (the keep_text_share tests): 6 call error seeds, 12 call expansions
    (+ `text_expansions` text ones), 8 text mastered, a pool of 10 call + `pool_text` text seeds; budget
    24 = 6 ES + 6 fresh + 12 EE, text_fraction 0.5."""
    def call_sample(i, parent=None):
        return text_sample(i, "expand" if parent else "seed:test", parent).model_copy(
            update={"label": Label(calls=[Call(name="f")])})
    dataset = [call_sample(f"e{n}") for n in range(6)] + [text_sample(f"m{n}") for n in range(8)]
    probe = [{"id": f"e{n}", "mastered": False, "ppl": 2.0} for n in range(6)]
    probe += [{"id": f"m{n}", "mastered": True, "ppl": 1 + n / 10} for n in range(8)]
    judge = [{"id": f"e{n}", "verdict": "PRED_WRONG"} for n in range(6)]
    expansions = [call_sample(f"x{n}-{c}", f"e{n}") for n in range(6) for c in range(2)]
    expansions += [text_sample(f"t{n}", "expand", f"e{n}") for n in range(text_expansions)]
    pool = [call_sample(f"pc{n}") for n in range(10)] + [text_sample(f"pt{n}") for n in range(pool_text)]
    run_cfg = cfg(24, [6])
    run_cfg.seeds.text_fraction = 0.5
    return dataset, probe, judge, expansions, pool, run_cfg


def test_keep_text_share_swaps_calls_for_left_out_text_samples():
    # an error-driven D_2 of calls only: 6 call error seeds, 12 call + 6 text expansions, 8 text
    # mastered, a pool of 10 call + 10 text seeds; budget 24 = 6 ES + 6 fresh + 12 EE
    dataset, probe, judge, expansions, pool, run_cfg = _call_only_world(text_expansions=6, pool_text=10)
    before, comp0 = asm.assemble(run_cfg, 2, pool, dataset, probe, judge, expansions, random.Random(0))
    assert "text_share" not in comp0  # off by default (the paper)
    run_cfg.assemble.keep_text_share = True
    samples, comp = asm.assemble(run_cfg, 2, pool, dataset, probe, judge, expansions, random.Random(0))
    text = [s for s in samples if s.label.is_text]
    assert len(samples) == 24 and len(text) == 12 > sum(s.label.is_text for s in before)
    assert comp["error_seeds"] == 6 and all(not s.label.is_text for s in samples if s.meta["set"] == "ES")
    ts = comp["text_share"]
    assert ts["text_before"] == sum(s.label.is_text for s in before) and ts["text_shortfall"] == 0
    assert sum(ts["text_added"].values()) == sum(ts["calls_removed"].values()) == 12 - ts["text_before"]
    # mastered text first (HPPL, highest PPL first), then text expansions; never an error seed out
    need = 12 - ts["text_before"]
    assert ts["text_added"] == ({"HPPL": 8, "EE": need - 8} if need > 8 else {"HPPL": need})
    hp = {s.id for s in text if s.meta["set"] == "HPPL"}
    assert hp == {f"m{n}" for n in range(8 - min(need, 8), 8)}  # the highest PPLs (m7 = 1.7)
    assert ts["calls_removed"].get("fresh", 0) == sum(not s.label.is_text for s in before if s.meta["set"] == "fresh")
    assert len({s.id for s in samples}) == 24


def test_keep_text_share_from_fresh_pool_seeds_first():
    # as above, with assemble.text_fill = "fresh": the text labels that join are new pool refusals,
    # not repeats of D_j's mastered ones, and the error seeds stay
    dataset, probe, judge, expansions, pool, run_cfg = _call_only_world(text_expansions=0, pool_text=20)
    run_cfg.assemble.keep_text_share = True
    run_cfg.assemble.text_fill = "fresh"
    samples, comp = asm.assemble(run_cfg, 2, pool, dataset, probe, judge, expansions, random.Random(0))
    ts = comp["text_share"]
    text = [s for s in samples if s.label.is_text]
    assert len(samples) == 24 and len(text) == 12 and ts["text_shortfall"] == 0
    need = 12 - ts["text_before"]
    assert need > 0 and ts["text_added"] == {"fresh": need}
    added = [s for s in text if s.id.startswith("pt")]
    assert len(added) >= need and all(s.meta["set"] == "fresh" for s in added)
    assert comp["error_seeds"] == 6 and len({s.id for s in samples}) == 24
