"""The `looptool` command line.

Every command has --help. Bad input ends with one `error: ...` line on stderr and exit code 2.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from core.errors import UserError

app = typer.Typer(help="looptool: close the data-training loop for tool-calling LLMs.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
eval_app = typer.Typer(help="Evaluate a model on a benchmark, or read stored evaluations.",
                       no_args_is_help=True)
app.add_typer(eval_app, name="eval")
runs_app = typer.Typer(help="Read the runs in the store.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")
config_app = typer.Typer(help="Run configurations and the shipped presets.", no_args_is_help=True)
app.add_typer(config_app, name="config")


@config_app.command("show")
def config_show(preset: str = typer.Argument(..., help="cpu-demo | cpu-demo-static | qwen3-8b-paper")):
    """Print a preset's TOML, to save and edit as your own run config."""
    from core.config import preset_text

    typer.echo(preset_text(preset), nl=False)


@config_app.command("check")
def config_check(path: Path = typer.Argument(..., help="A run config TOML file.")):
    """Validate a run config; errors name the key path."""
    from core.config import load

    cfg = load(str(path))
    typer.echo(f"{path}: ok (run {cfg.run.name}, {cfg.run.iterations} iterations, "
               f"methods {cfg.train.methods}, budget {cfg.assemble.budget})")


@app.command("core")
def core_cmd(
    config: Optional[str] = typer.Option(None, "--config", help="Run config TOML file or preset name."),
    resume: Optional[str] = typer.Option(None, "--resume", help="Continue this run id from its last "
                                         "completed unit (after a crash, kill -9 or stop)."),
    broker: Optional[str] = typer.Option(None, "--broker", help="MQTT broker URL mqtt://host:port (user "
                                         "and password: prefer --broker-credentials or LOOPTOOL_MQTT_USER/"
                                         "LOOPTOOL_MQTT_PASSWORD; a password in the URL shows in `ps`). "
                                         "Default: an embedded broker on 127.0.0.1."),
    broker_credentials: Optional[Path] = typer.Option(None, "--broker-credentials", help="A 0600 file "
                                                      "holding `user:password` for the broker."),
    core_id: Optional[str] = typer.Option(None, "--core-id", help="This core's id on the bus "
                                          "(default: the host name)."),
    stay: bool = typer.Option(False, "--stay", help="Keep serving the bus (status, evals, history) after "
                              "the run ends, until a stop command or SIGTERM."),
    paused: bool = typer.Option(False, "--paused", help="Start paused: nothing runs until a resume "
                                "(console, or kill -USR1 PID)."),
    no_bus: bool = typer.Option(False, "--no-bus", help="Headless only: no broker, no bus, progress lines."),
):
    """Run the loop and put it on the bus (printing progress lines too). Ctrl-C stops at the next safe
    point (training saves a checkpoint first); `kill -USR1 PID` pauses/resumes; `--resume RUN`
    continues a run."""
    from core.engine import Engine, new_run_id, run_dir_for
    from core.store import ResultStore
    from console.headless import LinePrinter, run_headless

    if (config is None) == (resume is None):
        raise UserError("give exactly one of --config FILE|PRESET or --resume RUN_ID")
    if no_bus and (broker or broker_credentials or core_id or stay):
        raise UserError("--no-bus runs without a bus: drop --broker/--broker-credentials/--core-id/--stay")
    if not no_bus:
        from core.daemon import daemon_options

        target, cid = daemon_options(broker, str(broker_credentials) if broker_credentials else None, core_id)
    if resume is not None:
        cfg_file = run_dir_for(resume) / "config.toml"
        if not cfg_file.exists():
            raise UserError(f"--resume {resume}: no such run (see `looptool runs list`)")
        text, run_id = cfg_file.read_text(), resume
    else:
        from core.config import PRESETS, load, preset_text

        cfg = load(config)
        text = preset_text(config) if config in PRESETS else Path(config).read_text()
        run_id = new_run_id(cfg)
    with ResultStore() as store:
        engine = Engine(text, run_id, store=store)
        typer.echo(f"run {run_id}: {engine.run_dir}")
        if paused:
            engine.pause()
        if no_bus:
            final = run_headless(engine)
        else:
            from core.daemon import run_daemon

            engine.subscribe(LinePrinter())
            final = run_daemon(engine, store, broker=target, core_id=cid, stay=stay, say=typer.echo)
    typer.echo(f"run {run_id}: {final}")
    if final == "stopped":
        typer.echo(f"continue it with: looptool core --resume {run_id}")
    raise typer.Exit(0 if final in ("finished", "stopped") else 1)


