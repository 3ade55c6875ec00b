"""The official ACEBench scorer's behaviour, quirks included (reference/acebench.md §5, "compat").

Written from the reference's description; no upstream code. Numbers from this scorer line up with the
leaderboard. The quirks kept on purpose (each is tested in tests/test_acebench_scorers.py):

1. strings match by *substring* after standardising (delete `` ,./-_*^``, lower-case, ``'`` -> ``"``), and
   dict leaves by substring of their ``str()`` (numbers too);
2. int, float and bool values are never compared, only their types; a value whose type differs from the
   schema's but equals the ground truth's type is "variable" and not checked; ``number`` maps to int;
3. omitted ground-truth arguments are fine unless the schema marks them required;
4. one model call may satisfy several ground-truth calls of the same name;
5. when the ground-truth arguments equal the schema's ``properties`` the call passes outright;
6. schemas are looked up by substring (the first whose name is *in* the ground-truth key);
7. special checks are case-sensitive substring tests on the reply; error_param ignores parameter names;
8. agent classes whose ground-truth name matches no result class are skipped; extra keys inside dict
   attributes are allowed.

Where upstream would crash (a schema without ``parameters`` or ``required``, an unknown type name) the
call is scored invalid with error type ``checker_error`` instead.
"""
from __future__ import annotations

import re
from collections import Counter

TYPES = {"string": str, "integer": int, "float": float, "boolean": bool, "array": list, "tuple": list,
         "dict": dict, "any": str, "list": list, "object": dict, "objectArray": list, "list(string)": list,
         "list(enum)": list, "int": int, "enum": enumerate, "number": int}
NESTED = ("array", "tuple", "list(string)", "list(enum)", "object", "objectArray")
_STD = re.compile(r"[ ,./\-_*^]")
_SUFFIX = re.compile(r"_\d+$")


class _Crash(Exception):
    """Where the official checker would raise."""


def standardize(s: str) -> str:
    return _STD.sub("", s).lower().replace("'", '"')


def _ok(**kw) -> dict:
    return {"valid": True, "error_type": None, "error": None, **kw}


def _bad(error_type: str, error: str, **kw) -> dict:
    return {"valid": False, "error_type": error_type, "error": error, **kw}


# ---------------------------------------------------------------------------------------- values

def _type_check(value, gt, expected, nested) -> tuple[bool, bool]:
    """-> (valid, is_variable), as the official type checker decides it."""
    gt_type = type(gt) if gt != "" else None
    is_variable = gt_type is not None and gt_type != expected
    if value == "true":
        value = True
    if value == "false":
        value = False
    valid = True
    if type(value) == expected:
        if nested is None:
            return True, is_variable
        try:
            items = list(gt)
        except TypeError:
            raise _Crash("ground truth is not iterable for a nested type") from None
        for item in items:
            flag = True
            if type(item) == list:
                for v in value:
                    if not _type_check(v, item, nested, None)[0]:
                        flag = False
                        break
            if flag:
                return True, is_variable
        valid = False
    if gt_type is not None and (type(value) == gt_type or gt == value):
        return valid, True
    return False, is_variable


def _dict_check(value, gt) -> bool:
    if not isinstance(value, dict) or len(value) != len(gt):
        return False
    for key, v in value.items():
        if v == "true":
            v = True
        if v == "false":
            v = False
        if key not in gt:
            return False
        expected = gt[key]
        if isinstance(expected, dict):
            if not _dict_check(v, expected):
                return False
            continue
        sv = standardize(v) if type(v) == str else v
        sg = standardize(expected) if type(expected) == str else expected
        if str(sg) not in str(sv):
            return False
    return True


def _list_check(value, gt) -> bool:
    sv = [standardize(x) if type(x) == str else x for x in value]
    sg = [standardize(x) if type(x) == str else x for x in gt]
    return sv == sg


