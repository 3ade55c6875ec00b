"""The JGLV judge prompt (our own wording of the structure in the method reference, section 5).

System: an expert evaluator comparing two function-call responses, the tools inside <tools>, the
criteria. User: the conversation, then Response 1 and Response 2. The reply must open with exactly one
bracketed verdict token, then "Error Analysis:" and "Correct Approach:".

Normal order: Response 1 = the reference label, Response 2 = the model prediction (the paper's fixed
order). With swapped=True the two change places (the position-bias check).

The reply protocol lives here too: `parse_verdict` reads a reply, `aggregate` turns votes into one
outcome, `combine_orders` checks the normal order against the swapped one (core/stages/judge.py
documents how each outcome is acted on).
"""
from __future__ import annotations

import json
import re
from collections import Counter

from core import toolcalls
from core.schema import Sample

VERDICTS = ("PRED_WRONG", "LABEL_WRONG", "BOTH_CORRECT", "BOTH_WRONG")
JUDGE_FAILED, NO_CONSENSUS, POSITION_INCONSISTENT, UNDECIDED = (
    "JUDGE_FAILED", "NO_CONSENSUS", "POSITION_INCONSISTENT", "UNDECIDED")

TOKENS = ("RESPONSE1_INCORRECT", "RESPONSE2_INCORRECT", "BOTH_CORRECT", "BOTH_INCORRECT")

SYSTEM = """You are an expert evaluator of function calling. You will see a conversation between a user \
and an assistant that can call the tools listed below, followed by two candidate responses for the \
assistant's next turn. Decide which of the two responses is correct.

<tools>
{tools}
</tools>

Judge each response on:
1. Correctness: does it do what the user asked at this point of the conversation?
2. Function selection: does it call the right function(s), and only functions that exist?
3. Parameter accuracy: are all required parameters present, of the right type, with values taken from \
the conversation rather than invented?
4. Completeness: does it make every call needed now (and no more)?
5. Irrelevant or under-specified requests: when no tool fits, or a required value is missing, a plain-text \
reply (refusal or clarifying question) is the correct response, not a call.

Start your answer with exactly one of these tokens, in square brackets:
[RESPONSE1_INCORRECT] if only Response 1 is wrong,
[RESPONSE2_INCORRECT] if only Response 2 is wrong,
[BOTH_CORRECT] if both are acceptable,
[BOTH_INCORRECT] if both are wrong.
Then write "Error Analysis:" with at most two sentences on what is wrong, and "Correct Approach:" with at \
most two sentences on what the right response is."""

USER = """Conversation date: {date}

## Conversation
{conversation}

## Response 1
{first}

## Response 2
{second}

Give your verdict token first."""


def _conversation(sample: Sample) -> str:
    lines = []
    for m in sample.messages:
        if m.role == "assistant" and m.tool_calls:
            calls = "\n".join(json.dumps({"name": c.name, "arguments": c.arguments}, ensure_ascii=False)
                              for c in m.tool_calls)
            lines.append(f"ASSISTANT (tool calls):\n{calls}")
        elif m.role == "tool":
            lines.append(f"TOOL RESULT ({m.name or 'tool'}):\n{m.content}")
        else:
            lines.append(f"{m.role.upper()}:\n{m.content}")
    return "\n\n".join(lines)


def judge_messages(sample: Sample, label_text: str, prediction_text: str, swapped: bool = False
                   ) -> list[dict]:
    """Chat messages for one judgement; `label_text` / `prediction_text` are already rendered."""
    tools = "\n".join(json.dumps(t, ensure_ascii=False) for t in sample.tools)
    first, second = (prediction_text, label_text) if swapped else (label_text, prediction_text)
    date = str(sample.meta.get("date", "Unknown"))
    return [
        {"role": "system", "content": SYSTEM.format(tools=tools)},
        {"role": "user", "content": USER.format(date=date, conversation=_conversation(sample),
                                                first=first.strip() or "(empty)",
                                                second=second.strip() or "(empty)")},
    ]


# -- the reply protocol ---------------------------------------------------------------------------

_SEP = r"[\s_\\-]*"
_TOKEN_RE = re.compile(rf"\\?\[{_SEP}(?:response{_SEP}(?P<n>[12]){_SEP}incorrect|both{_SEP}(?P<neg>in)?correct)"
                       rf"{_SEP}\\?\]", re.IGNORECASE)


def parse_verdict(text: str, swapped: bool = False) -> tuple[str | None, str]:
    """(verdict, analysis) from a judge reply; verdict None when no verdict token is found.

    Think blocks are stripped (an unclosed <think> and everything after it is dropped); the FIRST
    bracketed verdict token wins (case, spaces, underscores, markdown escapes tolerated). With
    `swapped`, Response 1 was the prediction, so RESPONSE1_INCORRECT means PRED_WRONG.
    """
    body = toolcalls.strip_think(text or "")
    if "<think>" in body:
        body = body[:body.find("<think>")]
    m = _TOKEN_RE.search(body)
    if m is None:
        return None, body.strip()[:500]
    if m.group("n"):
        first_wrong = m.group("n") == "1"
        verdict = "PRED_WRONG" if first_wrong == swapped else "LABEL_WRONG"
    else:
        verdict = "BOTH_WRONG" if m.group("neg") else "BOTH_CORRECT"
    rest = body[m.end():].strip()
    at = rest.lower().find("error analysis")
    return verdict, (rest[at:] if at >= 0 else rest).strip(" *\n")[:2000]


def aggregate(votes: list[str | None], consensus: float) -> str:
    """Majority of the votes (None = failed): the top verdict if its share of ALL votes reaches
    `consensus` and it is not tied, NO_CONSENSUS otherwise, JUDGE_FAILED when every vote failed."""
    counts = Counter(v for v in votes if v).most_common()
    if not counts:
        return JUDGE_FAILED
    (top, n), tied = counts[0], len(counts) > 1 and counts[1][1] == counts[0][1]
    return top if not tied and n / len(votes) >= consensus else NO_CONSENSUS


def combine_orders(normal: str, swapped: str) -> str:
    """Normal-order outcome checked against the swapped-order one (already mapped back)."""
    if normal == swapped or normal not in VERDICTS or swapped == JUDGE_FAILED:
        return normal
    return POSITION_INCONSISTENT
