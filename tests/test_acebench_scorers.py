"""ACEBench scorers: every branch of the compat scorer (the official checker's behaviour, quirks included)
and of the strict scorer on hand-written replies; the decoders; and replies rendered from the ground
truth scoring 100 % in compat mode on every normal and special file, with the entries where that cannot
hold named."""
from __future__ import annotations

from pathlib import Path

import pytest

from core.toolcalls import DecodeError
from evals.acebench import data, truth
from evals.acebench import scorer_compat as compat
from evals.acebench import scorer_strict as strict
from evals.acebench.decode import decode, first_list
from evals.acebench.score import score_agent, score_text

DATA = Path(__file__).parents[1].parent / "shared" / "acebench" / "data_en"

FUNCS = [
    {"name": "get", "description": "a schema whose name is a substring of others", "parameters": {
        "type": "object", "properties": {"q": {"type": "string"}}, "required": []}},
    {"name": "book_trip", "description": "", "parameters": {"type": "object", "properties": {
        "city": {"type": "string"}, "nights": {"type": "integer"}, "price": {"type": "number"},
        "rate": {"type": "float"}, "vip": {"type": "boolean"}, "tags": {"type": "array", "items": {"type": "string"}},
        "guests": {"type": "array", "items": {"type": "object"}}, "dates": {"type": "object"},
        "notes": {"type": "array"}}, "required": ["city"]}},
    {"name": "ping", "description": "", "parameters": {}},
]


def check(calls, gt):
    return compat.check_normal(FUNCS, calls, gt)


def strict_check(calls, gt, arg_set=False):
    return strict.check_normal(FUNCS, calls, gt, arg_set=arg_set)


GT = {"book_trip": {"city": "New York", "nights": 3, "vip": True}}


@pytest.mark.parametrize("calls,valid,error_type", [
    ([{"book_trip": {"city": "New York", "nights": 3, "vip": True}}], True, None),
    ([{"book_trip": {"city": "new-york city", "nights": 3}}], True, None),  # substring after standardising
    ([{"book_trip": {"city": "NY", "nights": 3}}], False, "value_error"),
    ([{"book_trip": {"city": "New York", "nights": 30, "vip": False}}], True, None),  # numbers/bools unchecked
    ([{"book_trip": {"city": "New York", "vip": "true"}}], True, None),  # "true" counts as a bool
    ([{"book_trip": {"city": "New York", "nights": "3"}}], False, "type_error"),
    ([{"book_trip": {"nights": 3}}], False, "lack_args"),  # a required argument is missing
    ([{"book_trip": {"city": "New York", "rate": 1.5}}], False, "addition_args"),  # not in the ground truth
    ([{"book_trip": {"city": "New York", "zzz": 1}}], False, "addition_args"),  # not in the schema
    ([{"book_trip": {"city": "New York"}}, {"ping": {}}], False, "wrong functions number"),
    ([{"book_tour": {"city": "New York"}}], False, "function_mismatch"),
    ([], False, "wrong functions number"),
])
def test_compat_simple_checks(calls, valid, error_type):
    res = check(calls, GT)
    assert (res["valid"], res["error_type"]) == (valid, error_type), res


def test_compat_variable_type_bypass_and_number_as_int():
    gt = {"book_trip": {"city": "Rome", "price": 99.5, "rate": 2}}
    # the ground truth's 99.5 is a float where the schema says number (-> int): "variable", not checked
    assert check([{"book_trip": {"city": "Rome", "price": 1.0, "rate": 2}}], gt)["valid"]
    # an int where the schema says float is accepted (int -> float)
    assert check([{"book_trip": {"city": "Rome", "price": 3.25, "rate": 7}}], gt)["valid"]
    # a value matching neither the schema type nor the ground truth's type fails
    assert check([{"book_trip": {"city": "Rome", "price": "99.5", "rate": 2}}], gt)["error_type"] == "type_error"