def check_call(schema: dict | None, call: dict, gt: dict) -> dict:
    """One model call ``{name: args}`` against one ground-truth call ``{name: args}``."""
    if schema is None or "parameters" not in schema:
        return _bad("checker_error", "no usable schema for the ground-truth function")
    params = schema["parameters"]
    gt_args = next(iter(gt.values()))
    args = next(iter(call.values()))
    if args == {} and params == {}:
        return _ok()
    if args == {} or params == {}:
        return _bad("wrong_param", "empty arguments or empty schema")
    props = params.get("properties") if isinstance(params, dict) else None
    if gt_args == props:
        return _ok()
    if gt_args == {}:
        return _bad("wrong_param", "the ground truth has no arguments")
    if schema["name"] not in call:
        return _bad("wrong_function_name", f"expected {schema['name']}, got {next(iter(call))}")
    if "required" not in params or not isinstance(props, dict):
        return _bad("checker_error", "schema has no 'required' or 'properties'")
    for r in params["required"]:
        if r not in args:
            return _bad("lack_args", f"missing required argument {r}")
    for name, value in args.items():
        if name not in props or name not in gt_args:
            return _bad("addition_args", f"unexpected argument {name}")
        desc = props[name].get("type") if isinstance(props[name], dict) else None
        if desc not in TYPES:
            return _bad("checker_error", f"argument {name}: unknown schema type {desc!r}")
        expected, nested = TYPES[desc], None
        if desc in NESTED:
            items = props[name].get("items")
            ntype = items.get("type") if isinstance(items, dict) and "type" in items else (
                "string" if "string" in desc else "enum" if "enum" in desc else "dict")
            if ntype not in TYPES:
                return _bad("checker_error", f"argument {name}: unknown item type {ntype!r}")
            nested = TYPES[ntype]
        if desc == "tuple" and type(value) == tuple:
            value = list(value)
        if desc == "float" and type(value) == int:
            value = float(value)
        try:
            ok, variable = _type_check(value, gt_args[name], expected, nested)
        except _Crash as e:
            return _bad("checker_error", f"argument {name}: {e}")
        if not ok:
            return _bad("type_error", f"argument {name}: wrong type {type(value).__name__} for {desc}")
        if variable:
            continue
        gt_value = gt_args[name]
        if expected == dict:
            good = isinstance(gt_value, dict) and _dict_check(value, gt_value)
        elif expected == list and nested == dict:
            good = (isinstance(gt_value, list) and len(value) == len(gt_value)
                    and all(isinstance(g, dict) and _dict_check(v, g) for v, g in zip(value, gt_value)))
        elif expected == str:
            good = standardize(gt_value) in standardize(value)
        elif expected == list:
            good = _list_check(value, gt_value)
        else:
            continue
        if not good:
            return _bad("value_error", f"argument {name}: {value!r} does not match {gt_value!r}")
    return _ok()


def _find_schema(functions: list, gt_key: str) -> dict | None:
    for f in functions:
        if isinstance(f, dict) and isinstance(f.get("name"), str) and f["name"] in gt_key:
            return f
    return None


def normal_checker(functions: list, calls: list[dict], gt: dict) -> dict:
    if len(calls) != len(gt):
        return _bad("wrong functions number", f"{len(calls)} calls for {len(gt)} expected")
    names = Counter(next(iter(c)) for c in calls)
    wanted = Counter(_SUFFIX.sub("", k) for k in gt)
    if set(names) != set(wanted):
        extra = sorted(set(names) ^ set(wanted))
        return _bad("function_mismatch", f"function names differ: {', '.join(extra)}")
    if names != wanted:
        return _bad("function_mismatch", "a function is called a different number of times")
    for key, gt_args in gt.items():
        name = _SUFFIX.sub("", key)
        schema = _find_schema(functions, key)
        result = _bad("simple_function_checker:unclear", "wrong_function")
        for c in calls:
            if next(iter(c)) == name:
                result = check_call(schema, c, {name: gt_args})
                if result["valid"]:
                    break
        if not result["valid"]:
            return result
    return _ok()


