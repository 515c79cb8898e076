"""A turn as typed events: what the master agent yields, and what the gateway streams.

The master yields :data:`TurnEvent` (``step``, ``delta``, then one ``final`` that carries the
new state); the deltas are text that stands, joined they are the final reply. The gateway saves the final outcome and streams
:data:`ServiceEvent` to its clients instead: the same ``step``/``delta``, then ``done`` (the
saved turn) or ``error``; it never sends ``reset`` (see ``ResetEvent``). On the wire each event is one server-sent event, named
by its ``type``, its other fields as JSON data (:func:`to_sse`); :func:`from_sse` reads one
back. Consumers match events by class, never by a string key.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from wow_ray.agents.messages import SessionState
from wow_ray.agents.transcript import TurnRecord
from wow_ray.llm.wire import ServerSentEvent, format_sse


class TurnOutcome(BaseModel):
    """The state after a turn, and the turn's record (reply and trace)."""

    state: SessionState
    turn: TurnRecord


class StepEvent(BaseModel):
    """A specialist finished: its name and a short summary of what it found or did."""

    type: Literal["step"] = "step"
    agent: str
    summary: dict[str, Any]


class DeltaEvent(BaseModel):
    """A piece of the reply's text, as the response agent writes it."""

    type: Literal["delta"] = "delta"
    text: str


class ResetEvent(BaseModel):
    """Discard the text streamed so far. Nothing sends it any more: the master's deltas
    stand, and a turn the gateway restarts after a replica died only extends what was shown
    (``wow_ray.serving.turn_stream.ExtendOnly``). Readers still accept it from older
    gateways (the terminal marks it, evaluation counts it as withdrawn text)."""

    type: Literal["reset"] = "reset"


class FinalEvent(BaseModel):
    """The turn's end inside the service: the next state and the turn's record."""

    type: Literal["final"] = "final"
    outcome: TurnOutcome


class TurnReply(BaseModel):
    """A saved turn as the gateway answers it (the whole JSON answer, or the ``done`` event)."""

    model_config = ConfigDict(extra="forbid")

    session_id: str
    turn: int
    reply: str
    status: str
    ticket_id: str | None = None
    intent: str | None = None
    latency_s: float = Field(description="Turn time in the gateway, saving included.")


class DoneEvent(TurnReply):
    """The turn was saved; the streamed reply's final form."""

    type: Literal["done"] = "done"


class ErrorEvent(BaseModel):
    """The turn failed after the stream began: the HTTP status it would have had, and why."""

    type: Literal["error"] = "error"
    status: int
    detail: Any = None


TurnEvent = Annotated[StepEvent | DeltaEvent | ResetEvent | FinalEvent, Field(discriminator="type")]
ServiceEvent = Annotated[StepEvent | DeltaEvent | ResetEvent | DoneEvent | ErrorEvent,
                         Field(discriminator="type")]
_SERVICE_EVENT: TypeAdapter[ServiceEvent] = TypeAdapter(ServiceEvent)


def to_sse(event: StepEvent | DeltaEvent | ResetEvent | DoneEvent | ErrorEvent) -> str:
    """The event as server-sent-event text: named by its type, the other fields as JSON."""
    return format_sse(event.model_dump_json(exclude={"type"}, fallback=str), event.type)


def from_sse(event: ServerSentEvent) -> ServiceEvent:
    """The typed event a server-sent event of the gateway's stream holds."""
    return _SERVICE_EVENT.validate_python({**json.loads(event.data), "type": event.event})
