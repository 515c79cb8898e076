"""One episode: a simulated customer plays a task against the dialogue service.

The service is reached through a :class:`DialogueTarget`: :class:`LocalTarget` runs the agents
in this process (``local_master``, with a chat client to the served LLM or none for the
deterministic floor); ``wow_ray.evaluation.http.GatewayTarget`` talks to the gateway over HTTP.
Either way the episode ends with the session's transcript and its backend (the state hash and
the diff against the fixtures), which is all the scorers read.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from wow_ray.agents.events import FinalEvent, ResetEvent
from wow_ray.agents.local import new_session
from wow_ray.agents.master import MasterAgent
from wow_ray.agents.messages import SessionState
from wow_ray.agents.transcript import Outcome, Transcript, TurnRecord
from wow_ray.evaluation.customer import Customer, CustomerTurn, Signal
from wow_ray.scenario import DialogueState, ScenarioPack, Task, replay


class BackendView(BaseModel):
    """The business backend a session left: its hash and its diff against the fixtures."""

    model_config = ConfigDict(extra="forbid")

    state_hash: str
    diff: dict[str, Any] | None = None
    source: str = Field("replay", description="'replay' of the action log, or 'service' (the gateway's view).")


@dataclass
class TargetReply:
    """What the service answered to one customer message."""

    reply: str
    status: str
    withdrawn: int = 0  # drafts streamed and then replaced (reset events)


class DialogueTarget(Protocol):
    """A dialogue service an episode runs against."""

    async def open(self, task: Task, session_id: str, metadata: dict[str, Any]) -> DialogueState: ...
    async def send(self, text: str, attachments: list[str]) -> TargetReply: ...
    async def finish(self) -> tuple[Transcript, BackendView]: ...


class LocalTarget:
    """The agents in this process: one master, one session at a time."""

    def __init__(self, pack: ScenarioPack, master: MasterAgent, *, stream: bool = True) -> None:
        self.pack, self.master, self.stream = pack, master, stream
        self.state: SessionState | None = None
        self.turns: list[TurnRecord] = []
        self.start = DialogueState()

    async def open(self, task: Task, session_id: str, metadata: dict[str, Any]) -> DialogueState:
        s = task.situation
        self.state = new_session(self.pack.name, user_id=s.user_id,
                                 identity_verified=s.identity_verified and s.user_id is not None,
                                 session_id=session_id)
        self.turns = []
        self.start = self.state.dialogue.model_copy(deep=True)
        return self.start

    async def send(self, text: str, attachments: list[str]) -> TargetReply:
        assert self.state is not None, "open() first"
        withdrawn = 0
        async for event in self.master.events(self.state, text, attachments, stream=self.stream):
            if isinstance(event, ResetEvent):
                withdrawn += 1
            elif isinstance(event, FinalEvent):
                self.state = event.outcome.state
                self.turns.append(event.outcome.turn)
        return TargetReply(self.turns[-1].reply, self.state.status, withdrawn)

    async def finish(self) -> tuple[Transcript, BackendView]:
        state = self.state
        assert state is not None
        transcript = Transcript(
            session_id=state.session_id, scenario=state.scenario, user_id=state.dialogue.user_id,
            identity_verified=self.start.identity_verified, turns=list(self.turns),
            outcome=Outcome(status=state.status, ticket_id=state.ticket_id,
                            ended_by="handoff" if state.status == "handed_off" else None),
            actions=[a.model_dump() for a in state.actions])
        result = replay(self.pack, self.start, state.actions, check=False)
        return transcript, BackendView(state_hash=result.state_hash, diff=result.diff)


class Episode(BaseModel):
    """A finished episode: the dialogue, its backend, and how the customer ended it."""

    model_config = ConfigDict(extra="forbid")

    episode_id: str
    task_id: str
    trial: int = 0
    transcript: Transcript
    start: DialogueState
    backend: BackendView
    signal: Signal
    withdrawn: int = Field(0, description="Reply drafts streamed, then withdrawn by the check.")
    customer_s: float = Field(0.0, description="Time spent writing the customer's turns.")
    service_s: float = Field(0.0, description="Time spent waiting for the service's replies.")
    wall_s: float = 0.0


@dataclass
class _Clock:
    customer: float = 0.0
    service: float = 0.0
    started: float = field(default_factory=time.perf_counter)


async def run_episode(task: Task, target: DialogueTarget, customer: Customer, *, trial: int = 0,
                      metadata: dict[str, Any] | None = None, max_turns: int = 12) -> Episode:
    """Play ``task`` with ``customer`` against ``target`` until a signal or ``max_turns``."""
    episode_id = f"eval-{task.id}-t{trial}-{uuid.uuid4().hex[:8]}"
    clock = _Clock()
    meta = {"simulated": True, "task_id": task.id, "trial": trial, **(metadata or {})}
    start = await target.open(task, episode_id, meta)
    turn = await _timed(clock, "customer", customer.opening())
    withdrawn, sent = 0, 0
    while turn.signal is None and sent < max_turns:
        answer = await _timed(clock, "service", target.send(turn.text, turn.attachments))
        sent += 1
        withdrawn += answer.withdrawn
        turn = await _timed(clock, "customer", customer.react(answer.reply, answer.status))
    transcript, backend = await _timed(clock, "service", target.finish())
    return Episode(episode_id=episode_id, task_id=task.id, trial=trial, transcript=transcript,
                   start=start, backend=backend, signal=turn.signal or "max_turns",
                   withdrawn=withdrawn, customer_s=round(clock.customer, 4),
                   service_s=round(clock.service, 4),
                   wall_s=round(time.perf_counter() - clock.started, 4))


async def _timed(clock: _Clock, which: str, awaitable: Any) -> Any:
    started = time.perf_counter()
    try:
        return await awaitable
    finally:
        setattr(clock, which, getattr(clock, which) + time.perf_counter() - started)


__all__ = ["BackendView", "CustomerTurn", "DialogueTarget", "Episode", "LocalTarget", "TargetReply",
           "run_episode"]
