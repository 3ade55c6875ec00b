"""The judge's and the generator's servers as the engine runs them (`serve = true`, core/servers.py): started
once for the judge and expand stages of an iteration and reused, stopped before train and when the run
stops, dying with a SIGKILLed core, ended at the next start when something of them was left, a log each,
and a server that never becomes healthy paused with a fault naming its log.

This machine has no GPU and no vllm: `vllm serve` is stood in for by the project's own OpenAI-compatible
test server run as a real process (tests/stand_in_server.py, in serve_command), and the stages by
stand-ins that write their done markers (tests/fault_workers.py) after asking whether a server answers
at the served address. No model is loaded.
"""
from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from core import config, preflight
from core.errors import UserError
from core.servers import find_program, marked_processes, needed_for, served

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
STAND_IN = TESTS / "stand_in_server.py"
STAND_IN_COMMAND = [sys.executable, str(STAND_IN), "--port", "{port}", "--model-name", "{model}"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def served_config(tmp_path: Path, port: int, iterations: int = 3, command=None, both: str = "",
                  judge_extra: str = "", expand_served: bool = True):
    """tests/data/tiny-run.toml on a local model directory (no stage here loads it), without evaluation,
    with the LLM judge and the LLM generator both served at 127.0.0.1:`port` by `command` (keys `both`
    in both sections, `judge_extra` in the judge's only)."""
    model = tmp_path / "model"
    model.mkdir(exist_ok=True)
    (model / "config.json").write_text("{}")
    section = (f'model = "judge-model"\nbase_url = "http://127.0.0.1:{port}/v1"\n'
               f"serve_command = {json.dumps(command or STAND_IN_COMMAND)}\n{both}")
    served = "serve = true\n"
    text = (TESTS / "data" / "tiny-run.toml").read_text()
    for old, new in [('name = "embedded"', f'name = "{model}"'), ("iterations = 2", f"iterations = {iterations}"),
                     ('[judge]\nkind = "rule"', f'[judge]\nkind = "llm"\n[judge.llm]\n{section}{served}{judge_extra}'),
                     ('generator = "procedural"',
                      f'generator = "llm"\n[expand.llm]\n{section}{served if expand_served else ""}'),
                     ("bfcl_max_new_tokens = 8", "bfcl_max_new_tokens = 8\nafter_each_iteration = false")]:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return config.parse(text, "served-run.toml")


def stage_asking_the_served_address(cfg_text, run_dir, stage, iteration, queue, pause, stop) -> None:
    """Stands in for a stage worker (spawned by the real engine): appends to run_dir/seen.jsonl whether
    the served model answers at the judge's address (its /v1/models), then finishes as
    tests/fault_workers.py's stand-in does."""
    from fault_workers import stage_stand_in

    url = config.parse(cfg_text, "run config").judge.llm.base_url
    try:
        served = [m["id"] for m in httpx.get(f"{url}/models", timeout=5, trust_env=False).json()["data"]]
    except httpx.HTTPError:
        served = None
    with open(Path(run_dir) / "seen.jsonl", "a") as fh:
        fh.write(json.dumps({"stage": stage, "iteration": iteration, "served": served}) + "\n")
    stage_stand_in(cfg_text, run_dir, stage, iteration, queue, pause, stop)


def new_engine(cfg, run_id: str, on_event=None):
    from core.engine import Engine

    engine = Engine(cfg, run_id)
    engine.stage_target = stage_asking_the_served_address
    events: list[dict] = []

    def on(kind, data):
        if kind == "event":
            events.append(data)
            if on_event is not None:
                on_event(engine, data)

    engine.subscribe(on)
    return engine, events


def run(engine) -> str:
    return asyncio.run(asyncio.wait_for(engine.run(), 300))  # a guard against a hang, not a time limit


def seen(engine) -> list[dict]:
    return [json.loads(line) for line in (engine.run_dir / "seen.jsonl").read_text().splitlines()]


def answers(port: int) -> bool:
    try:
        httpx.get(f"http://127.0.0.1:{port}/health", timeout=2, trust_env=False)
        return True
    except httpx.HTTPError:
        return False


def named(events: list[dict], *names: str) -> list[dict]:
    return [e for e in events if e["event"] in names]


# -- the engine with the stand-in server -----------------------------------------------------------------

def test_stand_in_server_started_once_per_iteration_for_judge_and_expand_and_stopped_before_train(tmp_path):
    port = free_port()
    cfg = served_config(tmp_path, port, iterations=3, both="serve_gpus = [3, 5]\n")
    engine, events = new_engine(cfg, "served-lifecycle")
    assert run(engine) == "finished"

    answered = {(s["stage"], s["iteration"]): s["served"] for s in seen(engine)}
    up = ("judge", "expand", "assemble")  # started for judge, reused by expand, stopped before train
    assert answered == {("seed", 1): None, **{(stage, j): (["judge-model"] if stage in up else None)
                                              for j in (1, 2) for stage in ("train", "probe", *up)},
                        ("train", 3): None}, answered
    assert [(e["stage"], e["iteration"]) for e in named(events, "server_started")] == [("judge", 1), ("judge", 2)]
    assert [(e["key"], e["started_for"], e["stage"]) for e in named(events, "server_reused")] == \
        [("expand.llm", "judge.llm", "expand")] * 2
    first, second = named(events, "server_started")
    assert first["pid"] != second["pid"]

    order = [(e["event"], e.get("stage"), e.get("iteration")) for e in
             named(events, "stage_started", "server_started", "server_stopped")]
    for j in (1, 2):  # judge and expand of one iteration share one server process, stopped before train
        i = order.index(("server_started", "judge", j))
        assert order[i + 1:i + 5] == [("stage_started", "judge", j), ("stage_started", "expand", j),
                                      ("stage_started", "assemble", j), ("server_stopped", None, None)]
        assert order[i + 5] == ("stage_started", "train", j + 1)
    assert [e["why"] for e in named(events, "server_stopped")] == ["before train", "before train"]

    for j, started in ((1, first), (2, second)):  # one log per start: the command line, the server's output
        log = engine.run_dir / "servers" / f"judge.llm-judge-{j}.log"
        assert started["log"] == str(log)
        lines = log.read_text().splitlines()
        assert lines[0].startswith("# ") and " start: " in lines[0] and "CUDA_VISIBLE_DEVICES=3,5" in lines[0]
        assert f"{STAND_IN} --port {port} --model-name judge-model" in lines[0]
        assert lines[1] == f"serving judge-model on http://127.0.0.1:{port}"
        assert lines[-1].startswith("# ") and " stopped: " in lines[-1]
    assert not answers(port) and not marked_processes(engine.run_dir)


def test_stand_in_server_and_its_child_process_are_stopped_when_the_engine_stops(tmp_path):
    port = free_port()

    def stop_once_served(engine, event):
        if event["event"] == "server_started":
            engine.stop()

    cfg = served_config(tmp_path, port, iterations=2, command=[*STAND_IN_COMMAND, "--grandchild"])
    engine, events = new_engine(cfg, "served-stop", stop_once_served)
    assert run(engine) == "stopped"
    assert [e["event"] for e in named(events, "server_started", "server_stopped", "run_stopped")] == \
        ["server_started", "server_stopped", "run_stopped"]
    assert named(events, "server_stopped")[0]["why"] == "the run stopped"
    assert "judge" not in [s["stage"] for s in seen(engine)]  # the stop came before the judge stage started
    assert not answers(port) and not marked_processes(engine.run_dir)  # its tensor-parallel worker's stand-in too


def test_stand_in_server_that_never_becomes_healthy_pauses_the_run_with_a_fault_naming_its_log(tmp_path):
    port = free_port()
    cfg = served_config(tmp_path, port, iterations=2, command=[*STAND_IN_COMMAND, "--unhealthy"],
                        judge_extra="serve_timeout_s = 1.5\n")

    def stop_on_fault(engine, event):
        if event["event"] == "fault":
            assert engine.state["state"] == "paused"
            engine.stop()

    engine, events = new_engine(cfg, "served-unhealthy", stop_on_fault)
    assert run(engine) == "stopped"
    log = engine.run_dir / "servers" / "judge.llm-judge-1.log"
    fault, = named(events, "fault")
    assert fault["where"] == "judge.llm's server for stage judge (iteration 1)"
    assert f"not healthy at http://127.0.0.1:{port}/health after 1.5 s" in fault["message"]
    assert str(log) in fault["message"] and str(log) in fault["hint"]
    assert " start: " in fault["message"]  # the log's tail: its first line names the command
    assert named(events, "server_stopped")[0]["why"] == "not healthy"
    assert "judge" not in [s["stage"] for s in seen(engine)]
    assert not answers(port) and not marked_processes(engine.run_dir)


def test_stand_in_server_that_exits_while_starting_is_a_fault_with_its_log_tail(tmp_path):
    port = free_port()
    exits = [*STAND_IN_COMMAND, "--say", "CUDA error: no CUDA-capable device is detected", "--exit-after", "0",
             "--exit-code", "3"]

    def stop_on_fault(engine, event):
        if event["event"] == "fault":
            engine.stop()

    engine, events = new_engine(served_config(tmp_path, port, iterations=2, command=exits), "served-exits",
                                stop_on_fault)
    assert run(engine) == "stopped"
    fault, = named(events, "fault")
    assert "exited with code 3 before it was healthy" in fault["message"]
    assert "CUDA error: no CUDA-capable device is detected" in fault["message"]
    assert str(engine.run_dir / "servers" / "judge.llm-judge-1.log") in fault["message"]
    assert not marked_processes(engine.run_dir)


def test_stand_in_server_is_reused_only_when_started_the_same_way(tmp_path):
    port = free_port()
    cfg = served_config(tmp_path, port, iterations=2, judge_extra="serve_gpus = [1]\n")  # expand.llm: no GPUs
    engine, events = new_engine(cfg, "served-two-ways")
    assert run(engine) == "finished"
    answered = {(s["stage"], s["iteration"]): s["served"] for s in seen(engine)}
    assert answered[("judge", 1)] == answered[("expand", 1)] == ["judge-model"]
    started = named(events, "server_started")
    assert [(e["key"], e["stage"]) for e in started] == [("judge.llm", "judge"), ("expand.llm", "expand")]
    assert started[0]["pid"] != started[1]["pid"]
    assert [e["why"] for e in named(events, "server_stopped")] == ["expand uses another server", "before train"]
    assert not named(events, "server_reused") and not marked_processes(engine.run_dir)


# -- a killed core ---------------------------------------------------------------------------------------

KILLED_CORE = textwrap.dedent("""
    import asyncio, json, os, signal, sys
    sys.path[:0] = [{tests!r}, {root!r}]
    from core.config import parse
    from core.engine import Engine
    from fault_workers import stage_stand_in

    if __name__ == "__main__":  # (spawned workers import this file again)
        engine = Engine(parse(open(sys.argv[2]).read(), "run config"), "served-killed")
        engine.stage_target = stage_stand_in

        def on(kind, data):
            if kind != "event":
                return
            if data["event"] == "servers_left_over":
                print(json.dumps(data["pids"]), flush=True)
            if sys.argv[1] == "kill" and data["event"] == "server_started":
                print(data["pid"], flush=True)
                os.kill(os.getpid(), signal.SIGKILL)  # the core dies while its server runs

        engine.subscribe(on)
        print(asyncio.run(engine.run()))
""")


def test_stand_in_server_dies_with_a_sigkilled_core_and_the_resumed_run_ends_what_it_left(tmp_path):
    """The server dies with its core; the process it started (vllm's tensor-parallel workers do that) is
    ended by the resumed run, before it serves the model again."""
    from core.servers import end_marked_processes

    port = free_port()
    home = tmp_path / "home"
    run_dir = home / "runs" / "served-killed"
    config_file = tmp_path / "run.toml"
    config_file.write_text(served_config(tmp_path, port, iterations=2,
                                         command=[*STAND_IN_COMMAND, "--grandchild"]).text)
    script = tmp_path / "core_process.py"
    script.write_text(KILLED_CORE.format(tests=str(TESTS), root=str(ROOT)))
    env = {**os.environ, "LOOPTOOL_HOME": str(home), "PYTHONPATH": str(ROOT)}

    def core_process(mode: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(script), mode, str(config_file)], env=env, capture_output=True,
                              text=True, timeout=300)

    try:
        killed = core_process("kill")
        assert killed.returncode == -signal.SIGKILL, killed.stderr
        server = int(killed.stdout.split()[0])
        log = run_dir / "servers" / "judge.llm-judge-1.log"
        worker = int(log.read_text().split("grandchild pid ")[1].split()[0])
        deadline = time.monotonic() + 10  # (the dead are not listed: a zombie's environment reads empty)
        while (server in marked_processes(run_dir) or answers(port)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not answers(port) and marked_processes(run_dir) == {worker}, "the server outlived its core"
        # what it started lives on, marked as the run's

        resumed = core_process("resume")
        assert resumed.returncode == 0, resumed.stderr
        left_over, final = resumed.stdout.split()
        assert json.loads(left_over) == [worker] and final == "finished"
        assert (run_dir / "iter-1" / "expand.done").exists()
        assert log.read_text().count(" start: ") == 2  # the killed core's start, and the resumed run's
        assert not marked_processes(run_dir) and not answers(port)
    finally:
        end_marked_processes(run_dir, grace_s=1)


# -- which stage needs which server; the configuration; config check --------------------------------------

def test_each_stage_needs_the_server_of_the_section_it_reads(tmp_path):
    cfg = served_config(tmp_path, 8123)
    assert [needed_for(cfg, stage) is not None for stage in ("seed", "train", "probe", "judge", "expand",
                                                             "assemble")] == [False, False, False, True, True, False]
    assert needed_for(cfg, "judge").key == "judge.llm" and needed_for(cfg, "expand").key == "expand.llm"
    assert needed_for(cfg, "judge").health_url == "http://127.0.0.1:8123/health"
    assert needed_for(cfg, "judge").argv[2:] == ("--port", "8123", "--model-name", "judge-model")
    assert [(spec.key, stages) for spec, stages in served(cfg)] == [("judge.llm", ["judge", "expand"])]

    seeded = config.parse(cfg.text.replace('source = "procedural"', 'source = "llm"'), "run.toml")
    assert needed_for(seeded, "seed").key == "expand.llm"  # core.seeds.pool: expand.llm, else judge.llm
    only_expand_served = served_config(tmp_path, 8123, expand_served=False)
    assert needed_for(only_expand_served, "expand") is None
    rule_judge = config.parse(cfg.text.replace('kind = "llm"', 'kind = "rule"'), "run.toml")
    assert needed_for(rule_judge, "judge") is None  # judge.llm serve = true, but no stage uses it


def test_serve_defaults_to_vllm_on_the_papers_address():
    cfg = config.parse('[run]\nname = "t"\n[judge]\nkind = "llm"\n[judge.llm]\nmodel = "Qwen/Qwen3-32B"\n'
                       "serve = true\nserve_gpus = [4, 5, 6, 7]\n", "run.toml")
    assert cfg.judge.llm.base_url == "http://127.0.0.1:8001/v1"
    spec = needed_for(cfg, "judge")
    assert Path(spec.argv[0]).name == "vllm" and spec.argv[1:] == (
        "serve", "Qwen/Qwen3-32B", "--host", "127.0.0.1", "--port", "8001", "--tensor-parallel-size", "4")
    assert spec.gpus == (4, 5, 6, 7) and spec.timeout_s == 900


BASE = '[run]\nname = "t"\n[judge]\nkind = "llm"\n[judge.llm]\nmodel = "m"\n'


@pytest.mark.parametrize("keys, message", [
    ('serve = true\nbackend = "hf"', "judge.llm: serve = true needs backend = 'openai'"),
    ('serve = true\nbase_url = "http://10.0.0.7:8001/v1"',
     "judge.llm: base_url: 'http://10.0.0.7:8001/v1': a served model needs http://HOST:PORT with HOST one of this "
     "machine's"),
    ('serve = true\nbase_url = "http://127.0.0.1/v1"', "judge.llm: base_url: 'http://127.0.0.1/v1': a served model"),
    ('serve = true\nbase_url = "https://localhost:8001/v1"', "judge.llm: base_url: 'https://localhost:8001/v1'"),
    ('serve = true\nbase_url = "http://127.0.0.1:99999/v1"', "judge.llm: base_url: Port out of range"),
    ('serve_command = ["vllm", "serve", "{model}", "--port", "{prot}"]',
     "judge.llm.serve_command: '{prot}': unknown placeholder {prot}; use {gpu_count}, {host}, {model}, {port}"),
    ('serve_command = ["vllm", "--json", "{x"]', "judge.llm.serve_command: '{x': expected '}' before end of string"),
    ("serve_command = []", "judge.llm.serve_command: List should have at least 1 item"),
    ("serve_gpus = [0, 0]", "judge.llm.serve_gpus: a GPU is named twice"),
    ("serve_gpus = []", "judge.llm.serve_gpus: List should have at least 1 item"),
    ("serve_gpus = [-1]", "judge.llm.serve_gpus.0: Input should be greater than or equal to 0"),
    ('serve_gpus = "0,1"', "judge.llm.serve_gpus: Input should be a valid list"),
    ("serve_timeout_s = 0", "judge.llm.serve_timeout_s: Input should be greater than 0"),
    ('serve = "yes"', "judge.llm.serve: Input should be a valid boolean"),
    ("serve_port = 8001", "judge.llm.serve_port: unknown key"),
])
def test_serve_keys_are_checked_with_their_key_paths(keys, message):
    with pytest.raises(UserError) as e:
        config.parse(f"{BASE}{keys}\n", "run.toml")
    assert str(e.value).startswith(f"run.toml: {message}"), str(e.value)


PRESET = config.preset_text("cpu-demo")


def served_preset(command: list[str] | None = None, gpus: str = "") -> config.RunConfig:
    judge = 'kind = "llm"\n[judge.llm]\nmodel = "Qwen/Qwen3-32B"\nserve = true\n'
    judge += f"serve_command = {json.dumps(command)}\n" if command else ""
    return config.parse(PRESET.replace('kind = "rule"', judge + gpus), "run.toml")


@pytest.mark.skipif(find_program("vllm") is not None, reason="vllm is installed here")
def test_config_check_says_when_the_default_serve_command_has_no_vllm():
    with pytest.raises(UserError) as e:
        preflight.check_run(served_preset(), "run.toml")
    assert str(e.value) == ("run.toml: judge.llm.serve: its server is `vllm serve` (serve_command), and vllm is not "
                            "installed here: install the gpu extra (pip install 'looptool[gpu]'), or set "
                            "judge.llm.serve_command, or serve = false and start the server yourself")


@pytest.mark.skipif(find_program("vllm") is not None, reason="vllm is installed here")
def test_config_check_without_vllm_is_one_error_line_and_exit_code_2(tmp_path):
    f = tmp_path / "run.toml"
    f.write_text(served_preset().text)
    p = subprocess.run([sys.executable, "-m", "console.cli", "config", "check", str(f)], capture_output=True,
                       text=True, timeout=300, cwd=ROOT)
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert p.returncode == 2 and len(lines) == 1, p.stderr
    assert lines[0].startswith(f"error: {f}: judge.llm.serve: its server is `vllm serve`")


def test_config_check_names_a_serve_command_that_is_not_installed_and_gpus_that_are_not_there():
    with pytest.raises(UserError, match=r"^run.toml: judge.llm.serve_command: 'no-such-server' is not a program"):
        preflight.check_run(served_preset(["no-such-server", "{model}"]), "run.toml")
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    with pytest.raises(UserError, match=rf"^run.toml: judge.llm.serve_gpus: GPU {count + 1}: this machine has "):
        preflight.check_run(served_preset(STAND_IN_COMMAND, f"serve_gpus = [0, {count + 1}]\n"), "run.toml")


def test_config_check_says_how_the_served_model_runs():
    notes = preflight.check_run(served_preset(STAND_IN_COMMAND), "run.toml")
    note, = [n for n in notes if n.startswith("judge.llm.serve:")]
    assert note == (f"judge.llm.serve: the engine runs `{sys.executable} {STAND_IN} --port 8001 --model-name "
                    "Qwen/Qwen3-32B` for judge at http://127.0.0.1:8001/v1, and stops it before train, eval and "
                    "probe")
