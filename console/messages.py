"""Typed messages from the link to the console's widgets (one per kind of bus news).

The link coalesces the high-rate ones itself: it posts a `StatusChanged`, `MetricsReceived`,
`EventRaised` or `BadMessage` only when none of that kind is waiting, and the handler reads the
latest state from the link and then calls `link.release(kind)`. So a flood of 1,000 messages/s
costs the UI a few handler runs per second, whatever order the kinds arrive in.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from textual.message import Message

if TYPE_CHECKING:
    from core.busproto import Ack, Event, Metrics, Status
    from console.link import PendingCommand


class _Coalesced(Message):
    kind = ""

    def can_replace(self, message: Message) -> bool:
        return type(message) is type(self)


class StatusChanged(_Coalesced):
    kind = "status"

    def __init__(self, status: "Status") -> None:
        super().__init__()
        self.status = status


class MetricsReceived(_Coalesced):
    kind = "metrics"

    def __init__(self, metrics: "Metrics") -> None:
        super().__init__()
        self.metrics = metrics


class EventRaised(_Coalesced):
    kind = "events"

    def __init__(self, event: "Event") -> None:
        super().__init__()
        self.event = event


class BadMessage(_Coalesced):
    kind = "bad"

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text


class CommandUpdated(Message):
    """A command of ours changed state: sent (pending), acked, or unconfirmed after the timeout."""

    def __init__(self, command: "PendingCommand", ack: "Ack | None" = None) -> None:
        super().__init__()
        self.command = command
        self.state = command.state  # the command object moves on; this is the state it had then
        self.ack = ack


class BusConnectionChanged(Message):
    def __init__(self, connected: bool) -> None:
        super().__init__()
        self.connected = connected


class CoreOnlineChanged(Message):
    def __init__(self, online: bool | None) -> None:
        super().__init__()
        self.online = online