broker_app = typer.Typer(help="MQTT broker setup (mosquitto) for cores and consoles.", no_args_is_help=True)
app.add_typer(broker_app, name="broker")


@broker_app.command("config")
def broker_config(
    directory: Path = typer.Argument(..., help="Where to write mosquitto.conf, passwd, acl, credentials/."),
    port: int = typer.Option(1883, help="Listener port (always bound to 127.0.0.1)."),
    core_password_file: Optional[Path] = typer.Option(None, "--core-password-file", help="Use this "
                                                      "password for the core role (else generated)."),
    operator_password_file: Optional[Path] = typer.Option(None, "--operator-password-file"),
    viewer_password_file: Optional[Path] = typer.Option(None, "--viewer-password-file"),
    persistence: bool = typer.Option(False, help="Keep retained state across broker restarts."),
    root_user: bool = typer.Option(False, "--root-user", help="Write `user root` (throw-away CI only)."),
):
    """Write a mosquitto config: loopback listener, no anonymous access, users core/operator/viewer
    with an ACL (only operator and core may publish commands). Passwords go to DIR/credentials/<role>
    (0600, `role:password`, for --broker-credentials); nothing secret is printed."""
    from core.broker import _read_password_file, write_mosquitto_config

    given = {}
    for role, f in (("core", core_password_file), ("operator", operator_password_file),
                    ("viewer", viewer_password_file)):
        if f is not None:
            given[role] = _read_password_file(str(f), role)
    out = write_mosquitto_config(directory, port=port, persistence=persistence, passwords=given,
                                 root_user=root_user)
    typer.echo(f"config:      {out['config']}")
    typer.echo(f"passwords:   {out['passwd']} (hashed with {out['hashed_with']})")
    typer.echo(f"acl:         {out['acl']}")
    for role, p in out["credentials"].items():
        typer.echo(f"credentials: {p}  ({role})")
    if out["owner_note"]:
        typer.echo(f"note: {out['owner_note']}")
    typer.echo(f"start it:    mosquitto -c {out['config']}")
    typer.echo(f"core:        looptool core --config ... --broker mqtt://127.0.0.1:{port} "
               f"--broker-credentials {out['credentials']['core']}")


@runs_app.command("list")
def runs_list(json_out: bool = typer.Option(False, "--json", help="Print JSON.")):
    """Runs in the store, newest first."""
    from core.store import ResultStore

    with ResultStore() as store:
        rows = sorted(store.get_docs("runs"), key=lambda r: r.get("updated_at", ""), reverse=True)
    if json_out:
        typer.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        typer.echo(f"{r['run_id']}  {r['state']:9s}  {r.get('model', '')}  {r.get('run_dir', '')}")