def test_compat_lists_dicts_and_lists_of_dicts():
    gt = {"book_trip": {"city": "Oslo", "tags": ["Sea View", "quiet"], "dates": {"from": "2024-01-02", "n": 12},
                        "guests": [{"name": "Ann", "age": 30}]}}
    good = {"city": "Oslo", "tags": ["seaview", "QUIET"], "dates": {"from": "2024/01/02", "n": 123},
            "guests": [{"name": "Ann Lee", "age": 300}]}
    assert check([{"book_trip": good}], gt)["valid"]  # dict leaves: substring of str(), numbers too
    for key, value in (("tags", ["quiet", "Sea View"]), ("dates", {"from": "2024-01-02"}),
                       ("dates", {"from": "2024-01-02", "x": 12}), ("guests", [{"name": "Ann", "age": 30}] * 2),
                       ("guests", [{"name": "Bob", "age": 30}])):
        res = check([{"book_trip": {**good, key: value}}], gt)
        assert res["error_type"] == "value_error", (key, value, res)


def test_compat_quirks_of_the_official_checker():
    # an empty ground-truth list fails the nested type check whatever the model writes
    assert check([{"book_trip": {"city": "X", "tags": []}}], {"book_trip": {"city": "X", "tags": []}})[
        "error_type"] == "type_error"
    # an array without "items" is treated as a list of dicts: strings in it can never pass
    assert not check([{"book_trip": {"city": "X", "notes": ["a"]}}], {"book_trip": {"city": "X", "notes": ["a"]}})[
        "valid"]
    # the ground-truth arguments equal the schema's properties: the call passes outright
    props = FUNCS[1]["parameters"]["properties"]
    assert check([{"book_trip": {"city": 1}}], {"book_trip": dict(props)})["valid"]
    # a call without arguments only matches a schema with empty parameters
    assert check([{"ping": {}}], {"ping": {}})["valid"]
    assert check([{"book_trip": {}}], {"book_trip": {"city": "X"}})["error_type"] == "wrong_param"
    # schemas are found by substring: "get" is in "get_weather", so get_weather is checked against it
    funcs = FUNCS + [{"name": "get_weather", "parameters": {"type": "object", "properties": {
        "q": {"type": "string"}}, "required": []}}]
    res = compat.check_normal(funcs, [{"get_weather": {"q": "x"}}], {"get_weather": {"q": "x"}})
    assert res["error_type"] == "wrong_function_name"


def test_compat_parallel_calls_and_alternatives():
    gt = {"book_trip_1": {"city": "Paris"}, "book_trip_2": {"city": "Rome"}}
    both = [{"book_trip": {"city": "Rome"}}, {"book_trip": {"city": "Paris"}}]
    assert check(both, gt)["valid"]  # order free, _N suffixes stripped
    # one model call may satisfy several ground-truth calls: "Paris Rome" contains both cities
    assert check([{"book_trip": {"city": "Paris Rome"}}, {"book_trip": {"city": "x"}}], gt)["valid"]
    assert not strict_check([{"book_trip": {"city": "Paris Rome"}}, {"book_trip": {"city": "x"}}], gt)["valid"]
    assert strict_check(both, gt)["valid"]
    alts = [{"book_trip": {"city": "Lima"}}, {"book_trip": {"city": "Quito"}}]
    assert check([{"book_trip": {"city": "Quito"}}], alts)["valid"]
    assert check([{"book_trip": {"city": "Cusco"}}], alts)["error_type"] == "value_error"
    assert check("not calls", alts)["error_type"] == "wrong_output_format"


