"""A strict ACEBench scorer that compares values properly (reference/acebench.md §5.5, "strict").

Reported beside the compat numbers, never mixed into leaderboard comparisons. Differences from compat:

* values: int/float compare numerically, bool exactly, strings *equal* after standardising, lists in
  order, dicts with the same keys; every value is checked (no "variable" bypass); the schema type must
  fit (``number`` accepts int or float, ``integer`` only int);
* calls: a one-to-one assignment of model calls to ground-truth calls, schemas found by exact name;
  with ``arg_set=True`` the model's argument names must equal the ground truth's (off by default:
  a default value may legitimately be left out);
* special: checked on the think-stripped reply; error_param also needs the parameter name;
  irrelevant also needs the reply to make no call;
* agent: the misspelled ground-truth class names are mapped to the classes they mean, every class
  must be present, and dict attributes must be equal (no extra keys).
"""
from __future__ import annotations

import re

from core.toolcalls import DecodeError
from evals.acebench.decode import first_list, strict_calls
from evals.acebench.scorer_compat import standardize

_SUFFIX = re.compile(r"_\d+$")
CLASS_FIXES = {"BaseAPI": "BaseApi", "ReminderAPI": "ReminderApi", "Reminderpi": "ReminderApi"}
_SCHEMA_TYPES = {"string": (str,), "integer": (int,), "int": (int,), "number": (int, float), "float": (int, float),
                 "boolean": (bool,), "array": (list,), "list": (list,), "tuple": (list,), "object": (dict,),
                 "dict": (dict,)}


def _ok() -> dict:
    return {"valid": True, "error_type": None, "error": None}


def _bad(error_type: str, error: str) -> dict:
    return {"valid": False, "error_type": error_type, "error": error}


def values_equal(value, gt) -> bool:
    if isinstance(gt, bool) or isinstance(value, bool):
        return type(value) is bool and type(gt) is bool and value == gt
    if isinstance(gt, (int, float)):
        return isinstance(value, (int, float)) and value == gt
    if isinstance(gt, str):
        return isinstance(value, str) and standardize(value) == standardize(gt)
    if isinstance(gt, list):
        return (isinstance(value, list) and len(value) == len(gt)
                and all(values_equal(v, g) for v, g in zip(value, gt)))
    if isinstance(gt, dict):
        return (isinstance(value, dict) and set(value) == set(gt)
                and all(values_equal(value[k], gt[k]) for k in gt))
    return value == gt


def _type_fits(value, schema_type) -> bool:
    kinds = _SCHEMA_TYPES.get(schema_type)
    if kinds is None:
        return True
    if isinstance(value, bool):
        return bool in kinds
    return isinstance(value, kinds) and not (kinds == (int,) and isinstance(value, bool))


def check_call(schema: dict | None, args: dict, gt_args: dict, arg_set: bool = False) -> dict:
    if schema is None:
        return _bad("checker_error", "no schema with this name")
    params = schema.get("parameters") or {}
    props = params.get("properties") or {}
    for r in params.get("required") or []:
        if r not in args:
            return _bad("lack_args", f"missing required argument {r}")
    for name, value in args.items():
        if name not in props or name not in gt_args:
            return _bad("addition_args", f"unexpected argument {name}")
        stype = (props[name] or {}).get("type")
        if _type_fits(gt_args[name], stype) and not _type_fits(value, stype):  # a gt off its schema wins
            return _bad("type_error", f"argument {name}: {type(value).__name__} is not {props[name].get('type')}")
        if not values_equal(value, gt_args[name]):
            return _bad("value_error", f"argument {name}: {value!r} != {gt_args[name]!r}")
    if arg_set and set(args) != set(gt_args):
        return _bad("lack_args", f"missing argument(s) {', '.join(sorted(set(gt_args) - set(args)))}")
    return _ok()


