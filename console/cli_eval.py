"""`looptool eval ...` (evaluate on BFCL-v3 or ACEBench, read stored evaluations) and `looptool models`."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from console.cli_options import EvalOptions, eval_options
from core.errors import UserError
from evals.acebench.user_sim import USER_BACKENDS

eval_app = typer.Typer(help="Evaluate a model on a benchmark, or read stored evaluations.",
                       no_args_is_help=True)
PIPE_WIDTH = 10_000  # `eval list` into a pipe: wider than any row, so the table keeps its natural width



@eval_app.command("bfcl")
@eval_options(
    mode="prompt (BFCL system prompt, Python call list) | fc (tools via the chat template, <tool_call> "
         "output) | auto (fc if the template renders tools).",
    categories="Comma list of categories or groups: all, non_live, live, multi_turn, single_turn, "
               "simple_python, live_multiple, ...",
    per_category="Seeded, stable sample of N entries per category.",
    ids="Comma list of entry ids to evaluate.",
    max_new_tokens=(256, "Generation budget per model step."),
    max_prompt_tokens="Skip (score as inference_error:prompt_too_long) prompts longer than this; "
                      "default: the model's context minus --max-new-tokens.",
    responses="Score this JSONL of pre-generated responses ({id, result} per line); no model is loaded.",
)
def eval_bfcl(opts: EvalOptions):
    """Evaluate on BFCL-v3 (bfcl-eval's data and checkers) and print per-category accuracy and the v3 Overall.

    Rerunning the same command resumes an interrupted evaluation from its records."""
    from evals import bfcl_data
    from evals.bfcl_prompt import check_mode

    opts.check_decode()
    check_mode(opts.mode)  # before anything is read or opened, --responses included
    cats = bfcl_data.parse_categories(opts.categories)
    if opts.responses is not None:
        from evals.bfcl_responses import score_file

        summary = opts.score_responses(score_file)
    else:
        from evals.bfcl import EvalConfig, run_eval

        opts.check_model_options()
        bfcl_data.select(cats, opts.per_category, opts.id_list, opts.seed)  # validate ids before loading a model
        summary = opts.evaluate(run_eval, EvalConfig(**opts.config_fields(cats)))
    show_summary(summary, opts.json_out)


@eval_app.command("acebench")
@eval_options(
    mode="prompt (call format in the system prompt, [Api(k='v')] replies) | fc (functions as tools via "
         "the chat template, <tool_call> output) | auto.",
    categories="Comma list of categories or groups: all, normal, atom, single_turn, multi_turn, special, "
               "agent, normal_atom_bool, agent_multi_step, ...",
    per_category="Seeded, stable sample of N scored items per category (dialogues in the multi-turn files).",
    ids="Comma list of entry ids (a multi-turn turn id selects its dialogue).",
    max_new_tokens=(512, "Generation budget per model reply."),
    max_prompt_tokens="Skip (score as inference_error:prompt_too_long) prompts longer than this.",
    responses="Score this JSONL of pre-generated responses ({id, result[, process]} per line); no model "
              "is loaded.",
)
def eval_acebench(
    opts: EvalOptions,
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
):
    """Evaluate on ACEBench (English) and print per-category accuracy, Normal / Special / Agent and Overall
    (compat scorer, leaderboard-comparable) with the strict scorer's numbers beside them.

    Rerunning the same command resumes an interrupted evaluation from its records."""
    from evals.acebench import data as ace_data
    from evals.acebench import fetch
    from evals.bfcl_prompt import check_mode

    opts.check_decode()
    check_mode(opts.mode)  # before anything is read or opened, --responses included
    cats = ace_data.parse_categories(opts.categories)
    if opts.responses is not None:
        from evals.acebench.responses import score_file

        summary = opts.score_responses(score_file, data_dir=data_dir, strict_arg_set=strict_arg_set)
        show_summary(summary, opts.json_out)
        return
    from evals.acebench.runner import AceConfig, run_acebench

    opts.check_model_options()
    if user_backend is not None and user_model is None:
        raise UserError("--user-backend needs --user-model")
    if user_backend is not None and user_backend not in USER_BACKENDS:
        raise UserError(f"--user-backend: unknown backend {user_backend!r}; choose hf, vllm, openai or openai-chat")
    if user_model is not None and (user_backend or "hf") in ("openai", "openai-chat") and not user_base_url:
        raise UserError(f"--user-backend {user_backend} needs --user-base-url (e.g. http://127.0.0.1:8000/v1)")
    root = fetch.resolve_data_dir(data_dir)
    ace_data.select(root, cats, opts.per_category, opts.id_list, opts.seed)  # validate ids before loading a model
    cfg = AceConfig(**opts.config_fields(cats), strict_arg_set=strict_arg_set, max_dialog_turns=max_dialog_turns,
                    user_model=user_model, user_backend=user_backend if user_model else None,
                    user_base_url=user_base_url, user_max_new_tokens=user_max_new_tokens, data_dir=str(root))
    show_summary(opts.evaluate(run_acebench, cfg), opts.json_out)


@eval_app.command("list")
def eval_list(limit: int = typer.Option(20, min=1, help="How many to show."),
              json_out: bool = typer.Option(False, "--json", help="Print JSON.")):
    """List stored evaluations, newest first."""
    from core.store import ResultStore

    with ResultStore(read_only=True) as store:  # a snapshot: no lock, a running core never blocks it
        rows = store.list_evals(limit=limit)
    if json_out:
        typer.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console

    from console.report import print_eval_list

    # Not a terminal (a pipe, a file): the table at its natural width, no column cut to 80 characters,
    # so every id can be pasted into `eval show`.
    print_eval_list(rows, None if sys.stdout.isatty() else Console(width=PIPE_WIDTH))


@eval_app.command("show")
def eval_show(eval_id: str = typer.Argument(..., help="Eval id (or a unique prefix of at least 4 characters)."),
              json_out: bool = typer.Option(False, "--json", help="Print JSON.")):
    """Show one stored evaluation: per-category accuracy and the leaderboard columns."""
    from core.store import ResultStore

    with ResultStore(read_only=True) as store:  # a snapshot: no lock, a running core never blocks it
        summary = store.get_eval(eval_id)
    if summary is None:
        raise UserError(f"no evaluation with id {eval_id!r} (see `looptool eval list`)")
    show_summary(summary, json_out)


@eval_app.command("compare")
def eval_compare(
    a: str = typer.Argument(..., help="Eval A, the baseline: an eval id (or a unique prefix of at least 4 "
                            "characters), or RUN:J for run RUN's iteration-J eval (RUN:J:acebench for its "
                            "ACEBench eval)."),
    b: str = typer.Argument(..., help="Eval B, compared with A (the same benchmark)."),
    category: Optional[str] = typer.Option(None, help="Only this category."),
    limit: Optional[int] = typer.Option(None, min=0, help="Flipped entries listed per direction, with their "
                                        "outputs (0: counts only); default 10 in the tables, all with --json."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
):
    """Regressions between two evals of one benchmark: per-category accuracy of A and B, the difference
    B - A with its 95 % interval (Newcombe's method for paired data: both evals scored the same entries),
    and the entries that flipped, right -> wrong and wrong -> right, with both outputs.

    Entries match by id (ACEBench dialogues whole); those in only one eval are named, not in the accuracies."""
    from core.eval_compare import compare
    from core.store import ResultStore

    max_flips = limit if limit is not None else (None if json_out else 10)
    with ResultStore(read_only=True) as store:  # a snapshot: no lock, a running core never blocks it
        result = compare(store, a, b, category=category, max_flips=max_flips)
    if json_out:
        typer.echo(json.dumps(result, indent=2))
        return
    from rich.console import Console

    from console.report_compare import print_compare

    print_compare(result, None if sys.stdout.isatty() else Console(width=PIPE_WIDTH))


def show_summary(summary: dict, json_out: bool) -> None:
    """An eval summary as JSON, or as the benchmark's tables."""
    if json_out:
        typer.echo(json.dumps(summary, indent=2))
        return
    from console.report import print_acebench_summary, print_bfcl_summary

    if summary.get("benchmark") == "acebench":
        print_acebench_summary(summary)
    else:
        print_bfcl_summary(summary)


def models_cmd(json_out: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")):
    """List the embedded model and the models configured in $LOOPTOOL_HOME/models.toml."""
    from core.models import list_models

    rows = list_models()
    if json_out:
        typer.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="models")
    for col in ("name", "ready", "path", "source"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["name"], "yes" if r["ready"] else "converted on first use", r["path"], r["source"])
    Console().print(table)