@pytest.mark.parametrize("calls,valid,error_type", [
    ([{"book_trip": {"city": "New York", "nights": 3, "vip": True}}], True, None),
    ([{"book_trip": {"city": "new-york", "nights": 3}}], True, None),  # equal after standardising
    ([{"book_trip": {"city": "New York City", "nights": 3}}], False, "value_error"),  # no substring match
    ([{"book_trip": {"city": "New York", "nights": 30}}], False, "value_error"),  # numbers are compared
    ([{"book_trip": {"city": "New York", "nights": 3.0}}], False, "type_error"),  # integer means int
    ([{"book_trip": {"city": "New York", "vip": "true"}}], False, "type_error"),
    ([{"book_trip": {"city": "New York", "vip": 1}}], False, "type_error"),
    ([{"book_trip": {"nights": 3}}], False, "lack_args"),
    ([{"book_trip": {"city": "New York", "rate": 1.5}}], False, "addition_args"),
    ([{"book_tour": {"city": "New York"}}], False, "function_mismatch"),
    ([{"book_trip": {"city": "New York"}}, {"ping": {}}], False, "wrong functions number"),
])
def test_strict_checks(calls, valid, error_type):
    res = strict_check(calls, GT)
    assert (res["valid"], res["error_type"]) == (valid, error_type), res


def test_strict_values_and_argument_set_switch():
    gt = {"book_trip": {"city": "Oslo", "price": 10, "tags": ["a", "b"], "dates": {"n": 1}}}
    call = {"city": "oslo", "price": 10.0, "tags": ["A", "b"], "dates": {"n": 1}}
    assert strict_check([{"book_trip": call}], gt)["valid"]  # number: 10 == 10.0
    assert not strict_check([{"book_trip": {**call, "tags": ["b", "a"]}}], gt)["valid"]
    assert not strict_check([{"book_trip": {**call, "dates": {"n": 1, "m": 2}}}], gt)["valid"]
    partial = {"city": "Oslo", "price": 10}
    assert strict_check([{"book_trip": partial}], gt)["valid"]
    assert strict_check([{"book_trip": partial}], gt, arg_set=True)["error_type"] == "lack_args"


@pytest.mark.parametrize("category,text,gt,compat_ok,strict_ok,error_type", [
    ("special_incomplete", "Missing necessary parameters (city, nights) for the api (book_trip)",
     {"book_trip": ["city", "nights"]}, True, True, None),
    ("special_incomplete", "missing necessary parameters (city) for the api (book_trip)",
     {"book_trip": ["city"]}, False, False, "error_detection"),  # case-sensitive
    ("special_incomplete", "Missing necessary parameters (city) for the api (x)",
     {"book_trip": ["city"]}, False, False, "error_correction"),
    ("special_incomplete", "Missing necessary parameters (city) for the api (book_trip)",
     {"book_trip": ["city", "nights"]}, False, False, "error_correction"),
    ("special_error_param", "There is incorrect value (12-Feb-2021) for the parameters (date)",
     {"publication_date": ["12-Feb-2021"]}, True, False, None),  # compat ignores the parameter name
    ("special_error_param", "There is incorrect value (12-Feb-2021) for the parameters (publication_date)",
     {"publication_date": ["12-Feb-2021"]}, True, True, None),
    ("special_error_param", "There is incorrect value (x) for the parameters (publication_date)",
     {"publication_date": ["12-Feb-2021"]}, False, False, "error_correction"),
    ("special_error_param", "The date 12-Feb-2021 is wrong", {"publication_date": ["12-Feb-2021"]},
     False, False, "error_detection"),
    ("special_irrelevant", "Due to the limitations of the function, I cannot solve this problem.",
     "...", True, True, None),
    ("special_irrelevant", "[ping()] Due to the limitations of the function, I cannot solve this problem.",
     "...", True, False, None),  # strict: no call allowed
    ("special_irrelevant", "I cannot do that.", "...", False, False, "error_detection"),
])
def test_special_checks(category, text, gt, compat_ok, strict_ok, error_type):
    c, s = compat.check_special(category, text, gt), strict.check_special(category, text, gt)
    assert (c["valid"], s["valid"]) == (compat_ok, strict_ok), (c, s)
    if not compat_ok:
        assert c["error_type"] == error_type


def test_special_checks_see_the_reply_without_its_think_block():
    e = data.Entry("special_irrelevant_0", "special_irrelevant", "", [], "x")
    res = score_text(e, "<think>maybe the limitations of the function?</think>[ping()]", "prompt")
    assert not res["valid"] and res["think_stripped"]
    res = score_text(e, "<think>hmm</think>Due to the limitations of the function, I cannot solve this problem.",
                     "prompt")
    assert res["valid"] and res["strict"]["valid"]