def check_normal(functions: list, calls, ground_truth) -> dict:
    """Any of the ground-truth alternatives may pass; errors come from the first alternative."""
    if not isinstance(calls, list) or not all(isinstance(c, dict) and len(c) == 1 for c in calls):
        return _bad("wrong_output_format", "the decoded output is not a list of calls")
    alternatives = ground_truth if isinstance(ground_truth, list) else [ground_truth]
    first = None
    for gt in alternatives:
        res = normal_checker(functions, calls, gt)
        if res["valid"]:
            return res
        first = first or res
    return first or _bad("wrong_output_format", "no ground truth")


# ---------------------------------------------------------------------------------------- special

def check_special(category: str, text: str, ground_truth) -> dict:
    """Raw, case-sensitive substring tests on the reply (§5.3)."""
    if category == "special_irrelevant":
        if "the limitations of the function" not in text:
            return _bad("error_detection", "the reply does not decline for the functions' limitations")
        return _ok()
    result = _ok()
    phrase = "Missing necessary parameters" if category == "special_incomplete" else "There is incorrect value"
    for name, values in ground_truth.items():
        if phrase not in text:
            result = _bad("error_detection", f"no {phrase!r} in the reply")
        elif category == "special_incomplete" and name not in text:
            result = _bad("error_correction", f"the reply does not name the API {name}")
        else:
            for v in values:
                if v not in text:
                    result = _bad("error_correction", f"the reply does not name {v!r}")
    return result


# ---------------------------------------------------------------------------------------- agent

def _agent_class(model_attrs: dict, gt_attrs: dict) -> list[str]:
    errors = []
    for attr, value in model_attrs.items():
        if attr not in gt_attrs:
            errors.append(f"attribute {attr} is not in the ground truth")
            continue
        expected = gt_attrs[attr]
        if isinstance(expected, dict):
            for k, v in expected.items():
                if not isinstance(value, dict) or k not in value:
                    errors.append(f"{attr}: missing {k}")
                elif v != value[k]:
                    errors.append(f"{attr}.{k}: expected {v!r}, got {value[k]!r}")
        elif expected != value:
            errors.append(f"{attr}: expected {expected!r}, got {value!r}")
    return errors


def check_agent(state: list, ground_truth) -> dict:
    """End-to-end check of the saved sandbox state (a JSON round-tripped list of {Class: attrs})."""
    gts = ground_truth if isinstance(ground_truth, list) else [ground_truth]
    if not isinstance(state, list) or len(state) != len(gts):
        return _bad("wrong number of class", f"{len(state) if isinstance(state, list) else 'no'} classes "
                                             f"saved, {len(gts)} expected")
    errors: list[str] = []
    for gt in gts:
        match = next((d for d in state if isinstance(d, dict) and set(d) == set(gt)), None)
        if match:  # a class name found in no result entry reuses the previous verdict (in effect: skipped)
            attrs = next(iter(match.values()))
            errs = (_agent_class(attrs, next(iter(gt.values()))) if isinstance(attrs, dict)
                    else ["the saved attributes are not an object"])
            errors.extend(f"{next(iter(gt))}: {e}" for e in errs)
    if errors:
        return _bad("class attributes wrong", "; ".join(errors[:5]))
    return _ok()


def _subsequence(process: list[str], milestones: list[str]) -> float:
    if not milestones:
        return 1.0
    pos, hits = 0, 0
    for stone in milestones:
        while pos < len(process):
            pos += 1
            if process[pos - 1].strip() == stone.strip():
                hits += 1
                break
    return hits / len(milestones)


def process_score(process: list[str], milestones: list, end_to_end: bool) -> float:
    """Upstream's per-task process accuracy: 1.0 when end-to-end correct, else greedy milestone matching
    (with alternative milestone lists, the best of their rounded scores)."""
    if end_to_end:
        return 1.0
    if milestones and isinstance(milestones[0], list):
        return max(round(_subsequence(process, m), 3) for m in milestones)
    return _subsequence(process, milestones)
