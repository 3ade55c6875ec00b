"""How ACEBench entries are put to a model (reference/acebench.md §4), in looptool's own words.

The protocol is the benchmark's: a system message with the time (or, for ``normal_preference``, the user
profile) and the function list rendered with Python ``str()``; a user message that introduces the
conversation history; replies as one bracketed call list ``[ApiName(key='value')]``. The special
categories get the three reply templates whose exact phrases the checks look for ("There is incorrect
value", "Missing necessary parameters", "the limitations of the function"); agents end with
"finish conversation".

Modes, as for BFCL: ``prompt`` (the call format is described in the system prompt; any chat template)
and ``fc`` (the functions go to the chat template as tools and the model answers with
``<tool_call>{json}</tool_call>`` blocks; the special reply templates stay text).
"""
from __future__ import annotations

import copy

from core.errors import UserError

MODES = ("auto", "prompt", "fc")

CALL_FORMAT = (
    "Reply with the call(s) only, as one Python-style list: [ApiName(key1='value1', key2='value2', ...)]. "
    "Put several calls in the same list, separated by commas: [ApiName(key1='value1'), OtherApi(key='value')]. "
    "The reply starts with \"[\" and ends with \"]\"; write nothing else (no explanation, no results).")
ARG_RULES = (
    "Include every parameter the user gave; leave out optional parameters nobody mentioned. Unless a "
    "parameter's description asks for a particular format, take the value from the user's own words. "
    "An API without parameters is called as [ApiName()]; never make up parameter names.")
ARG_RULES_FC = ARG_RULES.replace("is called as [ApiName()]", "is called with no arguments")
FC_FORMAT = "Call the right tool(s) for the next step; when no call is needed, answer in text."

INCORRECT_VALUE = "There is incorrect value (value) for the parameters (key) in the conversation history."
MISSING_PARAMS = "Missing necessary parameters (key1, key2, ...) for the api (ApiName)"
LIMITATIONS = "Due to the limitations of the function, I cannot solve this problem."

ROLES = ("Roles:\nuser: the person making the request\nassistant: you, the AI that makes the API calls\n"
         "tool: returns the results of API calls")


def resolve_mode(mode: str, tokenizer) -> str:
    if mode not in MODES:
        raise UserError(f"--mode: unknown mode {mode!r}; choose from {', '.join(MODES)}")
    if mode != "auto":
        return mode
    from core.prompting import supports_tools

    return "fc" if supports_tools(tokenizer) else "prompt"


def _task(mode: str) -> str:
    return ("You are \"assistant\", an AI that helps by calling APIs. Read the API specifications and the "
            "conversation so far (turns 1 to t), then produce the API call(s) the assistant should make at "
            "turn t+1.\n" + (CALL_FORMAT if mode == "prompt" else FC_FORMAT) + "\n" + _args(mode))


def _args(mode: str) -> str:
    return ARG_RULES if mode == "prompt" else ARG_RULES_FC


def _special_rules(mode: str) -> str:
    ok = CALL_FORMAT if mode == "prompt" else FC_FORMAT
    return (
        "First decide which case applies.\n"
        f"1. The request is clear and complete, and the listed APIs can serve it: make the call(s). {ok}\n"
        "2. Otherwise, point out the problem with exactly one of these replies, filled in:\n"
        "   (a) A value the user gave does not fit the API's definition (wrong type, format or range): "
        f"[\"{INCORRECT_VALUE}\"]\n"
        "   (b) A parameter the API requires was not given: "
        f"[\"{MISSING_PARAMS}\"], naming the missing parameters and the API.\n"
        f"   (c) None of the APIs can do what the user asks: [\"{LIMITATIONS}\"]\n"
        "   Check (a) before (b), and tell the two apart carefully.")


def system_prompt(entry, mode: str) -> str:
    """The system message of a normal or special entry."""
    functions = entry.functions if mode == "prompt" else "(given as tools)"
    if entry.category == "normal_preference":
        head = _task(mode).replace("from the user's own words", "from the user's words or profile")
        return (f"{head}\nUse the user profile below where the request leaves something open.\n\n"
                f"User profile:\n{entry.profile}\n\n{ROLES}\n\nAPI specifications:\n{functions}")
    if entry.kind == "special":
        head = ("You are \"assistant\", an AI that helps by calling APIs. Read the API specifications and "
                "the conversation so far (turns 1 to t), then write the assistant's reply at turn t+1.\n"
                + _special_rules(mode) + "\n" + _args(mode))
    else:
        head = _task(mode)
    return f"{head}\n\n{entry.time or ''}\n\n{ROLES}\n\nAPI specifications:\n{functions}"


