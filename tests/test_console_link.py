"""The link's parsing and command state machine, the telemetry folding (on the daemon's real field
names), the keymap file and core discovery -- no Textual app needed."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from console.link import LinkError
from console.memlink import MemoryLink
from console.telemetry import BFCL_V3_CATEGORY_COUNT, Telemetry, history_rows, pct, previous
from core import busproto as bp
from core.errors import UserError


def connected_link(**kw) -> MemoryLink:
    link = MemoryLink(**kw)
    link.set_connected(True)
    return link


def test_command_lifecycle_and_acks_for_others_ignored():
    link = connected_link(ack_timeout=2.0)
    posted = []
    link.attach(posted.append)
    pc = link.send("pause")
    assert pc.state == "pending" and link.open_commands() == [pc]
    link.on_message(f"looptool/v1/test-core/ack/someone-else", bp.Ack(id=pc.id, status="done").dump())
    assert pc.state == "pending"
    link.feed_ack(pc.id, "accepted")
    assert pc.state == "accepted" and not pc.finished
    link.feed_ack(pc.id, "done", "paused")
    assert pc.state == "done" and pc.finished and pc.detail == "paused" and link.open_commands() == []
    link.feed_ack(pc.id, "failed")  # duplicate/late delivery after the final ack
    assert pc.state == "done"
    link.feed_ack("f" * 32, "done")  # an ack for a command this console never sent
    assert [type(m).__name__ for m in posted].count("CommandUpdated") == 3
    pc2 = link.send("resume")
    assert link.expire(pc2.sent_at + 1.9) == [] and link.expire(pc2.sent_at + 2.0) == [pc2]
    assert pc2.state == "unconfirmed" and "no ack after 2s" in pc2.detail


def test_read_only_link_never_publishes():
    link = connected_link(read_only=True)
    for verb in bp.VERBS:
        with pytest.raises(LinkError, match="read-only"):
            link.send(verb)
    assert link.published == [] and link.commands == {}


def test_coalescing_posts_one_message_per_kind_until_released():
    link = connected_link()
    posted = []
    link.attach(posted.append)
    for i in range(100):
        link.feed_metrics("throughput", stage="probe", tok_s=float(i))
        link.feed_status(state="running", seq=i)
        link.feed_event("probe_info", n=i)
    kinds = [type(m).__name__ for m in posted]
    assert kinds.count("MetricsReceived") == 1 and kinds.count("StatusChanged") == 1
    assert kinds.count("EventRaised") == 1
    assert link.status.seq == 99 and link.telemetry.series["tok_s"][-1] == 99.0
    link.release("metrics")
    link.feed_metrics("throughput", stage="probe", tok_s=1.0)
    assert [type(m).__name__ for m in posted].count("MetricsReceived") == 2


def test_other_cores_and_bad_payloads():
    link = connected_link()
    link.on_message("looptool/v1/other-core/status", bp.Status(core_id="other-core", seq=5).dump())
    assert link.status is None
    for topic, raw, msg in [
        ("looptool/v1/test-core/status", b"[]", "expected a JSON object"),
        ("looptool/v1/test-core/status", b'{"core_id": "test-core", "state": "dancing"}', "state"),
        ("looptool/v1/test-core/online", b"yes", "expected true or false"),
        ("looptool/v1/test-core/metrics/gpu", b'{"stream": "gpu"}', "stream"),
        ("looptool/v1/test-core/events", b'{"ts": 1}', "event: Field required"),
        ("looptool/v1/test-core/run/r1/config", b"\xff", "looptool/v1/test-core/run/r1/config"),
    ]:
        link.on_message(topic, raw)
        assert topic in link.last_bad and msg in link.last_bad, (link.last_bad, msg)
    assert link.bad_total == 6
    link.on_message("looptool/v1/test-core/online", b"false", True)
    assert link.core_online is False
    link.on_message("looptool/v1/test-core/online", b"", True)
    assert link.core_online is None


def test_stale_needs_an_active_run_and_a_status_that_stops_moving():
    link = connected_link()
    assert not link.is_stale(1.0, time.monotonic() + 100)  # no status yet
    link.feed_status(state="running", seq=1)
    t0 = link.status_advanced_at
    assert not link.is_stale(5.0, t0 + 4.9) and link.is_stale(5.0, t0 + 5.1)
    link.feed_status(state="running", seq=1)  # same seq: not an advance
    assert link.status_advanced_at == t0
    link.feed_status(state="finished", seq=2)
    assert not link.is_stale(5.0, time.monotonic() + 100)
    link.feed_status(state="running", seq=3)
    link.set_online(False)
    assert not link.is_stale(5.0, time.monotonic() + 100)


def test_telemetry_folds_the_daemons_payloads():
    """Field names as core/daemon.py publishes them."""
    tel = Telemetry()
    tel.absorb_metrics(bp.Metrics(stream="throughput", stage="probe", iteration=1, tok_s=812.5, samples_s=3.5))
    tel.absorb_metrics(bp.Metrics(stream="train", stage="train", iteration=1, step=3, loss=1.25, reward_mean=0.4))
    tel.absorb_metrics(bp.Metrics(stream="accuracy", stage="eval", iteration=1, benchmark="bfcl-v3",
                                  scores={"overall": 0.31, "live": 0.2, "per_category": {}}))
    tel.absorb_metrics(bp.Metrics(stream="accuracy", stage="eval", iteration=1, benchmark="acebench",
                                  scores={"normal": 0.5, "agent": 0.1, "overall": 0.4}))
    tel.absorb_metrics(bp.Metrics(stream="hardware", cpu_pct=50.0, ram_pct=20.0, gpus=[]))
    tel.absorb_event(bp.Event(event="dataset_composition", stage="assemble", iteration=1, error_seeds=4,
                              expansions=16, high_ppl=2, fresh_seeds=30, topped_up=0, total=52))
    tel.absorb_event(bp.Event(event="stage_finished", stage="judge", iteration=1, wall_s=3.2,
                              stats={"verdicts": {"PRED_WRONG": 3, "LABEL_WRONG": 1}, "label_corrections": 1}))
    line = tel.absorb_event(bp.Event(event="eval_done", iteration=2, benchmark="bfcl-v3",
                                     scores={"overall": 0.35}))
    line_err = tel.absorb_event(bp.Event(event="error", stage="train", iteration=2,
                                         traceback="Traceback...\nRuntimeError: CUDA out of memory"))
    assert list(tel.series["tok_s"]) == [812.5] and list(tel.series["samples_s"]) == [3.5]
    assert list(tel.series["loss"]) == [1.25] and list(tel.series["reward"]) == [0.4]
    assert tel.accuracy[1] == {"bfcl": {"overall": 0.31, "live": 0.2},
                               "acebench": {"normal": 0.5, "agent": 0.1, "overall": 0.4}}
    assert tel.accuracy[2]["bfcl"] == {"overall": 0.35}
    assert tel.composition[1] == {"error_seeds": 4, "expansions": 16, "high_ppl": 2, "fresh_seeds": 30,
                                  "topped_up": 0, "total": 52}
    assert tel.judge[1] == {"verdicts": {"PRED_WRONG": 3, "LABEL_WRONG": 1}, "label_corrections": 1}
    assert tel.hardware["cpu_pct"] == 50.0
    assert line.name == "eval_done" and "benchmark=bfcl-v3" in line.text
    assert line_err.severity == "error" and "CUDA out of memory" in line_err.text
    assert tel.events_total == 4


def test_history_replies_fill_the_per_iteration_tables():
    tel = Telemetry()
    reply = {"table": "iterations", "run_id": "r", "rows": [
        {"run_id": "r", "iteration": 2, "eval": {"scores": {"overall": 0.5}},
         "assemble": {"error_seeds": 1, "total": 10}, "judge": {"verdicts": {"BOTH_WRONG": 2}}},
        "not a row", {"iteration": "x"}]}
    tel.absorb_history("iterations", reply)
    assert tel.accuracy == {2: {"bfcl": {"overall": 0.5}}}
    assert tel.composition == {2: {"error_seeds": 1, "total": 10}}
    assert tel.judge[2]["verdicts"] == {"BOTH_WRONG": 2}
    assert history_rows([{"a": 1}, 3]) == [{"a": 1}] and history_rows("nope") == []
    assert pct(0.2345) == "23.4" and pct(45.0) == "45.0" and pct(None) == "-"


def _cat(correct, total, errors=None):
    out = {"correct": correct, "total": total, "accuracy": correct / total}
    if errors is not None:
        out["error_types"] = errors
    return out


def test_held_out_eval_counts_come_from_the_runs_own_eval_only():
    tel = Telemetry()
    per = {"simple_python": _cat(12, 50, {"value_error:string": 30, "type_error:simple": 8}),
           "multiple": _cat(3, 50), "irrelevance": _cat(25, 25, {}), "broken": {"correct": "x"}}
    tel.absorb_event(bp.Event(event="stage_finished", stage="eval", iteration=0, stats={
        "eval_id": "bfcl-0", "scores": {"overall": 0.067}, "per_category": per, "acebench_skipped": "offline"}))
    held = tel.heldout[0]
    assert (held.correct, held.total, round(held.accuracy, 4), held.overall) == (40, 125, 0.32, 0.067)
    assert set(held.per_category) == {"simple_python", "multiple", "irrelevance"}  # "broken" has no counts
    assert held.per_category["multiple"]["error_types"] == {}  # error_types is optional
    assert held.partial and held.top_errors(2) == [("simple_python", "value_error:string", 30),
                                                   ("simple_python", "type_error:simple", 8)]
    assert tel.accuracy[0] == {"bfcl": {"overall": 0.067}} and tel.acebench_skipped == {0: "offline"}
    # the daemon's accuracy metric and eval_done for the same eval carry scores only
    tel.absorb_metrics(bp.Metrics(stream="accuracy", stage="eval", iteration=0, benchmark="bfcl-v3",
                                  scores={"overall": 0.067}))
    tel.absorb_event(bp.Event(event="eval_done", iteration=0, benchmark="bfcl-v3", scores={"overall": 0.067}))
    assert tel.heldout[0] is held
    # an on-demand eval's subset is the operator's, not the run's held-out one
    tel.absorb_event(bp.Event(event="eval_done", iteration=1, benchmark="bfcl-v3", on_demand=True,
                              scores={"overall": 0.5}, per_category={"multiple": _cat(1, 2)}))
    assert 1 not in tel.heldout and tel.accuracy[1] == {"bfcl": {"overall": 0.5}}
    # every one of the 17 categories: not partial; a nested ACEBench brief lands under acebench
    from evals.bfcl_data import CATEGORIES

    assert BFCL_V3_CATEGORY_COUNT == len(CATEGORIES)  # the console's count of the v3 Overall's categories
    full = {c: _cat(1, 2) for c in CATEGORIES}
    tel.absorb_history("iterations", [{"iteration": 2, "eval": {"scores": {"overall": 0.5}, "per_category": full,
                                                                "acebench": {"scores": {"overall": 0.3}}}}])
    assert not tel.heldout[2].partial and tel.heldout[2].accuracy == 0.5
    assert tel.accuracy[2]["acebench"] == {"overall": 0.3}


def test_probe_stats_by_kind_and_failure_classes_are_kept_per_iteration():
    tel = Telemetry()
    stats = {"samples": 10, "mastered": 6, "mismatched": 4,
             "by_kind": {"simple": {"mastered": 5, "total": 6}, "refuse": {"mastered": 1, "total": 4},
                         "odd": {"total": 1}},
             "failure_classes": {"no_call": 0, "unexpected_call": 3, "wrong_value": 1, "bad": "x"},
             "by_kind_failures": {"refuse": {"unexpected_call": 3}, "simple": {"wrong_value": 1}},
             "unclassified": 0}
    tel.absorb_event(bp.Event(event="stage_finished", stage="probe", iteration=1, stats=stats))
    p = tel.probe[1]
    assert (p.samples, p.mastered) == (10, 6)
    assert p.by_kind == {"simple": {"mastered": 5, "total": 6}, "refuse": {"mastered": 1, "total": 4}}
    assert p.failure_classes == {"no_call": 0, "unexpected_call": 3, "wrong_value": 1}
    assert p.by_kind_failures == {"refuse": {"unexpected_call": 3}, "simple": {"wrong_value": 1}}
    # stats of a core from before the classes: counts only
    tel.absorb_history("iterations", [{"iteration": 2, "probe": {"samples": 8, "mastered": 8, "mismatched": 0}},
                                      {"iteration": 3, "probe": {"note": "no counts"}}])
    assert tel.probe[2].by_kind == {} and tel.probe[2].failure_classes == {} and 3 not in tel.probe
    assert previous(tel.probe, 2) == (1, p) and previous(tel.probe, 1) == (None, None)


def test_results_version_moves_only_when_a_table_changes():
    tel = Telemetry()
    probe = bp.Event(event="stage_finished", stage="probe", iteration=1,
                     stats={"samples": 2, "mastered": 1, "by_kind": {"simple": {"mastered": 1, "total": 2}}})
    tel.absorb_event(probe)
    v = tel.results_version
    tel.absorb_event(probe)  # a QoS 1 duplicate, or the same numbers again from history
    for i in range(100):
        tel.absorb_metrics(bp.Metrics(stream="throughput", stage="train", iteration=1, tok_s=float(i)))
    tel.absorb_metrics(bp.Metrics(stream="hardware", cpu_pct=5.0, gpus=[]))
    tel.absorb_event(bp.Event(event="probe_info", n=3))
    assert tel.results_version == v and tel.version > v
    tel.absorb_metrics(bp.Metrics(stream="accuracy", stage="eval", iteration=1, scores={"overall": 0.2}))
    assert tel.results_version == v + 1


# -- keymap -------------------------------------------------------------------------------------------

def test_keymap_file(tmp_path):
    from console.keymap import load_keymap

    p = tmp_path / "keymap.toml"
    assert load_keymap(p) == {}
    p.write_text('pause = "space"\ndetach = "ctrl+d, f10"\nhelp = "?"\n')
    assert load_keymap(p) == {"pause": "space", "detach": "ctrl+d,f10", "help": "?"}
    for text, msg in [
        ('pause = "space"\nreboot = "x"\n', f"{p}: reboot: unknown binding id; the ids are pause, evaluate"),
        ("pause = 3\n", f"{p}: pause: expected a key name"),
        ('pause = "e"\n', f"{p}: pause: key 'e' is bound to both pause and evaluate"),
        ('pause = "space"\nstop = "space"\n', "key 'space' is bound to both pause and stop"),
        ('pause = "space\n', f"{p}: "),
        ('pause = "x"\n[x\n', "line 2"),
    ]:
        p.write_text(text)
        with pytest.raises(UserError, match=None) as e:
            load_keymap(p)
        assert msg in str(e.value), (str(e.value), msg)


# -- discovery ----------------------------------------------------------------------------------------

def test_discovery_finds_live_cores_only(tmp_path, monkeypatch):
    monkeypatch.setenv("LOOPTOOL_HOME", str(tmp_path))
    from console.discovery import find_core, running_cores

    cores = tmp_path / "cores"
    with pytest.raises(UserError, match="no looptool core is running on this host"):
        find_core(None, None)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    cores.mkdir(exist_ok=True)
    (cores / "ghost.json").write_text(json.dumps({"core_id": "ghost", "url": "mqtt://127.0.0.1:1", "pid": dead.pid}))
    (cores / "junk.json").write_text("{not json")
    with pytest.raises(UserError, match="no looptool core is running"):
        find_core(None, None)
    (cores / "gpu0.json").write_text(json.dumps({"core_id": "gpu0", "url": "mqtt://127.0.0.1:1883",
                                                 "pid": os.getpid(), "run_id": "r1"}))
    assert find_core(None, None)["core_id"] == "gpu0"
    assert find_core("gpu0", None)["url"] == "mqtt://127.0.0.1:1883"
    with pytest.raises(UserError, match=r"--core-id ghost: no such core running on this host \(running: gpu0"):
        find_core("ghost", None)
    (cores / "gpu1.json").write_text(json.dumps({"core_id": "gpu1", "url": "mqtt://127.0.0.1:1884",
                                                 "pid": os.getpid(), "run_id": "r2"}))
    assert [d["core_id"] for d in running_cores()] == ["gpu0", "gpu1"]
    with pytest.raises(UserError, match=r"several cores are running \(gpu0 \(run r1\), gpu1 \(run r2\)\)"):
        find_core(None, None)
    with pytest.raises(UserError, match="--broker needs --core-id"):
        find_core(None, "mqtt://127.0.0.1:1883")
    assert find_core("far", "mqtt://127.0.0.1:1999") == {"core_id": "far", "url": "mqtt://127.0.0.1:1999",
                                                          "pid": None}


def test_exit_message_tells_how_to_reattach_or_that_the_core_is_gone():
    from console.app import exit_message

    link = connected_link()
    link.feed_status(run_id="r1", state="running", seq=1)
    assert exit_message(link, 4242).splitlines() == [
        "detached; core test-core keeps running.",
        "  reattach: looptool console --core-id test-core",
        "  stop it:  looptool stop --core-id test-core  (or s in the console, or kill -TERM 4242)"]
    link.feed_status(run_id="r1", state="finished", seq=2)  # `looptool run`: the core stays after the run
    assert exit_message(link, 4242).splitlines() == [
        "detached; core test-core finished run r1 and keeps serving (history, evals, looptool export r1).",
        "  reattach: looptool console --core-id test-core",
        "  stop it:  looptool stop --core-id test-core  (or s in the console, or kill -TERM 4242)"]
    link.feed_status(run_id="r1", state="stopped", seq=3)
    link.set_online(False)
    assert exit_message(link, 4242).splitlines() == [
        "core test-core is not running any more (run r1: stopped).",
        "  continue the run: looptool core --resume r1"]
