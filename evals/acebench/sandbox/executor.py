"""Running an agent's reply against the sandbox, as upstream's executors do, without ``eval``.

A reply is parsed with ``ast`` into (name, keyword arguments) pairs (agent_sandbox_spec.md §3.2) and each
call is dispatched by name to the public methods of the task's involved classes (§3.3). The two
upstream executors differ only in error handling and in when the state counts as saved (§3.5, §4):

* ``multi_step``: an exception is that call's result (``Error during execution: <text>``) and the batch
  goes on; every parsed batch registers the state for saving;
* ``multi_turn``: an exception aborts the batch (earlier calls' effects stay) and only error-free batches
  register the state. Upstream sends the model the unformatted template exploded into characters; this
  executor sends the formatted line instead (the state is the same either way).
"""
from __future__ import annotations

import ast
import copy
import json
import re

from core.decode_bounds import DecodeError, parse_python
from evals.leaderboard_ast import arithmetic
from evals.results import json_safe  # noqa: F401  (re-exported: sandbox results are recorded with it)
from evals.acebench.sandbox.base import BaseApi
from evals.acebench.sandbox.food import FoodPlatform
from evals.acebench.sandbox.message import MessageApi
from evals.acebench.sandbox.reminder import ReminderApi
from evals.acebench.sandbox.state import saved_attributes
from evals.acebench.sandbox.travel import Travel

CLASSES = {"BaseApi": BaseApi, "MessageApi": MessageApi, "ReminderApi": ReminderApi,
           "FoodPlatform": FoodPlatform, "Travel": Travel}
NOT_A_QUESTION = "Please do not ask me any questions, use the known conditions to solve the problem"
_ROUTE = re.compile(r"\[.*\]")
_UNBOUND = "cannot access local variable 'func_call_result' where it is not associated with a value"


class Unparsable(ValueError):
    pass


class _Deferred:
    """An argument upstream cannot deliver (a nested call with keywords, a top-level dict): the call
    fails when it runs, as upstream's re-evaluated call text does."""

    def __init__(self, error: Exception):
        self.error = error

    def __repr__(self) -> str:
        return "<undeliverable argument>"


class Call:
    __slots__ = ("name", "kwargs")

    def __init__(self, name: str, kwargs: dict):
        self.name, self.kwargs = name, kwargs

    def __repr__(self) -> str:
        return f"Call({self.name!r}, {self.kwargs!r})"


def _dotted(func: ast.AST) -> str | None:
    parts = []
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    if not isinstance(func, ast.Name):
        return None
    parts.append(func.id)
    return ".".join(reversed(parts))


def _value(node: ast.AST, src: str, depth: int = 0):
    if depth > 100:
        raise Unparsable("value nested too deeply")
    if isinstance(node, ast.Constant):
        if node.value is Ellipsis or isinstance(node.value, (bytes, complex)):
            raise Unparsable("unsupported literal")
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.operand, ast.Constant):
        try:
            return -node.operand.value  # upstream negates whatever the operator is (+3 -> -3)
        except TypeError:
            raise Unparsable("unary operator on a non-number") from None
    if isinstance(node, ast.List):
        return [_value(v, src, depth + 1) for v in node.elts]
    if isinstance(node, ast.Tuple):
        return tuple(_value(v, src, depth + 1) for v in node.elts)
    if isinstance(node, ast.Dict):
        if any(k is None for k in node.keys):
            raise Unparsable("dict unpacking")
        try:
            return {_value(k, src, depth + 1): _value(v, src, depth + 1) for k, v in zip(node.keys, node.values)}
        except TypeError:
            raise Unparsable("unhashable dict key") from None
    if isinstance(node, ast.BinOp):
        try:
            return arithmetic(node)
        except ValueError as e:
            raise Unparsable(str(e)) from None
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Call):
        if not node.keywords:
            return ast.get_source_segment(src, node) or ""
        name = _dotted(node.func) or "?"
        return _Deferred(NameError(f"name '{name.split('.')[0]}' is not defined"))
    if isinstance(node, ast.Subscript):
        return ast.get_source_segment(src, node) or ""
    raise Unparsable(f"unsupported value {type(node).__name__}")


