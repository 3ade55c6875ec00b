"""ACEBench prompts follow the benchmark's protocol (function list via str(), time or profile, the reply format,
the special reply templates, the agent and simulator prompts), in prompt and fc modes."""
from __future__ import annotations

from pathlib import Path

from core.toolcalls import ToolCall, render_hermes
from evals.acebench import data, prompts
from evals.acebench.agent import AgentSession
from evals.acebench.sandbox import NOT_A_QUESTION

DATA = Path(__file__).parents[1].parent / "shared" / "acebench" / "data_en"


def first(cat):
    return data.load_category(DATA, cat)[0]


def test_normal_prompt():
    e = next(x for x in data.load_category(DATA, "normal_atom_bool") if x.time)
    sys_msg, user = prompts.messages(e, "prompt")
    assert sys_msg["role"] == "system" and user["role"] == "user"
    assert str(e.functions) in sys_msg["content"]  # Python str() of the list, as upstream (not JSON)
    assert e.time and e.time in sys_msg["content"]
    assert "[ApiName(key1='value1', key2='value2', ...)]" in sys_msg["content"]
    assert user["content"].endswith(e.question) and user["content"].startswith("Conversation history")


def test_preference_prompt_uses_the_profile():
    e = first("normal_preference")
    content = prompts.system_prompt(e, "prompt")
    assert e.profile in content and "User profile" in content


def test_special_prompt_has_the_exact_reply_templates():
    content = prompts.system_prompt(first("special_incomplete"), "prompt")
    for phrase in ('["There is incorrect value (value) for the parameters (key) in the conversation history."]',
                   '["Missing necessary parameters (key1, key2, ...) for the api (ApiName)"]',
                   '["Due to the limitations of the function, I cannot solve this problem."]'):
        assert phrase in content
    normal = prompts.system_prompt(first("normal_similar_api"), "prompt")
    assert "Missing necessary parameters" not in normal


def test_fc_mode_passes_tools():
    e = first("normal_atom_bool")  # holds distractor docs with "arguments" instead of "parameters"
    tools = prompts.as_tools(e.functions)
    assert len(tools) == len(e.functions) and all(t["type"] == "function" for t in tools)
    assert all(t["function"]["parameters"]["type"] == "object" for t in tools)
    content = prompts.system_prompt(e, "fc")
    assert str(e.functions) not in content and "[ApiName(" not in content
    special = prompts.as_tools(first("special_error_param").functions)
    assert special[0]["function"]["parameters"]["type"] == "object"  # "dict" mapped to JSON schema


def test_agent_prompts():
    travel = data.select(DATA, ["agent_multi_turn"], ids=["agent_multi_turn_25"])[0]
    phone = data.select(DATA, ["agent_multi_step"], ids=["agent_multi_step_2"])[0]
    s = AgentSession(travel, "prompt")
    assert s.needs == "user"
    sim, _ = s.user_prompt()
    assert travel.question in sim[0]["content"] and "round-trip" in sim[0]["content"]
    assert sim[1] == {"role": "user", "content": prompts.GREETING}
    s.feed_user("Hi, I want to change my flight.")
    msgs, tools = s.agent_prompt()
    assert tools is None and "airline agent" in msgs[0]["content"] and "finish conversation" in msgs[0]["content"]
    assert str(travel.functions) in msgs[1]["content"]
    assert msgs[1]["content"].endswith("Conversation history:\nuser: Hi, I want to change my flight.")
    step = AgentSession(phone, "prompt")
    msgs, _ = step.agent_prompt()
    assert "mobile-phone assistant" in msgs[0]["content"]
    assert ("password123" in msgs[0]["content"]) is ("FoodPlatform" in phone.extra["involved_classes"])
    assert msgs[1]["content"].endswith(f"user: {phone.question}")


def test_multi_step_session_in_fc_mode():
    e = data.select(DATA, ["agent_multi_step"], ids=["agent_multi_step_2"])[0]
    s = AgentSession(e, "fc")
    msgs, tools = s.agent_prompt()
    assert tools and "APIs you can call" not in msgs[1]["content"]
    assert "[ApiName(" not in msgs[0]["content"] and "start with [" not in msgs[0]["content"]
    travel = data.select(DATA, ["agent_multi_turn"], ids=["agent_multi_turn_25"])[0]
    assert "[ApiName(" not in prompts.agent_system(travel.extra["involved_classes"], "fc", travel.category)
    s.feed_agent(render_hermes([ToolCall("turn_on_wifi", {})]))
    assert s.process == ["[turn_on_wifi()]"] and s.sandbox.instances["BaseApi"].wifi is True
    s.feed_agent("What should I do next?")
    assert s.log[-1]["message"] == NOT_A_QUESTION
    msgs, _ = s.agent_prompt()
    history = msgs[1]["content"].split("Conversation history:\n", 1)[1].splitlines()
    # as upstream, the agent's own messages are not in its multi-step history
    assert history == [f"user: {e.question}", "execution result: [{'status': True, 'message': 'Wi-Fi has been "
                       "turned on'}]", f"execution result: {NOT_A_QUESTION}"]
    s.feed_agent("finish conversation")
    assert s.needs is None and s.stop_reason == "finish conversation"
