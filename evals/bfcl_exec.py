"""Safe execution of BFCL multi-turn tool calls, and scoring through bfcl-eval's own checker.

SECURITY RULE (reference/bfcl-v3.md, "SECURITY"): model text must never reach bfcl-eval's
``execute_multi_turn_func_call``. That function prefixes each call string with an instance name and
runs it with Python ``eval``; its only guard is a denylist on the callee name, so a model output such
as ``ls(a=__import__('os').system('...'))`` would run arbitrary code in the evaluator. Here instead:

* every call is parsed with ``ast`` (``core.toolcalls.parse_python_calls``): a bare name, literal
  argument values only (positional arguments are mapped onto the method's parameter names);
* :meth:`SafeExecutor.validate` accepts only a public method of an involved backend instance (no
  dotted names, no ``_``-prefixed names) and only parameter names that method has;
* the method is looked up on the instance and called directly -- no string is ever built for ``eval``;
* the only strings handed to bfcl-eval's ``multi_turn_checker`` (which does ``eval`` them) are
  produced by :func:`rerender` from validated :class:`ToolCall` objects, and :func:`rerender` re-parses
  what it produced to prove it is ``name(k=<literal>, ...)`` and nothing else. Calls that fail
  validation are dropped (they count as no call). Ground truth is re-rendered the same way.

For well-formed calls the result strings are exactly bfcl-eval's: a ``str`` result as is, a ``dict``
as ``json.dumps`` (``str`` if that fails), anything else ``str()``; an exception becomes
``"Error during execution: <str(exc)>"``. Invalid calls get the error string bfcl would produce
(``name 'x' is not defined``, ``Cls.m() got an unexpected keyword argument 'k'``, or, for its denylist,
``Function call kill is not allowed.``) without executing anything.
"""
from __future__ import annotations

import ast
import copy
import functools
import importlib
import inspect
import json

from core.toolcalls import DecodeError, ToolCall, parse_python_calls, render_call_string
from core.bfcl_lib import bfcl

ERROR_PREFIX = "Error during execution: "
# Callee names bfcl-eval's executor refuses before its eval (same message reproduced below).
_BFCL_DENIED = ("kill", "exit", "quit", "remove", "unlink", "popen", "Popen", "run")
_VARIADIC = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)


def _backend_config() -> tuple[dict, list]:
    bfcl()
    from bfcl_eval.constants import executable_backend_config as cfg

    return cfg.CLASS_FILE_PATH_MAPPING, list(cfg.STATELESS_CLASSES)


def _result_string(value) -> str:
    """bfcl-eval's conversion of a return value (note: exact type checks, as there)."""
    if type(value) == str:  # noqa: E721
        return value
    if type(value) == dict:  # noqa: E721
        try:
            return json.dumps(value)
        except Exception:
            return str(value)
    return str(value)


@functools.lru_cache(maxsize=None)
def _public_methods(cls: type) -> tuple[str, ...]:
    """Public method names of a backend class, as bfcl finds them (inspect.getmembers + ismethod on an
    instance means: functions defined on the class, bound). Cached per class: 800 entries share 8."""
    return tuple(name for name, member in inspect.getmembers(cls, predicate=inspect.isfunction)
                 if not name.startswith("_"))


@functools.lru_cache(maxsize=None)
def _params(cls: type, name: str):
    """Parameters of the bound method cls().name (``self`` excluded), cached per class."""
    params = list(inspect.signature(getattr(cls, name)).parameters.items())[1:]
    return dict(params)


class SafeExecutor:
    """One multi-turn entry's backend instances, driven without eval."""

    def __init__(self, entry: dict, long_context: bool = False):
        mapping, stateless = _backend_config()
        initial_config = entry.get("initial_config") or {}
        self.instances: dict[str, object] = {}
        self._owner: dict[str, str] = {}  # public method name -> class name (later class wins)
        for class_name in entry["involved_classes"]:
            module = importlib.import_module(mapping[class_name])
            instance = getattr(module, class_name)()
            if class_name not in stateless:
                instance._load_scenario(
                    copy.deepcopy(initial_config.get(class_name, {})), long_context=long_context
                )
            self.instances[class_name] = instance
            for name in _public_methods(type(instance)):
                self._owner[name] = class_name


    # ------------------------------------------------------------------------------ lookup
    def _method(self, name: str):
        return getattr(self.instances[self._owner[name]], name)

    def signatures(self) -> dict[str, list[str]]:
        """Method name -> ordered parameter names (``*args`` / ``**kwargs`` excluded)."""
        return {name: [p.name for p in _params(type(self.instances[cls]), name).values()
                       if p.kind not in _VARIADIC]
                for name, cls in self._owner.items()}

    # ------------------------------------------------------------------------------ parse / validate
    def parse(self, text_or_call: str) -> ToolCall:
        """Exactly one Python-style call, ``ast``-parsed; positional arguments mapped by signature."""
        calls = parse_python_calls(text_or_call, positional="map", signatures=self.signatures())
        if len(calls) != 1:
            raise DecodeError("not_one_call", f"expected exactly one call, got {len(calls)}")
        return calls[0]

    def validate(self, call: ToolCall) -> None:
        """Raise DecodeError unless ``call`` names a public method here with known parameter names.

        The message is the text bfcl-eval's executor would report for the same call.
        """
        if not isinstance(call, ToolCall):
            raise DecodeError("unknown_function", f"not a ToolCall: {type(call).__name__}")
        name = call.name
        short = name.split(".")[1] if "." in name else name
        if short in _BFCL_DENIED:
            raise DecodeError("unknown_function", f"Function call {short} is not allowed.")
        if not name.isidentifier() or name.startswith("_") or name not in self._owner:
            raise DecodeError("unknown_function", f"name '{name.split('.')[0]}' is not defined")
        method = self._method(name)
        params = _params(type(method.__self__), name)
        if any(p.kind == inspect.Parameter.VAR_KEYWORD for p in params.values()):
            return
        allowed = {n for n, p in params.items()
                   if p.kind not in _VARIADIC and p.kind != inspect.Parameter.POSITIONAL_ONLY}
        for key in call.arguments:
            if key not in allowed:
                raise DecodeError(
                    "unknown_function",
                    f"{method.__qualname__}() got an unexpected keyword argument '{key}'",
                )

    # ------------------------------------------------------------------------------ execute
    def execute(self, calls: list[ToolCall]) -> list[str]:
        """Run each call in order; one result string per call, as bfcl-eval's executor gives."""
        results = []
        for call in calls:
            try:
                self.validate(call)
            except DecodeError as e:
                results.append(ERROR_PREFIX + str(e))
                continue
            try:
                value = self._method(call.name)(**copy.deepcopy(call.arguments))
                results.append(_result_string(value))
            except Exception as e:  # bfcl reports any exception as a result string
                results.append(ERROR_PREFIX + str(e))
        return results

    def execute_strings(self, call_strings: list[str]) -> list[str]:
        """Parse, validate and execute each string; a parse failure becomes an error string."""
        results = []
        for text in call_strings:
            try:
                call = self.parse(text)
            except (DecodeError, ValueError, TypeError) as e:
                results.append(ERROR_PREFIX + str(e))
                continue
            results.extend(self.execute([call]))
        return results