def parse(text: str, elements: str) -> list[Call]:
    """Calls in a reply (§3.2). ``elements`` says what a non-call element of a tuple/list does:
    ``skip`` (multi_turn executor), ``fail`` (multi_step executor, and the multi_turn router)."""
    if not text:
        raise Unparsable("empty reply")
    if text[0] == " ":
        text = text[1:]
    if not text.startswith("["):
        text = "[" + text
    if not text.endswith("]"):
        text = text + "]"
    text = text.strip("[]'")
    try:
        body = parse_python(text)  # the bounds every decoder of model text runs (core.decode_bounds)
    except DecodeError as e:
        raise Unparsable(str(e)) from None
    if isinstance(body, ast.Call):
        nodes = [body]
    elif isinstance(body, (ast.Tuple, ast.List)):
        nodes = []
        for elt in body.elts:
            if isinstance(elt, ast.Call):
                nodes.append(elt)
            elif elements == "fail":
                raise Unparsable("a list element is not a call")
    else:
        nodes = []
    calls = []
    for node in nodes:
        name = _dotted(node.func)
        if name is None:
            raise Unparsable("a call's function is not a name")
        kwargs = {}
        for kw in node.keywords:  # positional arguments are dropped, as upstream does
            if kw.arg is None:
                raise Unparsable("**kwargs unpacking")
            v = _value(kw.value, text)
            if isinstance(v, dict):
                v = _Deferred(SyntaxError("a dict argument cannot be passed directly (upstream renders it as a "
                                          "call)"))
            kwargs[kw.arg] = v
        calls.append(Call(name, kwargs))
    return calls


def routes_to_execution(text: str) -> bool:
    """multi_turn routing: a ``[...]`` on one line and a reply that parses as calls only."""
    if not _ROUTE.search(text):
        return False
    try:
        parse(text, "fail")
    except Unparsable:
        return False
    return True


def _encode_decode(value):
    if isinstance(value, dict):
        try:
            text = json.dumps(value)
        except (TypeError, ValueError):
            text = str(value)
    elif isinstance(value, str):
        text = value
    else:
        text = str(value)
    try:
        return json.loads(text)
    except ValueError:
        return text


class Sandbox:
    """Fresh instances of a task's involved classes, with its initial_config applied (§2)."""

    def __init__(self, involved_classes: list[str], initial_config: dict | None = None):
        config = initial_config or {}
        self.instances: dict[str, object] = {}
        for name in involved_classes:
            inst = CLASSES[name]()
            inst._load_scenario(copy.deepcopy(config.get(name, {})))
            inst._load_scenario(copy.deepcopy(config.get("BaseApi", {})))
            self.instances[name] = inst
        self.methods: dict[str, list] = {}
        for inst in self.instances.values():
            for m in type(inst).PUBLIC:
                self.methods.setdefault(m, []).append(getattr(inst, m))
        self.registered = False

    def _invoke(self, call: Call, last):
        short = call.name.rsplit(".", 1)[-1]
        targets = self.methods.get(short)
        if not targets:
            if last is _NONE:
                raise UnboundLocalError(_UNBOUND)
            return last  # upstream reports the batch's previous value again for an unknown name
        if "." in call.name:
            raise NameError(f"name '{call.name.split('.')[0]}' is not defined")
        for v in call.kwargs.values():
            if isinstance(v, _Deferred):
                raise v.error
        value = None
        for method in targets:  # broadcast: every involved instance that has the method
            value = method(**call.kwargs)
        return value

    def run(self, text: str, mode: str) -> tuple[object, bool]:
        """Execute a reply. -> (execution message content, parsed). ``mode``: multi_step | multi_turn."""
        try:
            calls = parse(text, "fail" if mode == "multi_step" else "skip")
        except Unparsable:
            return NOT_A_QUESTION, False
        results, last = [], _NONE
        for call in calls:
            try:
                value = self._invoke(call, last)
            except Exception as e:  # noqa: BLE001 - a sandbox error is the model's result, as upstream
                if mode == "multi_turn":
                    return [f"Error during execution: {e}"], True
                results.append(f"Error during execution: {e}")
                continue
            last = value
            results.append(value)
        self.registered = True
        return [_encode_decode(v) for v in results], True

    def saved_state(self) -> list[dict]:
        """What the scorer compares: [{Class: {saved attrs}}] after a JSON round trip; [] if no
        qualifying execution turn happened."""
        if not self.registered:
            return []
        keep = saved_attributes()
        out = [{name: {k: v for k, v in vars(inst).items() if k in keep[name]}}
               for name, inst in self.instances.items()]
        return json.loads(json.dumps(json_safe(out)))


_NONE = object()
