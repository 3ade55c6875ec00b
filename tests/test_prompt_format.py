"""core.prompt_format.reward: the binary exact-match reward that training (train.exact_match_reward), the probe
and the failure classes use, in both modes (fc: <tool_call> blocks; prompt: BFCL Python call lists)."""
from __future__ import annotations

from core.prompt_format import reward
from core.schema import Call, Label, Message, Sample
from core.toolcalls import ToolCall, render_hermes


def sample(label: Label) -> Sample:
    return Sample(id="s", tools=[], messages=[Message(role="user", content="What is the weather?")], label=label)


TEXT = sample(Label(text="Could you tell me the city?"))
CALL = sample(Label(calls=[Call(name="get_weather", arguments={"city": "Paris", "days": 3})]))
HERMES = render_hermes([ToolCall("get_weather", {"city": "Paris", "days": 3})])
HERMES_FLOAT = '<tool_call>\n{"arguments": {"days": 3.0, "city": "Paris"}, "name": "get_weather"}\n</tool_call>'
PYTHON = "[get_weather(city='Paris', days=3.0)]"


def test_text_label_rewards_a_reply_without_a_call():
    # the paper's rule: a text label earns 1 for any reply that makes no call; the text is not judged
    assert reward("Which city do you mean?", TEXT, "fc") == 1.0
    assert reward(HERMES, TEXT, "fc") == 0.0
    assert reward("<think>maybe <tool_call> here?</think>Which city?", TEXT, "fc") == 1.0
    assert reward('<tool_call>\n{"name": "get_weather", "arguments": {"city"', TEXT, "fc") == 0.0  # a failed call
    assert reward("Which city do you mean?", TEXT, "prompt") == 1.0
    assert reward(PYTHON, TEXT, "prompt") == 0.0
    assert reward("[get_weather(city=", TEXT, "prompt") == 0.0


def test_call_label_needs_exactly_the_labels_calls():
    assert reward(HERMES_FLOAT, CALL, "fc") == 1.0  # key order and 3 == 3.0 do not matter
    assert reward("<think>Let me think.</think>\n" + HERMES_FLOAT, CALL, "fc") == 1.0
    assert reward("Let me think.</think>\n" + HERMES_FLOAT, CALL, "fc") == 1.0  # opening tag in the prompt
    assert reward(HERMES_FLOAT.replace("Paris", "Rome"), CALL, "fc") == 0.0
    assert reward("It is sunny in Paris.", CALL, "fc") == 0.0
    assert reward(HERMES_FLOAT + "\n" + HERMES_FLOAT, CALL, "fc") == 0.0  # one call too many
    assert reward(PYTHON, CALL, "prompt") == 1.0
    assert reward("<think>hm</think>" + PYTHON, CALL, "prompt") == 1.0
    assert reward(PYTHON.replace("Paris", "Rome"), CALL, "prompt") == 0.0
    assert reward("It is sunny in Paris.", CALL, "prompt") == 0.0
    assert reward(HERMES_FLOAT, CALL, "prompt") == 0.0  # the other mode's format is no call here


def test_malformed_reply_is_zero():
    assert reward('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"\n</tool_call>', CALL, "fc") == 0.0
    assert reward("<tool_call>\n" + "{" * 100_000 + "\n</tool_call>", CALL, "fc") == 0.0
    assert reward('<tool_call>\n{"name": "get_weather", "arguments": {"city"', CALL, "fc") == 0.0
    assert reward("[get_weather(city='Paris'", CALL, "prompt") == 0.0
    assert reward("[get_weather('Paris', 3)]", CALL, "prompt") == 0.0  # positional arguments are refused


def test_list_as_set():
    label = sample(Label(calls=[Call(name="f", arguments={"x": [1, 2]})]))
    reply = render_hermes([ToolCall("f", {"x": [2, 1]})])
    assert reward(reply, label, "fc") == 0.0
    assert reward(reply, label, "fc", list_as_set=True) == 1.0
