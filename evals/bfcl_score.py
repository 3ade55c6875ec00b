"""Scoring one BFCL-v3 result with bfcl-eval's own checkers.

* AST categories: decode, check the decoded shape with bfcl's ``is_function_calling_format_output``, then
  ``ast_checker`` on the raw (hint-free) docs. Error types are bfcl's own strings.
* Relevance categories: a call exists iff decoding succeeds and bfcl's ``is_empty_output`` says it is not
  empty; irrelevance wants none, live_relevance wants one.
* Multi-turn: every decoded step is re-rendered from its validated form and scored with bfcl's
  ``multi_turn_checker`` (evals.bfcl_exec.check_entry); model text never reaches bfcl's executor.
"""
from __future__ import annotations

from core import toolcalls
from evals import bfcl_prompt
from evals.bfcl_data import Entry, language
from core.bfcl_lib import MODEL_NAME, bfcl
from evals.leaderboard_ast import other_decoding
from evals.results import json_safe


def _decoder_error(e: Exception) -> str:
    return f"ast_decoder:decoder_failed:{getattr(e, 'kind', 'syntax')}"


def score_single(entry: Entry, raw: str, mode: str, decoding: str = "official") -> dict:
    """-> {valid, error_type, error, decoded, decoding, by_decoding}: the verdict under `decoding`
    and, in by_decoding, whether the reply is valid under each decoding (the lenient column)."""
    res = _score_single(entry, raw, mode, decoding)
    other = other_decoding(decoding)
    same = mode == "fc" or language(entry.category) != "python"  # one decoder serves both
    other_valid = res["valid"] if same else _score_single(entry, raw, mode, other)["valid"]
    return {**res, "decoding": decoding, "by_decoding": {decoding: res["valid"], other: other_valid}}


def _score_single(entry: Entry, raw: str, mode: str, decoding: str) -> dict:
    bfcl()
    from bfcl_eval.utils import is_empty_output, is_function_calling_format_output

    try:
        decoded = bfcl_prompt.decode(raw, mode, language(entry.category), decoding)
        decode_error = None
    except toolcalls.DecodeError as e:
        decoded, decode_error = None, e

    if entry.kind == "relevance":
        has_call = decoded is not None and not is_empty_output(decoded)
        if "irrelevance" in entry.category:
            ok, err = not has_call, "irrelevance_error:decoder_success"
        else:
            ok, err = has_call, "relevance_error:decoder_failed"
        return _result(ok, None if ok else err, None if ok else str(decode_error or "no call"), decoded)

    if decode_error is not None:
        return _result(False, _decoder_error(decode_error), str(decode_error), None)
    if not is_function_calling_format_output(decoded):
        return _result(False, "ast_decoder:decoder_wrong_output_format",
                       "decoded output is not a list of {name: {args}}", decoded)
    from bfcl_eval.constants.enums import Language
    from bfcl_eval.eval_checker.ast_eval.ast_checker import ast_checker

    lang = Language(language(entry.category))
    res = ast_checker(entry.raw_functions, decoded, entry.ground_truth, lang, entry.category, MODEL_NAME)
    if res["valid"]:
        return _result(True, None, None, decoded)
    return _result(False, res["error_type"], "; ".join(map(str, res.get("error", []))), decoded)


def score_multi_turn(entry: Entry, steps: list[list[str]], mode: str, decoding: str = "official") -> dict:
    """steps: raw model text per step, per turn. Steps that fail to decode or carry no call are dropped
    before checking, as bfcl does. by_decoding rescores the same steps under the other decoding (the
    replies themselves were produced while the session executed calls under `decoding`)."""
    res = _score_multi_turn(entry, steps, mode, decoding)
    other = other_decoding(decoding)
    other_valid = res["valid"] if mode == "fc" else _score_multi_turn(entry, steps, mode, other)["valid"]
    return {**res, "decoding": decoding, "by_decoding": {decoding: res["valid"], other: other_valid}}


def _score_multi_turn(entry: Entry, steps: list[list[str]], mode: str, decoding: str) -> dict:
    from evals.bfcl_exec import check_entry

    decoded_turns: list[list[list[toolcalls.ToolCall]]] = []
    for turn in steps:
        kept = []
        for text in turn:
            try:
                calls = bfcl_prompt.decode_calls(text, mode, decoding)
            except toolcalls.DecodeError:
                continue
            if calls:
                kept.append(calls)
        decoded_turns.append(kept)
    if len(decoded_turns) != len(entry.ground_truth):
        return _result(False, "multi_turn:force_terminated",
                       f"{len(decoded_turns)} of {len(entry.ground_truth)} turns completed",
                       _jsonable(decoded_turns))
    entry_dict = {"id": entry.id, "question": entry.question, "function": entry.raw_functions,
                  **entry.extra}
    res = check_entry(decoded_turns, entry_dict, entry.ground_truth, MODEL_NAME)
    if res["valid"]:
        return _result(True, None, None, _jsonable(decoded_turns))
    return _result(False, res.get("error_type"), str(res.get("error_message", "")),
                   _jsonable(decoded_turns))


def _jsonable(turns: list[list[list[toolcalls.ToolCall]]]) -> list:
    return [[[c.to_bfcl() for c in step] for step in turn] for turn in turns]


def _result(valid: bool, error_type: str | None, error: str | None, decoded) -> dict:
    return {"valid": valid, "error_type": error_type, "error": error, "decoded": json_safe(decoded)}

