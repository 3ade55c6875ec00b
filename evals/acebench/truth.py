"""Replies rendered from the ground truth: what a perfect model would write (tests, smoke checks).

* normal: the expected calls as one Python call list, ``[Api(k='v', n=2)]`` (a repeated function's
  ``_1``/``_2`` key suffixes removed; with alternative answers, the first);
* special: the protocol's reply templates filled from the answer;
* agent: the milestone calls (the first path where there are alternatives).
"""
from __future__ import annotations

import re

from evals.acebench.data import Entry

_SUFFIX = re.compile(r"_\d+$")


def render_calls(calls: dict) -> str:
    parts = []
    for key, args in calls.items():
        inner = ", ".join(f"{k}={v!r}" for k, v in args.items())
        parts.append(f"{_SUFFIX.sub('', key)}({inner})")
    return "[" + ", ".join(parts) + "]"


def incomplete_reply(api: str, params: list[str]) -> str:
    return f"Missing necessary parameters ({', '.join(params)}) for the api ({api})"


def error_param_reply(values: list[str], params: list[str]) -> str:
    return (f"There is incorrect value ({', '.join(values)}) for the parameters ({', '.join(params)}) "
            "in the conversation history.")


IRRELEVANT_REPLY = "Due to the limitations of the function, I cannot solve this problem."


def reply(entry: Entry) -> str:
    gt = entry.ground_truth
    if entry.category == "special_incomplete":
        return " ".join(incomplete_reply(api, params) for api, params in gt.items())
    if entry.category == "special_error_param":
        return error_param_reply([v for vs in gt.values() for v in vs], list(gt))
    if entry.category == "special_irrelevant":
        return IRRELEVANT_REPLY
    if entry.kind == "agent":
        raise ValueError("agent entries have milestones, not a single reply (see milestone_paths)")
    return render_calls(gt[0] if isinstance(gt, list) else gt)


def milestone_paths(entry: Entry) -> list[list[str]]:
    stones = entry.extra.get("mile_stone") or []
    return stones if stones and isinstance(stones[0], list) else [stones]
