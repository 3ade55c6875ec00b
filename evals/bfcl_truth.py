"""Ground truth rendered as model output.

Used by the checker-parity tests (ground truth must score valid; perturbations must not) and by the
scoring benchmark (a responses file covering all 4,441 v3 entries). Each parameter takes its first
acceptable value; parameters whose options allow omission ("") are left out.
"""
from __future__ import annotations

import json

from core.toolcalls import ToolCall, render_hermes, render_python
from evals.bfcl_data import Entry, language

NO_CALL_TEXT = "None of the given functions can be used for this request."


def pick(options: list, required: bool = False):
    """First acceptable value of a BFCL option list ("" = may be omitted; returns OMIT then, unless the
    parameter is required). Dict values nest option lists of their own."""
    given = [v for v in options if v != ""]
    if not given or ("" in options and not required):
        return OMIT
    value = given[0]
    return _resolve(value)


OMIT = object()


def _resolve(value):
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            v = pick(v) if isinstance(v, list) and v else v
            if v is not OMIT:
                out[k] = v
        return out
    if isinstance(value, list):
        return [_resolve(v) for v in value]
    return value


def truth_calls(entry: Entry) -> list[ToolCall]:
    docs = {f["name"]: f for f in entry.raw_functions}
    lang = language(entry.category)
    calls = []
    for item in entry.ground_truth or []:
        (name, params), = item.items()
        props = docs.get(name, {}).get("parameters", {})
        required = set(props.get("required", []))
        args = {}
        for k, opts in params.items():
            v = pick(opts, k in required)
            if v is OMIT:
                continue
            if lang != "python":
                v = _java_js_literal(v, props.get("properties", {}).get(k, {}).get("type", "String"), lang)
            args[k] = v
        calls.append(ToolCall(name, args))
    return calls


def _java_js_literal(v, typ: str, lang: str) -> str:
    """Java/JavaScript values travel as strings in the language's own syntax (bfcl's hint tells the model
    so); render the ground-truth value that way."""
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    item = lambda x: json.dumps(x) if isinstance(x, str) else _java_js_literal(x, "", lang)  # noqa: E731
    if lang == "javascript":
        if isinstance(v, list):
            return "[" + ", ".join(item(x) for x in v) + "]"
        return "{" + ", ".join(f"{json.dumps(k)}: {item(x)}" for k, x in v.items()) + "}"
    if isinstance(v, dict):
        puts = " ".join(f"put({json.dumps(k)}, {item(x)});" for k, x in v.items())
        return f"new HashMap<String, Object>() {{{{ {puts} }}}}"
    if typ == "ArrayList" or typ == "List":
        return "new ArrayList<>(Arrays.asList(" + ", ".join(item(x) for x in v) + "))"
    return "new Object[]{" + ", ".join(item(x) for x in v) + "}"


def single_turn_text(entry: Entry, mode: str) -> str:
    """The ideal reply for a single-turn entry in `mode` (prompt | fc)."""
    if entry.category in ("irrelevance", "live_irrelevance"):
        return NO_CALL_TEXT
    if entry.category == "live_relevance":
        f = entry.functions[0]
        req = f.get("parameters", {}).get("required", [])
        calls = [ToolCall(f["name"], {k: "x" for k in req})]
    else:
        calls = truth_calls(entry)
    return render_hermes(calls) if mode == "fc" else render_python(calls)


def multi_turn_steps(entry: Entry) -> list[list[str]]:
    """One fc step per turn holding the turn's ground-truth calls (positional arguments named through the
    backend method signatures); [] turns stay empty."""
    from evals.bfcl_exec import SafeExecutor

    ex = SafeExecutor({"id": entry.id, **entry.extra})
    steps = []
    for turn in entry.ground_truth:
        calls = [ex.parse(s) for s in turn]
        steps.append([render_hermes(calls)] if calls else [])
    return steps