# ---------------------------------------------------------------------------------- rendering
def _check_rendered(text: str, call: ToolCall) -> None:
    """Prove ``text`` is ``call.name(k=<literal>, ...)`` with exactly ``call.arguments``."""
    try:
        node = ast.parse(text, mode="eval").body
        ok = (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id == call.name and not node.args
              and [kw.arg for kw in node.keywords] == list(call.arguments))
        ok = ok and all(ast.literal_eval(kw.value) == call.arguments[kw.arg] for kw in node.keywords)
    except (SyntaxError, ValueError, TypeError, RecursionError, MemoryError):
        ok = False
    if not ok:
        raise DecodeError("unrenderable", f"{call.name}: call does not round-trip as literals")


def rerender(calls: list[ToolCall]) -> list[str]:
    """``name(k=repr(v), ...)`` strings -- the only form ever passed to bfcl-eval's checker.

    The name must be a public identifier and every value must survive ``repr`` ->
    ``ast.literal_eval`` unchanged (so no ``inf``/``nan``); otherwise DecodeError("unrenderable").
    Callers must also have validated each call against a :class:`SafeExecutor`.
    """
    out = []
    for call in calls:
        if not isinstance(call, ToolCall) or not call.name.isidentifier() or call.name.startswith("_"):
            raise DecodeError("unrenderable", f"refusing to render call {getattr(call, 'name', call)!r:.80}")
        try:
            text = render_call_string(call)
        except ValueError as e:
            raise DecodeError("unrenderable", str(e)) from None
        _check_rendered(text, call)
        out.append(text)
    return out


# ---------------------------------------------------------------------------------- scoring
def reset_bfcl_instance_cache() -> None:
    """Drop every backend instance bfcl-eval cached as a ``*_instance`` module global."""
    bfcl()
    from bfcl_eval.eval_checker.multi_turn_eval import multi_turn_utils

    namespace = vars(multi_turn_utils)
    for key in [k for k in namespace if k.endswith("_instance")]:
        del namespace[key]


def _safe_steps(executor: SafeExecutor, steps: list[list[ToolCall]]) -> list[list[str]]:
    """Validated, re-rendered steps; invalid calls dropped, then empty steps dropped (as bfcl does)."""
    out = []
    for step in steps:
        rendered = []
        for call in step:
            try:
                executor.validate(call)
                rendered.extend(rerender([call]))
            except DecodeError:
                continue
        if rendered:
            out.append(rendered)
    return out


def check_entry(decoded_turns: list[list[list[ToolCall]]], entry: dict, ground_truth: list[list[str]],
                model_name: str = "looptool") -> dict:
    """Score one multi-turn entry with bfcl-eval's ``multi_turn_checker`` on re-rendered calls.

    ``decoded_turns`` is list[turn] -> list[step] -> list[ToolCall]. A turn count different from the
    ground truth's is ``multi_turn:force_terminated`` (bfcl's eval_runner rule, applied before its
    checker). Ground-truth strings are parsed and re-rendered too, so nothing unvalidated is eval'ed.
    """
    bfcl()
    from bfcl_eval.eval_checker.multi_turn_eval.multi_turn_checker import multi_turn_checker

    if len(decoded_turns) != len(ground_truth):
        return {
            "valid": False,
            "error_message": f"Model was force-terminated during inference phase. The length of the "
                             f"model result turns ({len(decoded_turns)}) does not match the length of "
                             f"the ground truth turns ({len(ground_truth)}).",
            "error_type": "multi_turn:force_terminated",
        }
    executor = SafeExecutor(entry)  # only its method table and signatures are used here
    model_turns = [_safe_steps(executor, turn) for turn in decoded_turns]
    gt_turns = []
    for turn in ground_truth:
        calls = [executor.parse(s) for s in turn]
        for call in calls:
            executor.validate(call)  # ground truth that does not validate is a data error: raise
        gt_turns.append(rerender(calls))
    category = entry["id"].rsplit("_", 1)[0]
    try:
        return multi_turn_checker(model_turns, gt_turns, entry, category, model_name)
    finally:
        reset_bfcl_instance_cache()