BASE_GT = [{"BaseApi": {"wifi": True, "logged_in": True}},
           {"MessageApi": {"inbox": {"1": {"m": "a"}, "7": {"m": "b"}}}}]


def test_agent_checks():
    state = [{"BaseApi": {"wifi": True, "logged_in": True}},
             {"MessageApi": {"inbox": {"1": {"m": "a"}, "7": {"m": "b"}, "9": {"m": "extra"}}}}]
    assert compat.check_agent(state, BASE_GT)["valid"]  # extra keys inside a dict attribute are allowed
    assert strict.check_agent(state, BASE_GT)["error_type"] == "class attributes wrong"
    assert strict.check_agent(state[:1] + [{"MessageApi": {"inbox": BASE_GT[1]["MessageApi"]["inbox"]}}],
                              BASE_GT)["valid"]
    assert compat.check_agent([], BASE_GT)["error_type"] == "wrong number of class"
    odd = [{"BaseApi": 5}, {"MessageApi": [1]}]  # a hand-written responses file may hold anything
    assert not compat.check_agent(odd, BASE_GT)["valid"] and not strict.check_agent(odd, BASE_GT)["valid"]
    wrong = [{"BaseApi": {"wifi": False, "logged_in": True}}, state[1]]
    assert not compat.check_agent(wrong, BASE_GT)["valid"]
    extra_attr = [{"BaseApi": {"wifi": True, "logged_in": True, "x": 1}}, state[1]]
    assert not compat.check_agent(extra_attr, BASE_GT)["valid"]
    # a misspelled ground-truth class is skipped by compat, mapped by strict
    typo_gt = [BASE_GT[0], {"ReminderAPI": {"reminder_list": {"1": "x"}}}]
    got = [BASE_GT[0], {"ReminderApi": {"reminder_list": {"1": "other"}}}]
    assert compat.check_agent(got, typo_gt)["valid"]
    assert not strict.check_agent(got, typo_gt)["valid"]
    assert strict.check_agent([BASE_GT[0], {"ReminderApi": {"reminder_list": {"1": "x"}}}], typo_gt)["valid"]


def test_process_score():
    stones = ["[a()]", "[b(x=1)]", "[c()]"]
    assert compat.process_score(["[a()]", "[b(x=1)]", "[zz()]", " [c()] "], stones, False) == pytest.approx(1)
    assert compat.process_score(["[a()]", "[b(x=1)]", "[zz()]"], stones, False) == pytest.approx(2 / 3)
    # greedy, as upstream: a milestone that is never found consumes the rest of the trace
    assert compat.process_score(["[a()]", "[zz()]", "[c()]"], stones, False) == pytest.approx(1 / 3)
    assert compat.process_score(["[c()]", "[a()]"], stones, False) == pytest.approx(1 / 3)  # in order only
    assert compat.process_score(["[b(x = 1)]"], stones, False) == 0.0  # exact strings: spacing matters
    assert compat.process_score([], stones, True) == 1.0  # end-to-end correct
    assert compat.process_score([], [], False) == 1.0
    assert compat.process_score(["[b(x=1)]"], [["[a()]"], ["[b(x=1)]", "[c()]"]], False) == 0.5
    e = data.Entry("agent_multi_step_0", "agent_multi_step", "", [], BASE_GT, extra={"mile_stone": stones})
    res = score_agent(e, [], ["[a()]"])
    assert not res["valid"] and res["process_score"] == pytest.approx(1 / 3)


