"""core.checks: each schema rule, each type rule and the grounding rules once, on hand-written inputs."""
from __future__ import annotations

import pytest

from core.checks import check_calls, norm_text, type_ok, ungrounded
from core.schema import Call, Label, Message, Sample
from core.toolcalls import ToolCall

DOC = {"name": "book", "parameters": {"type": "dict", "required": ["city"], "properties": {
    "city": {"type": "string"},
    "nights": {"type": "integer"},
    "room": {"type": "string", "enum": ["single", "double"], "default": "single"},
    "guests": {"type": "array", "items": {"type": "string"}},
    "filters": {"type": "dict", "properties": {"stars": {"type": "integer"}}},
    "breakfast": {"type": "boolean"}}}}


def problems(**args) -> list[str]:
    return check_calls([ToolCall("book", args)], [DOC])


def test_a_valid_call_has_no_problem_and_pydantic_calls_work_too():
    assert problems(city="Oslo", nights=2, room="double", guests=["Ann"], filters={"stars": 4}) == []
    assert check_calls([Call(name="book", arguments={"city": "Oslo"})], [DOC]) == []


def test_an_openai_style_wrapped_doc_is_unwrapped():
    assert check_calls([ToolCall("book", {"city": "Oslo"})], [{"type": "function", "function": DOC}]) == []


@pytest.mark.parametrize("call, problem", [
    (ToolCall("fly", {}), "unknown function 'fly'"),
    (ToolCall("book", {}), "book: missing required parameter 'city'"),
    (ToolCall("book", {"city": "Oslo", "pets": True}), "book: unknown parameter 'pets'"),
    (ToolCall("book", {"city": "Oslo", "nights": "2"}), "book.nights: expected integer, got string"),
    (ToolCall("book", {"city": "Oslo", "room": "suite"}), "book.room: 'suite' is not one of the enum values"),
    (ToolCall("book", {"city": "Oslo", "guests": ["Ann", 7]}), "book.guests[1]: expected string, got integer"),
    (ToolCall("book", {"city": "Oslo", "filters": {"stars": "4"}}), "book.filters.stars: expected integer, got string"),
])
def test_each_schema_rule(call, problem):
    found = check_calls([call], [DOC])
    assert len(found) == 1 and found[0].startswith(problem), found


@pytest.mark.parametrize("value, typ, ok", [
    (True, "integer", False),  # a bool is no number: the reward has True != 1
    (False, "number", False),
    (3.0, "integer", True),  # the reward has 3 == 3.0
    (2.5, "integer", False),
    (2, "float", True),
    ("x", "String", True),  # type names are case-insensitive
    (5, "String", False),
    ({"a": 1}, "HashMap", True),  # unknown (Java) type names are not checked
    (None, ["string", "null"], True),  # a list of types: any of them
    (5, ["string", "null"], False),
    ("x", "null", False),
])
def test_type_rules(value, typ, ok):
    assert type_ok(value, typ) is ok


def convo(*turns: tuple[str, str]) -> Sample:
    return Sample(id="g", tools=[DOC], messages=[Message(role=r, content=c) for r, c in turns],
                  label=Label(text="x"))


def test_grounding_positive_and_negative():
    s = convo(("user", "Book Oslo for 3 nights, guests Ann and Bo."))
    assert ungrounded([ToolCall("book", {"city": "Oslo", "nights": 3, "guests": ["Ann", "Bo"]})], s) == []
    assert ungrounded([ToolCall("book", {"city": "Rome"})], s) == ["book.city='Rome' does not occur in the conversation"]


def test_a_number_does_not_occur_inside_a_longer_one_but_integral_floats_match():
    s = convo(("user", "Book Oslo for 13 nights."))
    assert ungrounded([ToolCall("book", {"nights": 3})], s) != []
    assert ungrounded([ToolCall("book", {"nights": 13.0})], s) == []


def test_normalisation_is_casefold_and_collapsed_whitespace():
    assert norm_text("  New\n  YORK ") == "new york"
    s = convo(("user", "Book new   york please."))
    assert ungrounded([ToolCall("book", {"city": " NEW York"})], s) == []


def test_only_user_tool_and_system_turns_ground_values():
    s = convo(("system", "Home: Bergen."), ("user", "Book a hotel."), ("assistant", "Shall I take Oslo?"),
              ("tool", '{"city": "Tromso"}'), ("user", "Yes."))
    assert ungrounded([ToolCall("book", {"city": "Bergen"}), ToolCall("book", {"city": "Tromso"})], s) == []
    assert ungrounded([ToolCall("book", {"city": "Oslo"})], s) != []


def test_enum_members_defaults_booleans_and_empty_strings_need_no_grounding():
    s = convo(("user", "Book Oslo."))
    assert ungrounded([ToolCall("book", {"city": "Oslo", "room": "double", "breakfast": True, "guests": [""]})], s) == []
