"""Driving a BFCL multi-turn entry turn by turn (reference/bfcl-v3.md §8).

A `Session` is a small state machine: `prompt()` gives the messages (and tools, in fc mode) for the
model's next step, `feed(text)` takes the model's reply. The runner advances many sessions together, so
each model call is a batch across entries. Calls run on bfcl-eval's backend classes through
evals.bfcl_exec.SafeExecutor (ast-parsed, dispatched by name; never eval).

Protocol, as bfcl's own inference loop: a reply that decodes to no call ends the turn; after more than
MAXIMUM_STEP_LIMIT (20) executed steps in one turn the entry is force-quit and its remaining turns are
not run; a miss_func turn adds the held-out docs and sends bfcl's fixed "more functions" message.
"""
from __future__ import annotations

from core import toolcalls
from core import prompt_format
from evals import bfcl_prompt
from evals.bfcl_data import Entry


def step_limit() -> int:
    from core.bfcl_lib import bfcl

    bfcl()
    from bfcl_eval.constants.default_prompts import MAXIMUM_STEP_LIMIT

    return MAXIMUM_STEP_LIMIT


class Session:
    def __init__(self, entry: Entry, mode: str, decoding: str = "official"):
        from evals.bfcl_exec import SafeExecutor

        self.entry, self.mode, self.decoding = entry, mode, decoding
        entry_dict = {"id": entry.id, **entry.extra}
        self.executor = SafeExecutor(entry_dict, long_context=entry.category == "multi_turn_long_context")
        self.functions = list(entry.functions)
        self.messages: list[dict] = []
        self.steps: list[list[str]] = []  # raw model text, per turn, per step
        self.turn = -1
        self.count = 0
        self.done = False
        self.force_quit = False
        self.limit = step_limit()
        self._next_turn()

    def prompt(self) -> tuple[list[dict], list[dict] | None]:
        tools = prompt_format.as_tools(self.functions) if self.mode == "fc" else None
        return self.messages, tools

    def feed(self, text: str) -> None:
        assert not self.done
        self.steps[-1].append(text)
        self.messages.append(bfcl_prompt.assistant_message(text))
        try:
            calls = bfcl_prompt.decode_calls(text, self.mode, self.decoding)
        except toolcalls.DecodeError:
            calls = []
        if not calls:
            self._next_turn()
            return
        results = self.executor.execute(calls)
        self.messages.extend(bfcl_prompt.tool_result_messages(calls, results, self.mode))
        self.count += 1
        if self.count > self.limit:
            self.force_quit = True
            self.done = True

    def _next_turn(self) -> None:
        self.turn += 1
        if self.turn >= len(self.entry.question):
            self.done = True
            return
        self.count = 0
        self.steps.append([])
        missed = self.entry.extra.get("missed_function", {})
        if str(self.turn) in missed:
            added = missed[str(self.turn)]
            self.functions.extend(added)
            new = [bfcl_prompt.added_functions_message(added, self.mode)]
        else:
            new = list(self.entry.question[self.turn])
        if self.turn == 0:
            self.messages = prompt_format.first_messages(new, self.functions, self.mode)
        else:
            self.messages.extend(new)
