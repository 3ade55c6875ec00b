"""Driving ACEBench agent tasks (reference/acebench.md §6, agent_sandbox_spec.md §3-4).

A session is a small state machine; the runner advances many together, batching the model's turns and
the simulator's turns. ``needs`` says who speaks next ("agent", "user" or None when finished);
``agent_prompt``/``user_prompt`` give the messages, ``feed_agent``/``feed_user`` take the reply.

* ``agent_multi_step``: the task is the first user message; agent and execution alternate; every agent
  message goes to the executor (prose is answered with a fixed "do not ask questions" line); as
  upstream, the agent's own earlier messages are not shown in its history.
* ``agent_multi_turn``: the simulator opens; an agent message that contains ``[...]`` on one line and
  parses as calls goes to the executor, anything else to the simulator.
* Both stop after ``max_messages`` messages (40) or at a message containing "finish conversation"
  (checked from the third message on). In fc mode, tool-call blocks are turned into the call-list text
  ``[f(a=1)]`` before routing, so the executor and the milestones see the same form in both modes.
"""
from __future__ import annotations

from core import toolcalls
from evals.acebench import prompts
from evals.acebench.data import Entry
from evals.acebench.sandbox import Sandbox, routes_to_execution
from evals.acebench.user_sim import UserConversation

FINISH = "finish conversation"


def _as_call_text(text: str, mode: str) -> str:
    if mode != "fc":
        return text
    try:
        calls = toolcalls.parse_hermes(text)
    except toolcalls.DecodeError:
        return text
    return toolcalls.render_python(calls) if calls else text


def _show(content) -> str:
    return content if isinstance(content, str) else repr(content)


class AgentSession:
    def __init__(self, entry: Entry, mode: str, max_messages: int = 40):
        self.entry, self.mode, self.max_messages = entry, mode, max_messages
        self.multi_turn = entry.category == "agent_multi_turn"
        classes = entry.extra.get("involved_classes") or []
        self.sandbox = Sandbox(classes, entry.extra.get("initial_config") or {})
        self.system = prompts.agent_system(classes, mode, entry.category)
        self.log: list[dict] = []  # every message: sender, recipient, message (+ raw model text)
        self.history: list[str] = []  # what the agent is shown
        self.process: list[str] = []  # agent messages that reached the executor
        self.index = 0  # messages after the simulator's opening line
        self.stop_reason: str | None = None
        if self.multi_turn:
            self.user = UserConversation(entry.question, classes)
            self._next = "user"
        else:
            self.history.append(f"user: {entry.question}")
            self._next = "agent"

    # -- protocol --------------------------------------------------------------------------------
    @property
    def needs(self) -> str | None:
        return self._next

    def agent_prompt(self) -> tuple[list[dict], list | None]:
        functions = self.entry.functions if self.mode == "prompt" else None
        msgs = [{"role": "system", "content": self.system},
                {"role": "user", "content": prompts.agent_user(functions, self.history)}]
        return msgs, prompts.as_tools(self.entry.functions) if self.mode == "fc" else None

    def user_prompt(self) -> tuple[list[dict], None]:
        return self.user.messages, None

    def stop(self, reason: str) -> None:
        self.stop_reason = self.stop_reason or reason
        self._next = None

    def _add(self, sender: str, recipient: str, message, raw: str | None = None) -> bool:
        """Log a message; False when the rollout ends with it."""
        entry = {"sender": sender, "recipient": recipient, "message": message}
        if raw is not None and raw != message:
            entry["raw"] = raw
        opening = self.multi_turn and sender == "user" and not self.log
        self.log.append(entry)
        if opening:
            return True
        finished = self.index > 1 and FINISH in _show(message)
        self.index += 1
        if finished:
            self.stop("finish conversation")
            return False
        if self.index >= self.max_messages:
            self.stop("message limit")
            return False
        return True

    def feed_user(self, raw: str) -> None:
        text = toolcalls.strip_think(raw)
        self.user.add_own(text)
        self.history.append(f"user: {text}")
        self._next = "agent" if self._add("user", "agent", text, raw) else None

    def feed_agent(self, raw: str) -> None:
        text = _as_call_text(toolcalls.strip_think(raw), self.mode)
        if self.multi_turn:
            to_exec = routes_to_execution(text)
            self.history.append(f"agent: {text}")
            if not self._add("agent", "execution" if to_exec else "user", text, raw):
                return
            if not to_exec:
                self.user.add_agent(text)
                self._next = "user"
                return
            self.process.append(text)
            content, _ = self.sandbox.run(text, "multi_turn")
            self.history.append(f"execution: {_show(content)}")
            self._next = "agent" if self._add("execution", "agent", content) else None
            return
        if not self._add("agent", "execution", text, raw):
            return
        self.process.append(text)
        content, _ = self.sandbox.run(text, "multi_step")
        self.history.append(f"execution result: {_show(content)}")
        self._next = "agent" if self._add("execution", "agent", content) else None

    # -- result ----------------------------------------------------------------------------------
    def result(self) -> dict:
        return {"raw": self.log, "process": self.process, "state": self.sandbox.saved_state(),
                "stop_reason": self.stop_reason}