def test_decoders():
    assert first_list("Sure! [f(a='x]'), g()] trailing [h()]") == "[f(a='x]'), g()]"
    assert first_list("no list here") is None
    assert first_list("I'm sure: [f(a='it\\'s')] ok") == "[f(a='it\\'s')]"  # prose apostrophes are harmless
    assert first_list("[ unclosed [f()] and [g()]") == "[f()]"
    assert first_list("[" * 150_000) is None  # one linear pass
    assert decode("I think [f(a=1)]", mode="prompt", scoring="compat") == [{"f": {"a": 1}}]
    got = decode("[f(a=x, b=-3, c=+3, d=g(), e=h(k=1), t=(1, 2), s=2*3, n=...), m.n(z=1)]", mode="prompt",
                 scoring="compat")
    assert got == [{"f": {"a": "x", "b": -3, "c": -3, "d": {"g": {}}, "e": {"h": {"k": 1}}, "t": (1, 2), "s": 6,
                          "n": "..."}}, {"m.n": {"z": 1}}]
    assert decode("[f(1, a=2)]", mode="prompt", scoring="compat") == [{"f": {"a": 2}}]  # positional ignored
    with pytest.raises(DecodeError):
        decode("[f(1, a=2)]", mode="prompt", scoring="strict")
    with pytest.raises(DecodeError):
        decode("[f(a=x)]", mode="prompt", scoring="strict")
    # multi-turn files (compat): all whitespace removed, no bracket extraction
    assert decode(" [f(a='New York')] ", mode="prompt", scoring="compat", multi_turn=True) == [
        {"f": {"a": "NewYork"}}]
    with pytest.raises(DecodeError):
        decode("Here: [f(a=1)]", mode="prompt", scoring="compat", multi_turn=True)
    assert decode("Here: [f(a=1)]", mode="prompt", scoring="strict", multi_turn=True) == [{"f": {"a": 1}}]
    assert decode('<tool_call>\n{"name": "f", "arguments": {"a": 1}}\n</tool_call>', mode="fc",
                  scoring="compat") == [{"f": {"a": 1}}]
    # the official decoder reads a call on a call's attribute by its last name; nothing is evaluated
    assert decode("[__import__('os').system('touch /tmp/x')]", mode="prompt", scoring="compat") == [{"system": {}}]
    for hostile in ("[f(a=2**10**10)]", "[f(a='x'*10**9)]", "[" * 500 + "]" * 500, "[f(a=lambda: 1)]", "[f(a={1, 2})]"):
        with pytest.raises(DecodeError):
            decode(hostile, mode="prompt", scoring="compat")


# Entries whose ground truth, written out as a reply, cannot pass the compat scorer, and why.
_NESTED_LIST_SPACES = ("the official multi-turn decoder removes all whitespace, and a list of strings inside an "
                       "object argument is compared by str() substring without standardising, so 'historical "
                       "sites' can never match")
COMPAT_UNPASSABLE = {
    "normal_single_turn_parallel_function_42": "event_details=[] (an empty ground-truth list always fails the "
                                               "nested type check); passes when the empty lists are left out",
    "normal_preference_40": "UserDietaryPreferences is an array without 'items', checked as a list of dicts; "
                            "its ground truth is a list of strings",
    **{f"normal_multi_turn_user_adjust_{i}": _NESTED_LIST_SPACES
       for i in ("3_0", "4_0", "13_0", "14_0", "15_0", "15_2", "16_0", "24_0", "29_0", "38_0", "43_0", "45_0",
                 "48_0")},
    **{f"normal_multi_turn_user_switch_{i}": _NESTED_LIST_SPACES
       for i in ("6_0", "8_0", "10_1", "11_0", "15_1", "20_0", "25_0", "31_1", "33_0", "35_0", "40_0", "43_0",
                 "45_0", "45_1")},
}