def _assign(calls: list[dict], gts: list[tuple[str, dict]], schemas: dict, arg_set: bool) -> dict:
    """Backtracking search for a one-to-one assignment; the first failure found is reported."""
    first_error: dict | None = None
    used = [False] * len(calls)

    def place(i: int) -> bool:
        nonlocal first_error
        if i == len(gts):
            return True
        name, gt_args = gts[i]
        for j, c in enumerate(calls):
            if used[j] or next(iter(c)) != name:
                continue
            res = check_call(schemas.get(name), c[name], gt_args, arg_set)
            if not res["valid"]:
                first_error = first_error or res
                continue
            used[j] = True
            if place(i + 1):
                return True
            used[j] = False
        return False

    if place(0):
        return _ok()
    return first_error or _bad("function_mismatch", "no one-to-one assignment of calls")


def check_normal(functions: list, calls, ground_truth, arg_set: bool = False) -> dict:
    if not isinstance(calls, list) or not all(isinstance(c, dict) and len(c) == 1 for c in calls):
        return _bad("wrong_output_format", "the decoded output is not a list of calls")
    schemas = {f["name"]: f for f in functions if isinstance(f, dict) and "name" in f}
    alternatives = ground_truth if isinstance(ground_truth, list) else [ground_truth]
    first = None
    for gt in alternatives:
        gts = [(_SUFFIX.sub("", k), v) for k, v in gt.items()]
        if len(calls) != len(gts):
            res = _bad("wrong functions number", f"{len(calls)} calls for {len(gts)} expected")
        elif sorted(next(iter(c)) for c in calls) != sorted(n for n, _ in gts):
            res = _bad("function_mismatch", "the called functions differ from the expected ones")
        else:
            res = _assign(calls, gts, schemas, arg_set)
        if res["valid"]:
            return res
        first = first or res
    return first


def makes_call(text: str) -> bool:
    """Whether the reply contains a parseable list of calls."""
    body = first_list(text)
    if body is None:
        return False
    try:
        return bool(strict_calls(body))
    except DecodeError:
        return False


def check_special(category: str, text: str, ground_truth) -> dict:
    """``text`` is the think-stripped reply."""
    if category == "special_irrelevant":
        if "the limitations of the function" not in text:
            return _bad("error_detection", "the reply does not decline for the functions' limitations")
        if makes_call(text):
            return _bad("error_detection", "the reply also calls a function")
        return _ok()
    phrase = "Missing necessary parameters" if category == "special_incomplete" else "There is incorrect value"
    if phrase not in text:
        return _bad("error_detection", f"no {phrase!r} in the reply")
    for name, values in ground_truth.items():
        if name not in text:
            return _bad("error_correction", f"the reply does not name {name!r}")
        for v in values:
            if v not in text:
                return _bad("error_correction", f"the reply does not name {v!r}")
    return _ok()


def check_agent(state: list, ground_truth) -> dict:
    gts = ground_truth if isinstance(ground_truth, list) else [ground_truth]
    if not isinstance(state, list) or len(state) != len(gts):
        return _bad("wrong number of class", f"{len(state) if isinstance(state, list) else 'no'} classes "
                                             f"saved, {len(gts)} expected")
    saved = {}
    for d in state:
        if isinstance(d, dict) and len(d) == 1:
            saved.update(d)
    for gt in gts:
        (cls, attrs), = gt.items()
        cls = CLASS_FIXES.get(cls, cls)
        if cls not in saved:
            return _bad("class attributes wrong", f"class {cls} was not saved")
        got = saved[cls]
        if not isinstance(got, dict) or set(got) != set(attrs):
            return _bad("class attributes wrong", f"{cls}: saved attributes differ from {sorted(attrs)}")
        for k, v in attrs.items():
            if got[k] != v or (type(got[k]) is bool) != (type(v) is bool):
                return _bad("class attributes wrong", f"{cls}.{k} differs from the ground truth")
    return _ok()
