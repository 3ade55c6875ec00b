"""ACEBench in the per-iteration eval when its data cannot be had: offline and without eval.acebench_data_dir
the eval stage still writes the BFCL summary, says why in ``skipped`` and warns; the failure is
fast (no model loaded, no minutes-long network wait); every other error still fails. BFCL's run_eval and
the model backend are stand-ins here; the ACEBench data lookup and download code are real."""
from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

import core.backends
import evals.bfcl
from core import config
from core.benchmarks import BenchmarkUnavailable, EvalRequest
from core.errors import UserError
from core.stages.base import StageContext
from core.weights import Weights
from evals.acebench import fetch, plugin

DATA = Path(__file__).parents[1].parent / "shared" / "acebench" / "data_en"


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """An empty $LOOPTOOL_HOME and a download URL where nothing listens (refused at once, as offline)."""
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("LOOPTOOL_HOME", str(tmp_path / "home"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv(fetch.URL_ENV, f"http://127.0.0.1:{port}")


@pytest.fixture
def no_model(monkeypatch):
    def load_backend_stand_in(kind, model, **options):
        raise AssertionError("no model may be loaded when ACEBench is skipped")

    monkeypatch.setattr(core.backends, "load_backend", load_backend_stand_in)


def test_cpu_demo_presets_evaluate_an_acebench_subset():
    for preset in ("cpu-demo", "cpu-demo-static"):
        e = config.load(preset).eval
        assert e.acebench and e.acebench_categories == "normal,special"
        assert e.acebench_per_category and e.acebench_max_new_tokens <= 128 and e.acebench_data_dir is None
        assert e.bfcl_per_category == 50


def _evaluate(cfg):
    return plugin.BENCHMARK.evaluate(EvalRequest(cfg=cfg, weights=Weights("base")))


def test_unavailable_data_says_the_way_to_get_it(offline, no_model):
    started = time.monotonic()
    with pytest.raises(BenchmarkUnavailable) as err:
        _evaluate(config.load("cpu-demo"))
    assert time.monotonic() - started < 10
    why = str(err.value)
    assert why.startswith("ACEBench data unavailable (cannot download ACEBench data")
    assert "eval.acebench_data_dir = PATH" in why and "python -m evals.acebench.fetch" in why
    assert "looptool eval acebench" in why and str(fetch.default_dir()) in why


def test_a_wrong_configured_data_dir_fails_loudly(tmp_path, no_model):
    cfg = config.load("cpu-demo")
    cfg.eval.acebench_data_dir = str(tmp_path / "nope")
    with pytest.raises(UserError, match="no such directory") as err:
        _evaluate(cfg)
    assert not isinstance(err.value, (fetch.DataUnavailable, BenchmarkUnavailable))


def test_an_unreachable_server_fails_within_the_connect_timeout(tmp_path):
    """A listener whose accept queue is full drops further SYNs, as a firewall does: connect hangs."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        port = server.getsockname()[1]
        fillers = []
        for _ in range(4):  # fill the accept queue (never accepted)
            c = socket.socket()
            c.setblocking(False)
            c.connect_ex(("127.0.0.1", port))
            fillers.append(c)
        time.sleep(0.1)
        started = time.monotonic()
        try:
            with pytest.raises(fetch.DataUnavailable):
                fetch.download(tmp_path / "d", base_url=f"http://127.0.0.1:{port}", connect_timeout=0.5)
        finally:
            for c in fillers:
                c.close()
        assert time.monotonic() - started < 5


def _eval_stage(cfg, tmp_path, monkeypatch):
    """The eval stage (core/stages/eval.py) at iteration 0 with stand-ins for BFCL's run_eval and the backend."""
    from core.stages import eval as eval_stage

    class BackendStandIn:
        def close(self):
            pass

    def run_eval_stand_in(ecfg, backend, **kw):
        return {"eval_id": "bfcl-standin", "benchmark": "bfcl-v3", "scores": {"overall": 0.25},
                "per_category": {"irrelevance": {"correct": 1, "total": 4, "accuracy": 0.25}}}

    loads = []
    monkeypatch.setattr(core.backends, "load_backend", lambda kind, model, **o: loads.append(model) or BackendStandIn())
    monkeypatch.setattr(evals.bfcl, "run_eval", run_eval_stand_in)
    events = []
    ctx = StageContext(cfg=cfg, run_dir=tmp_path / "run", iteration=0, model_path="base",
                       emit=lambda kind, data: events.append((kind, data)))
    return eval_stage.run(ctx), events, loads, ctx


def test_eval_stage_writes_bfcl_and_the_skip_reason_offline(offline, tmp_path, monkeypatch):
    result, events, loads, ctx = _eval_stage(config.load("cpu-demo"), tmp_path, monkeypatch)
    assert loads == ["base"]  # BFCL's backend only
    assert result["summaries"]["bfcl"]["eval_id"] == "bfcl-standin" and "acebench" not in result["summaries"]
    assert result["skipped"]["acebench"].startswith("ACEBench data unavailable")
    done = json.loads((ctx.iter_dir / "eval.done").read_text())
    assert done == json.loads(json.dumps(result)) and done["summaries"]["bfcl"]["scores"] == {"overall": 0.25}
    assert done["wall_s"] >= 0
    warnings = [d for kind, d in events if kind == "event" and d.get("event") == "warning"]
    assert len(warnings) == 1 and warnings[0]["message"] == result["skipped"]["acebench"]
    assert warnings[0]["stage"] == "eval" and warnings[0]["benchmark"] == "acebench"
    from core.engine import brief_stats

    brief = brief_stats("eval", result)  # what the console and the iteration record get
    assert brief["scores"] == {"overall": 0.25} and brief["acebench_skipped"] == result["skipped"]["acebench"]


def test_eval_stage_still_fails_on_other_acebench_errors(offline, tmp_path, monkeypatch):
    def broken(request):
        raise RuntimeError("scorer crashed")

    monkeypatch.setattr(plugin.BENCHMARK, "evaluate", broken)
    with pytest.raises(RuntimeError, match="scorer crashed"):
        _eval_stage(config.load("cpu-demo"), tmp_path, monkeypatch)


def test_eval_stage_with_a_data_dir_evaluates_acebench(tmp_path, monkeypatch):
    """With eval.acebench_data_dir the ACEBench summary is its own record and nothing is skipped."""
    cfg = config.load("cpu-demo")
    cfg.eval.acebench_data_dir = str(DATA)
    seen = {}

    def run_stand_in(request):
        seen["request"] = request
        return {"eval_id": "acebench-standin", "benchmark": "acebench", "scores": {"overall": 0.1}}

    monkeypatch.setattr(plugin.BENCHMARK, "evaluate", run_stand_in)
    result, events, _, _ = _eval_stage(cfg, tmp_path, monkeypatch)
    assert seen["request"].weights == Weights("base") and result["skipped"] == {}
    ace = result["summaries"]["acebench"]
    assert ace["eval_id"] == "acebench-standin" and ace["iteration"] == 0
    assert not [d for kind, d in events if kind == "event" and d.get("event") == "warning"]


def test_fetch_command_downloads_into_the_cache(tmp_path, monkeypatch, capsys):
    """``python -m evals.acebench.fetch``, the command acebench_skipped names, against a local mirror."""
    import functools
    import http.server
    import threading

    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    served = tmp_path / "mirror"
    (served / "data_all").mkdir(parents=True)
    (served / "data_all" / "data_en").symlink_to(DATA, target_is_directory=True)
    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(QuietHandler, directory=str(served)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("LOOPTOOL_HOME", str(tmp_path / "home"))
        monkeypatch.setenv(fetch.URL_ENV, f"http://127.0.0.1:{server.server_address[1]}")
        fetch.main([])
    finally:
        server.shutdown()
        server.server_close()
    assert capsys.readouterr().out.strip() == str(fetch.default_dir())
    assert not fetch.problems(fetch.default_dir())
    with pytest.raises(SystemExit, match="usage"):
        fetch.main(["--download"])