@runs_app.command("show")
def runs_show(run_id: str = typer.Argument(..., help="Run id."),
              json_out: bool = typer.Option(False, "--json", help="Print JSON.")):
    """One run: per-iteration BFCL-v3 scores, dataset composition, judge verdicts, probe mastery per kind,
    failure classes, eval error types per category and the train curve."""
    from core.store import ResultStore

    with ResultStore() as store:
        runs = store.get_docs("runs", run_id=run_id)
        if not runs:
            raise UserError(f"no run {run_id!r} (see `looptool runs list`)")
        iters = sorted(store.get_docs("iterations", run_id=run_id), key=lambda d: d["iteration"])
        evals = [e for e in store.list_evals() if e.get("run_id") == run_id]
    evals = sorted(evals, key=lambda e: e.get("iteration", 0))
    from console.report import print_run, run_instruments

    doc = {"run": runs[0], "iterations": iters,
           "evals": [{"iteration": e.get("iteration"), "eval_id": e["eval_id"], "scores": e["scores"],
                      "accuracy": _subset_accuracy(e),
                      "error_types": {cat: c["error_types"] for cat, c in (e.get("per_category") or {}).items()
                                      if c.get("error_types")},
                      **({"acebench_skipped": e["acebench_skipped"]} if e.get("acebench_skipped") else {})}
                     for e in evals if e.get("benchmark") != "acebench"],
           "acebench": [{"iteration": e.get("iteration"), "eval_id": e["eval_id"], "scores": e["scores"]}
                        for e in evals if e.get("benchmark") == "acebench"]}
    doc["instruments"] = run_instruments(doc)
    if json_out:
        typer.echo(json.dumps(doc, indent=2))
        return

    print_run(doc)