def user_prompt(entry) -> str:
    return f"Conversation history, turns 1 to t:\n{entry.question}"


def messages(entry, mode: str) -> list[dict]:
    return [{"role": "system", "content": system_prompt(entry, mode)},
            {"role": "user", "content": user_prompt(entry)}]


# ---------------------------------------------------------------------------------------- tools (fc)

_JSON_TYPES = {"dict": "object", "object": "object", "float": "number", "number": "number", "integer": "integer",
               "int": "integer", "boolean": "boolean", "string": "string", "array": "array", "list": "array",
               "tuple": "array", "any": "string"}


def _schema(node):
    if isinstance(node, list):
        return [_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for k, v in node.items():
        if k == "type" and isinstance(v, str):
            out[k] = _JSON_TYPES.get(v, "string")
        elif k == "properties" and isinstance(v, dict):
            out[k] = {name: _schema(p) for name, p in v.items()}
        else:
            out[k] = _schema(v) if isinstance(v, (dict, list)) else v
    return out


def as_tools(functions: list) -> list[dict]:
    """ACEBench function docs -> OpenAI-style tools (``dict`` -> ``object``, ``float`` -> ``number``; the
    distractor entries that carry ``arguments`` instead of ``parameters`` use those)."""
    tools = []
    for f in functions:
        params = f.get("parameters", f.get("arguments")) or {"type": "object", "properties": {}}
        tools.append({"type": "function", "function": {
            "name": f["name"], "description": f.get("description", ""),
            "parameters": _schema(copy.deepcopy(params))}})
    return tools


# ---------------------------------------------------------------------------------------- agent

AGENT = (
    "You are the agent in a conversation with a user (\"user\"); an execution environment (\"execution\") "
    "runs your API calls and reports their results. From the API list and the conversation so far "
    "(messages 1 to t), write the agent's message t+1.\n"
    "1. When you have what a call needs, reply with the call(s) only, in the form "
    "[ApiName(key1='value1', key2='value2', ...)]; several calls go in the one list, separated by commas. "
    "Nothing else goes in that message. " + ARG_RULES + "\n"
    "2. A task whose steps depend on each other is done one step at a time: look at each execution result "
    "before deciding the next call.\n"
    "3. As a rule, make one call at a time.\n"
    "When you judge the task done, reply \"finish conversation\".\n\n"
    "Roles:\nuser: the user\nagent: you, the AI that makes API calls\nexecution: runs the calls and returns "
    "their results")
AGENT_FC = AGENT.replace(
    "reply with the call(s) only, in the form [ApiName(key1='value1', key2='value2', ...)]; several calls go "
    "in the one list, separated by commas. Nothing else goes in that message.",
    "call the tool(s); a message with tool calls has no other text.").replace(ARG_RULES, ARG_RULES_FC)

PHONE = (
    "It is June 11, 2024, 16:00 (Beijing time). You are a mobile-phone assistant: you can send text messages, "
    "manage reminders and order food delivery.\n"
    "Give no information, knowledge or procedures that neither the user nor the tools provided, and no "
    "opinions. Call one tool at a time (the same tool may be called in parallel); do not talk to the user in "
    "a message that calls a tool, or call a tool in a message to the user. Refuse requests against these "
    "rules. If the user's information is incomplete or a call fails, you may ask the user for more. Names "
    "the user mentions are full names.\n"
    "Messages: get the sender and the recipient before sending. If the inbox is full, ask the user which "
    "message to delete (\"Memory is full, which message would you like to delete?\"). Log in to the device "
    "with login_device() and get sender and recipient before viewing messages; after viewing, ask whether to "
    "add the content to a reminder and whether to reply, and if a message is about food delivery, ask "
    "whether to order it.\n"
    "Reminders: get the title and content first; the time defaults to now. To turn a message into a "
    "reminder, view the message first. After viewing a reminder by title, ask whether to carry out the "
    "tasks in it.\n"
    "Food delivery: get the user's platform account and password and log in with login_food_platform() "
    "first. Ask for merchant, product and quantity if they are missing. Order from different merchants one "
    "at a time. If the balance is too low, tell the user \"Insufficient balance\" and ask whether to change "
    "the order.\n"
    "Calls must use the format above and must start with [ and end with ]. Keep the user informed of "
    "progress and do not repeat the same call. When the task is done, reply \"finish conversation\".")

TRAVEL = (
    "It is July 15, 2024, 08:00 (Beijing time). You are an airline agent: you can book, change and cancel "
    "flight reservations.\n"
    "Before any call that changes the reservation database (booking, changing flights, baggage, cabin, "
    "passenger details), list what will be done and get an explicit \"yes\" from the user; the same kind of "
    "detail need not be confirmed twice. Give no information the user or the tools did not provide, and no "
    "opinions. Call one tool at a time (the same tool may be called in parallel); do not talk to the user in "
    "a message that calls a tool. Refuse requests against these rules; hand the user to a human agent only "
    "for requests outside what you can do.\n"
    "Users have an id, payment methods, reservations and a membership level; reservations have an id, user, "
    "flight, payment method, baggage and cabin; flights have a number, origin, destination, departure and "
    "arrival times and free seats.\n"
    "Booking: get the user id and password, then origin and destination; search for flights, then book. A "
    "round trip is two bookings. With no direct flight, look for connecting flights through a transfer city "
    "and book both legs (they may be booked in one parallel call). Ask how the user pays: cash or bank. "
    "Free checked bags: regular members 1 in economy, 2 in business; silver 2 and 3; gold 3 in either. Each "
    "extra bag costs 50 yuan.\n"
    "Changes: get the user id and password; look reservations up by user id. A flight may be changed only "
    "for one with the same origin and destination (check this yourself; the API does not). The cabin may be "
    "changed without changing the flight; the user pays the difference; all segments of a reservation keep "
    "one cabin. Bags can be added, not removed. Ask how to pay or refund when the flight changes.\n"
    "Cancelling: get the user id, reservation id and reason (change of plans, airline cancellation, other). "
    "Only whole itineraries not yet flown can be cancelled; otherwise hand over to a human agent.\n"
    "Compensation (a 200-yuan voucher per passenger for a cancelled flight, 100 for a delay, for silver/gold "
    "members or business class) only when the user complains and asks for it.\n"
    "Calls must use the format [ApiName(key1='value1', key2='value2', ...)]. When the task is done, reply "
    "\"finish conversation\".")

ACCOUNTS = ("Food-platform accounts, for when they are needed: Eve / password123, Frank / password456, "
            "Grace / password789, Helen / password321, Isaac / password654, Jack / password654.")


_CALL_SENTENCES = ("Calls must use the format above and must start with [ and end with ]. ",
                   "Calls must use the format [ApiName(key1='value1', key2='value2', ...)]. ")


def agent_system(involved_classes: list[str], mode: str, category: str) -> str:
    domain = TRAVEL if "Travel" in involved_classes else PHONE
    if mode == "fc":
        for sentence in _CALL_SENTENCES:
            domain = domain.replace(sentence, "")
    parts = [AGENT if mode == "prompt" else AGENT_FC, domain]
    if category == "agent_multi_step" and "FoodPlatform" in involved_classes:
        parts.append(ACCOUNTS)
    return "\n\n".join(parts)


def agent_user(functions: list | None, history: list[str]) -> str:
    apis = f"APIs you can call: {functions}\n" if functions is not None else ""
    return apis + "Conversation history:\n" + "\n".join(history)


# ---------------------------------------------------------------------------------------- simulator

GREETING = "Is there anything you need help with today?"

_SIM_COMMON = (
    "You play a user talking to an agent.\n\nInstruction: {instruction}\n\nRules:\n"
    "- Write one line per message, as the user.\n"
    "- Do not give away the whole instruction at once; give only what the current step needs.\n"
    "- Never invent facts the instruction does not contain: if asked for something you were not given, say "
    "you do not have it or do not remember.\n")
SIM_PHONE = _SIM_COMMON + (
    "- Give everything the current step needs (a reminder needs its title, description and time).\n"
    "- When asked whether you need anything else, check that every task in the instruction is done; if not, "
    "ask for the next one.\n"
    "- Names in the instruction are full names.\n"
    "- When asked which message to delete, follow the instruction.\n"
    "- Do not offer help to the agent; answer its questions as the instruction says.\n"
    "- When every task is done, write a line with only 'finish conversation'.\n")
SIM_TRAVEL = _SIM_COMMON + (
    "- When asked to confirm, decide from the instruction.\n"
    "- Say things in your own words rather than repeating the instruction, and keep the personality it "
    "describes.\n"
    "- If the instruction asks for a round trip, say at the start that you want to book a round-trip flight.\n"
    "- When the goal is reached, write a line with only 'finish conversation'.\n")


def simulator_system(instruction: str, involved_classes: list[str]) -> str:
    template = SIM_TRAVEL if "Travel" in involved_classes else SIM_PHONE
    return template.format(instruction=instruction)