def test_ground_truth_replies_score_100_percent_except_named_entries():
    failing, strict_failing, per_file = set(), set(), {}
    for cat in data.NORMAL + data.SPECIAL:
        entries = data.load_category(DATA, cat)
        for e in entries:
            res = score_text(e, truth.reply(e), "prompt", arg_set=True)
            if not res["valid"]:
                failing.add(e.id)
            if not res["strict"]["valid"]:
                strict_failing.add(e.id)
        per_file[cat] = sum(e.id not in failing for e in entries) / len(entries)
    assert failing == set(COMPAT_UNPASSABLE), sorted(failing ^ set(COMPAT_UNPASSABLE))
    assert not strict_failing
    assert [c for c, acc in per_file.items() if acc == 1.0] == [
        c for c in data.NORMAL + data.SPECIAL
        if not any(x.startswith(c + "_") for x in COMPAT_UNPASSABLE)]
    e = next(x for x in data.load_category(DATA, "normal_single_turn_parallel_function")
             if x.id == "normal_single_turn_parallel_function_42")
    no_empty = {k: {a: v for a, v in args.items() if v != []} for k, args in e.ground_truth.items()}
    assert score_text(e, truth.render_calls(no_empty), "prompt")["valid"]


def test_ground_truth_replies_in_fc_mode():
    from core.toolcalls import ToolCall, render_hermes

    for cat in ("normal_atom_object_deep", "normal_single_turn_parallel_function", "normal_similar_api"):
        for e in data.load_category(DATA, cat)[:10]:
            gt = e.ground_truth[0] if isinstance(e.ground_truth, list) else e.ground_truth
            text = render_hermes([ToolCall(compat._SUFFIX.sub("", k), v) for k, v in gt.items()])
            res = score_text(e, text, "fc")
            assert res["valid"] or e.id in COMPAT_UNPASSABLE, (e.id, res)
            assert res["strict"]["valid"], (e.id, res)


def test_decoded_calls_are_recorded_as_json():
    import json

    e = data.Entry("normal_atom_bool_0", "normal_atom_bool", "", FUNCS, GT)
    res = score_text(e, "[book_trip(city={(1, 2): 'x'}, nights=(1, 2))]", "prompt")
    assert json.loads(json.dumps(res))["decoded"] == [{"book_trip": {"city": {"(1, 2)": "x"}, "nights": [1, 2]}}]


@pytest.mark.parametrize("reply", [
    "[book_trip(city='New York]', nights=3, vip=True)]",        # a `]` inside a string value
    "[book_trip(city='[New York', nights=3, vip=True)]",        # a `[` inside a string value
    "Done] now: [book_trip(city='New York', nights=3, vip=True)]",  # a stray `]` in prose before the list
    "[ here [book_trip(city='New York', nights=3, vip=True)]",  # an outer bracket that never closes
])
def test_official_list_extraction_counts_brackets_without_quotes(reply):
    e = data.Entry("normal_atom_bool_0", "normal_atom_bool", "", FUNCS, GT)
    with pytest.raises(DecodeError):
        decode(reply, mode="prompt", scoring="compat")
    assert decode(reply, mode="prompt", scoring="compat", decoding="lenient")  # the quote-aware one recovers
    res = score_text(e, reply, "prompt")
    assert (res["valid"], res["error_type"]) == (False, "wrong_output_format")
    assert res["by_decoding"]["official"] is False
    assert res["by_decoding"]["lenient"] is True  # (substring matching passes 'New York]' for 'New York')
    lenient = score_text(e, reply, "prompt", decoding="lenient")
    assert lenient["valid"] == lenient["by_decoding"]["lenient"] and lenient["by_decoding"]["official"] is False


def test_official_decoding_keeps_kwargs_unpacking_as_an_argument_named_none():
    reply = "[book_trip(**{'nights': 3}, city='New York', vip=True)]"
    assert decode(reply, mode="prompt", scoring="compat") == [
        {"book_trip": {None: {"nights": 3}, "city": "New York", "vip": True}}]
    with pytest.raises(DecodeError):
        decode(reply, mode="prompt", scoring="compat", decoding="lenient")
    e = data.Entry("normal_atom_bool_0", "normal_atom_bool", "", FUNCS, GT)
    res = score_text(e, reply, "prompt")
    assert res["valid"] is False and res["by_decoding"] == {"official": False, "lenient": False}
    assert json_roundtrip(res["decoded"]) == [{"book_trip": {"null": {"nights": 3}, "city": "New York", "vip": True}}]


def json_roundtrip(x):
    import json

    return json.loads(json.dumps(x))