@app.command("models")
def models_cmd(json_out: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")):
    """List the embedded model and the models configured in $LOOPTOOL_HOME/models.toml."""
    from core.models import list_models

    rows = list_models()
    if json_out:
        typer.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(title="models")
    for col in ("name", "ready", "path", "source"):
        t.add_column(col)
    for r in rows:
        t.add_row(r["name"], "yes" if r["ready"] else "converted on first use", r["path"], r["source"])
    Console().print(t)


DECODE_HELP = ("official (the benchmark's own decoding of prompt-mode replies: the leaderboard's verdicts) | "
               "lenient (recovers fenced, re-spaced and tuple replies, brackets inside strings; literals only). "
               "Both are scored; the other one is its own column.")


def _check_decode(decode: str) -> None:
    from evals.leaderboard_ast import DECODINGS

    if decode not in DECODINGS:
        raise UserError(f"--decode: unknown decoding {decode!r}; choose {' or '.join(DECODINGS)}")


@eval_app.command("bfcl")
def eval_bfcl(
    model: str = typer.Option("embedded", help="'embedded', a models.toml name, a local HF checkpoint "
                              "directory, or a hub id already in the local Hugging Face cache."),
    backend: str = typer.Option("hf", help="hf (transformers, CPU/CUDA) | vllm (gpu extra) | openai "
                                "(any OpenAI-compatible /v1/completions endpoint; needs --base-url)."),
    adapter: Optional[Path] = typer.Option(None, help="LoRA adapter directory to evaluate on top of the model."),
    mode: str = typer.Option("auto", help="prompt (BFCL system prompt, Python call list) | fc (tools via "
                             "the chat template, <tool_call> output) | auto (fc if the template renders tools)."),
    categories: str = typer.Option("all", help="Comma list of categories or groups: all, non_live, live, "
                                   "multi_turn, single_turn, simple_python, live_multiple, ..."),
    per_category: Optional[int] = typer.Option(None, min=1, help="Seeded, stable sample of N entries per category."),
    ids: Optional[str] = typer.Option(None, help="Comma list of entry ids to evaluate."),
    seed: int = typer.Option(0, help="Seed for --per-category sampling and for sampling decoding."),
    max_new_tokens: int = typer.Option(256, min=1, help="Generation budget per model step."),
    temperature: float = typer.Option(0.0, min=0.0, help="0 = greedy."),
    max_prompt_tokens: Optional[int] = typer.Option(None, min=1, help="Skip (score as "
                                                    "inference_error:prompt_too_long) prompts longer than this; "
                                                    "default: the model's context minus --max-new-tokens."),
    batch_size: int = typer.Option(8, min=1, help="Prompts per generate call (hf)."),
    device: str = typer.Option("auto", help="hf backend device: auto | cpu | cuda | cuda:N."),
    base_url: Optional[str] = typer.Option(None, help="openai backend: server URL, e.g. http://127.0.0.1:8000/v1."),
    tensor_parallel: int = typer.Option(1, min=1, help="vllm backend: tensor parallel size."),
    responses: Optional[Path] = typer.Option(None, help="Score this JSONL of pre-generated responses "
                                             "({id, result} per line); no model is loaded."),
    decode: str = typer.Option("official", help=DECODE_HELP),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    progress: bool = typer.Option(True, help="Show a progress bar on stderr."),
):
    """Evaluate on BFCL-v3 (bfcl-eval's data and checkers) and print per-category accuracy and the v3 Overall.

    Rerunning the same command resumes an interrupted evaluation from its records."""
    from core.store import ResultStore
    from evals import bfcl_data

    _check_decode(decode)
    cats = bfcl_data.parse_categories(categories)
    id_list = [s.strip() for s in ids.split(",") if s.strip()] if ids else None
    if responses is not None:
        from evals.bfcl_responses import score_file

        with ResultStore() as store:
            summary = score_file(responses, mode=mode, store=store, progress=progress, decoding=decode)
    else:
        from core.backends import load_backend
        from core.models import resolve
        from evals.bfcl import EvalConfig, run_eval

        if adapter is not None and not (adapter / "adapter_config.json").exists():
            raise UserError(f"--adapter {adapter}: no adapter_config.json there (not a peft LoRA adapter)")
        if backend not in ("hf", "vllm", "openai"):
            raise UserError(f"--backend: unknown backend {backend!r}; choose hf, vllm or openai")
        if backend == "openai" and not base_url:
            raise UserError("--backend openai needs --base-url (e.g. http://127.0.0.1:8000/v1)")
        bfcl_data.select(cats, per_category, id_list, seed)  # validate ids before loading a model
        options = {"hf": {"batch_size": batch_size, "device": device},
                   "vllm": {"tensor_parallel_size": tensor_parallel, "enable_lora": adapter is not None},
                   "openai": {"base_url": base_url}}[backend]
        if backend == "openai":
            # the server knows the model by the name given; prompts are rendered with its tokenizer
            ref = model
            options["tokenizer"] = _local_tokenizer(model)
        else:
            ref = resolve(model).path
        engine = load_backend(backend, ref, **options)
        cfg = EvalConfig(model=model, backend=backend, adapter=str(adapter.resolve()) if adapter else None,
                         mode=mode, categories=cats, per_category=per_category, ids=id_list, seed=seed,
                         max_new_tokens=max_new_tokens, temperature=temperature,
                         max_prompt_tokens=max_prompt_tokens, decoding=decode)
        try:
            with ResultStore() as store:
                summary = run_eval(cfg, engine, store=store, progress=progress)
        finally:
            engine.close()
    _show(summary, json_out)


@eval_app.command("acebench")
def eval_acebench(
    model: str = typer.Option("embedded", help="'embedded', a models.toml name, a local HF checkpoint "
                              "directory, or a hub id already in the local Hugging Face cache."),
    backend: str = typer.Option("hf", help="hf (transformers, CPU/CUDA) | vllm (gpu extra) | openai "
                                "(any OpenAI-compatible /v1/completions endpoint; needs --base-url)."),
    adapter: Optional[Path] = typer.Option(None, help="LoRA adapter directory to evaluate on top of the model."),
    mode: str = typer.Option("auto", help="prompt (call format in the system prompt, [Api(k='v')] replies) | "
                             "fc (functions as tools via the chat template, <tool_call> output) | auto."),
    categories: str = typer.Option("all", help="Comma list of categories or groups: all, normal, atom, "
                                   "single_turn, multi_turn, special, agent, normal_atom_bool, agent_multi_step, ..."),
    per_category: Optional[int] = typer.Option(None, min=1, help="Seeded, stable sample of N scored items per "
                                               "category (dialogues in the multi-turn files)."),
    ids: Optional[str] = typer.Option(None, help="Comma list of entry ids (a multi-turn turn id selects its dialogue)."),
    seed: int = typer.Option(0, help="Seed for --per-category sampling and for sampling decoding."),
    max_new_tokens: int = typer.Option(512, min=1, help="Generation budget per model reply."),
    temperature: float = typer.Option(0.0, min=0.0, help="0 = greedy."),
    max_prompt_tokens: Optional[int] = typer.Option(None, min=1, help="Skip (score as "
                                                    "inference_error:prompt_too_long) prompts longer than this."),
    batch_size: int = typer.Option(8, min=1, help="Prompts per generate call (hf)."),
    device: str = typer.Option("auto", help="hf backend device: auto | cpu | cuda | cuda:N."),
    base_url: Optional[str] = typer.Option(None, help="openai backend: server URL, e.g. http://127.0.0.1:8000/v1."),
    tensor_parallel: int = typer.Option(1, min=1, help="vllm backend: tensor parallel size."),
    data_dir: Optional[Path] = typer.Option(None, help="ACEBench's English data folder (data_en); default: "
                                            "downloaded once into $LOOPTOOL_HOME and checked against the "
                                            "project's sha256 values."),
    user_model: Optional[str] = typer.Option(None, help="agent_multi_turn user simulator (default: the evaluated "
                                             "model itself; the leaderboard used gpt-4o)."),
    user_backend: Optional[str] = typer.Option(None, help="Simulator backend: hf | vllm | openai | openai-chat "
                                               "(a /v1/chat/completions server, e.g. gpt-4o; key from "
                                               "$OPENAI_API_KEY)."),
    user_base_url: Optional[str] = typer.Option(None, help="Simulator server URL for openai / openai-chat."),
    user_max_new_tokens: int = typer.Option(256, min=1, help="Generation budget per simulator reply."),
    max_dialog_turns: int = typer.Option(40, min=2, help="Agent rollouts: at most this many messages per task."),
    strict_arg_set: bool = typer.Option(False, help="Strict scorer: the model's argument names must equal the "
                                        "ground truth's."),
    responses: Optional[Path] = typer.Option(None, help="Score this JSONL of pre-generated responses ({id, result"
                                             "[, process]} per line); no model is loaded."),
    decode: str = typer.Option("official", help=DECODE_HELP),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    progress: bool = typer.Option(True, help="Show a progress bar on stderr."),
):
    """Evaluate on ACEBench (English) and print per-category accuracy, Normal / Special / Agent and Overall
    (compat scorer, leaderboard-comparable) with the strict scorer's numbers beside them.

    Rerunning the same command resumes an interrupted evaluation from its records."""
    from core.store import ResultStore
    from evals.acebench import data as ace_data
    from evals.acebench import fetch

    _check_decode(decode)
    cats = ace_data.parse_categories(categories)
    id_list = [s.strip() for s in ids.split(",") if s.strip()] if ids else None
    if responses is not None:
        from evals.acebench.responses import score_file

        with ResultStore() as store:
            summary = score_file(responses, mode=mode, data_dir=data_dir, strict_arg_set=strict_arg_set,
                                 store=store, progress=progress, decoding=decode)
        _show_acebench(summary, json_out)
        return
    from core.backends import load_backend
    from core.models import resolve
    from evals.acebench.runner import AceConfig, run_acebench

    if adapter is not None and not (adapter / "adapter_config.json").exists():
        raise UserError(f"--adapter {adapter}: no adapter_config.json there (not a peft LoRA adapter)")
    if backend not in ("hf", "vllm", "openai"):
        raise UserError(f"--backend: unknown backend {backend!r}; choose hf, vllm or openai")
    if backend == "openai" and not base_url:
        raise UserError("--backend openai needs --base-url (e.g. http://127.0.0.1:8000/v1)")
    if mode not in ("auto", "prompt", "fc"):
        raise UserError(f"--mode: unknown mode {mode!r}; choose from auto, prompt, fc")
    if user_backend is not None and user_model is None:
        raise UserError("--user-backend needs --user-model")
    if user_backend is not None and user_backend not in ("hf", "vllm", "openai", "openai-chat"):
        raise UserError(f"--user-backend: unknown backend {user_backend!r}; choose hf, vllm, openai or openai-chat")
    if user_model is not None and (user_backend or "hf") in ("openai", "openai-chat") and not user_base_url:
        raise UserError(f"--user-backend {user_backend} needs --user-base-url (e.g. http://127.0.0.1:8000/v1)")
    root = fetch.resolve_data_dir(data_dir)
    ace_data.select(root, cats, per_category, id_list, seed)  # validate ids before loading a model
    cfg = AceConfig(model=model, backend=backend, adapter=str(adapter.resolve()) if adapter else None, mode=mode,
                    categories=cats, per_category=per_category, ids=id_list, seed=seed,
                    max_new_tokens=max_new_tokens, temperature=temperature, max_prompt_tokens=max_prompt_tokens,
                    strict_arg_set=strict_arg_set, max_dialog_turns=max_dialog_turns, user_model=user_model,
                    user_backend=user_backend if user_model else None, user_base_url=user_base_url,
                    user_max_new_tokens=user_max_new_tokens, data_dir=str(root), decoding=decode)
    options = {"hf": {"batch_size": batch_size, "device": device},
               "vllm": {"tensor_parallel_size": tensor_parallel, "enable_lora": adapter is not None},
               "openai": {"base_url": base_url}}[backend]
    if backend == "openai":
        ref = model
        options["tokenizer"] = _local_tokenizer(model)
    else:
        ref = resolve(model).path
    engine = load_backend(backend, ref, **options)
    try:
        with ResultStore() as store:
            summary = run_acebench(cfg, engine, store=store, progress=progress)
    finally:
        engine.close()
    _show_acebench(summary, json_out)


def _show_acebench(summary: dict, json_out: bool) -> None:
    if json_out:
        typer.echo(json.dumps(summary, indent=2))
        return
    from console.report import print_acebench_summary

    print_acebench_summary(summary)


@eval_app.command("list")
def eval_list(limit: int = typer.Option(20, min=1, help="How many to show."),
              json_out: bool = typer.Option(False, "--json", help="Print JSON.")):
    """List stored evaluations, newest first."""
    from core.store import ResultStore

    with ResultStore() as store:
        rows = store.list_evals(limit=limit)
    if json_out:
        typer.echo(json.dumps(rows, indent=2))
        return
    from console.report import print_eval_list

    print_eval_list(rows)


@eval_app.command("show")
def eval_show(eval_id: str = typer.Argument(..., help="Eval id (or a unique prefix of at least 4 characters)."),
              json_out: bool = typer.Option(False, "--json", help="Print JSON.")):
    """Show one stored evaluation: per-category accuracy and the leaderboard columns."""
    from core.store import ResultStore

    with ResultStore() as store:
        summary = store.get_eval(eval_id)
    if summary is None:
        raise UserError(f"no evaluation with id {eval_id!r} (see `looptool eval list`)")
    _show(summary, json_out)


def _local_tokenizer(model: str) -> str:
    """The tokenizer for an openai-backend model: a local/embedded/configured model's files if the
    name resolves, else the name itself (a hub id in the local cache)."""
    from core.models import resolve

    try:
        return resolve(model).path
    except UserError:
        return model


def _subset_accuracy(summary: dict) -> float | None:
    """Correct / entries over the categories evaluated (the v3 Overall counts missing categories as 0)."""
    per = (summary.get("per_category") or {}).values()
    total = sum(c.get("total", 0) for c in per)
    return sum(c.get("correct", 0) for c in per) / total if total else None


def _show(summary: dict, json_out: bool) -> None:
    if json_out:
        typer.echo(json.dumps(summary, indent=2))
        return
    if summary.get("benchmark") == "acebench":
        _show_acebench(summary, json_out)
        return
    from console.report import print_bfcl_summary

    print_bfcl_summary(summary)


# `looptool console` and `looptool run` live in console/commands.py (the operator console).
from console.commands import register as _register_console_commands  # noqa: E402

_register_console_commands(app)


def main() -> None:
    try:
        app()
    except UserError as e:
        typer.echo(f"error: {e}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("interrupted: rerun the same command to resume", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
