"""The master agent: owns the dialogue state and decides which specialist acts next.

One turn, in order:

1. the understanding agent reads the message (intent, grounded slots, flags);
2. the master updates the state: the request in progress, slots carried over, evidence the
   session API attached, flags, how often a human was asked for;
3. the policy agent reports what the rules require now (a hand-over they demand comes first);
4. the master works out the legal moves (clarify, solve, answer, handoff, end). When only one
   is legal it takes it; when several are, its model chooses under a schema listing exactly
   those, with the first as the fallback;
5. the chosen specialist acts (the solution agent through the rule gate; the handoff agent
   when the rules, the plan or the customer require a human), and the response agent writes
   the reply from what was done.

Each model call depends on the one before (the moves on the understanding, the solution's
next call on the last result), except the hand-over summary: the reply needs the ticket, not
its summary, so the summary is written beside the reply (the one pair of a turn's model
calls that runs concurrently).

The master holds no state between turns: it gets a ``SessionState`` and returns the next one
with the turn's record. The specialists are reached through :class:`Specialists`, in-process
(``wow_ray.agents.local``) or through Ray Serve handles (``wow_ray/serving/dialogue_app.py``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any, Protocol

from wow_ray.agents.base import Agent, InvalidOutput, ModelSettings, run_structured
from wow_ray.agents.events import (
    DeltaEvent,
    FinalEvent,
    StepEvent,
    TurnEvent,
    TurnOutcome,
)
from wow_ray.agents.messages import (
    ActiveRequest,
    AnswerRequest,
    HandoffRequest,
    HandoffResult,
    Reply,
    RespondRequest,
    Review,
    ReviewRequest,
    SessionState,
    SolveRequest,
    SolveResult,
    Understanding,
    UnderstandRequest,
    WrittenSummary,
)
from wow_ray.agents.prompt_inputs import handed_over_reply, legal_moves, master_input, solved_reply
from wow_ray.agents.prompts import Line, MasterDecision
from wow_ray.agents.slots import id_shapes
from wow_ray.agents.transcript import AgentStep, TurnRecord
from wow_ray.agents.understanding import missing_slots
from wow_ray.llm.chat import ChatClient
from wow_ray.scenario import ScenarioPack, ToolCall
from wow_ray.scenario.spec import CallStep

MASTER_AGENT = Agent(
    name="master",
    instructions="Keep control of the dialogue: call the specialists as tools, decide when to "
    "end or hand off.",
    prompt="master",
    settings=ModelSettings(max_tokens=16, retries=1),
    handoffs=("handoff",),
    tools=("understanding", "policy", "solution", "response"),
)
CLOSED_REPLIES = {
    "handed_off": "A colleague has taken over this conversation and will reply here.",
    "human": "A colleague is handling this conversation and will reply here.",
    "ended": "This conversation has ended. Please start a new one if you need more help.",
}


class Specialists(Protocol):
    """The specialist agents as the master calls them (local objects or Serve handles)."""

    async def understand(self, req: UnderstandRequest) -> Understanding: ...
    async def review(self, req: ReviewRequest) -> Review: ...
    async def solve(self, req: SolveRequest) -> SolveResult: ...
    async def answer(self, req: AnswerRequest) -> list[str]: ...
    async def respond(self, req: RespondRequest) -> Reply: ...
    def respond_stream(self, req: RespondRequest) -> AsyncIterator[str | Reply]: ...
    async def handoff(self, req: HandoffRequest) -> HandoffResult: ...
    async def summarize(self, req: HandoffRequest) -> WrittenSummary: ...


class MasterAgent:
    """Runs turns of one pack's dialogues."""

    def __init__(self, pack: ScenarioPack, specialists: Specialists,
                 client: ChatClient | None = None, agent: Agent = MASTER_AGENT) -> None:
        self.pack = pack
        self.specialists = specialists
        self.client = client
        self.agent = agent
        self.shapes = id_shapes(pack)
        self.evidence = set(pack.manifest.dialogue.evidence)
        ends = {t.spec.name for t in pack.tools if t.spec.ends_dialogue}
        self.human_intents = {
            name for name, book in pack.playbooks.playbooks.items()
            if book.steps and isinstance(book.steps[0], CallStep) and book.steps[0].call in ends
        }

    async def turn(self, state: SessionState, message: str,
                   attachments: Sequence[str] = ()) -> TurnOutcome:
        """Run one turn to the end (no streaming)."""
        outcome = None
        async for event in self.events(state, message, attachments, stream=False):
            if isinstance(event, FinalEvent):
                outcome = event.outcome
        assert outcome is not None
        return outcome

    async def events(self, state: SessionState, message: str, attachments: Sequence[str] = (),
                     *, stream: bool = True) -> AsyncIterator[TurnEvent]:
        """The turn as events: ``step`` (a specialist finished), ``delta`` (reply text that
        stands: the deltas joined are the final reply, never withdrawn), then ``final``."""
        started = time.perf_counter()
        state = state.model_copy(deep=True)
        record = TurnRecord(index=state.turns, customer=message, attachments=list(attachments))
        if state.status != "active":
            record.reply = CLOSED_REPLIES[state.status]
            yield FinalEvent(outcome=TurnOutcome(state=state, turn=record))
            return
        state.turns += 1
        state.dialogue.turn += 1
        new_evidence = False
        for item in attachments:
            if item in self.evidence and item not in state.dialogue.evidence:
                state.dialogue.evidence.append(item)
                new_evidence = True

        understood = await self.specialists.understand(UnderstandRequest(
            session_id=state.session_id, message=message, history=state.history,
            active=state.active, known=state.known))
        record.steps.append(understood.step)
        yield StepEvent(agent=understood.step.agent,
                        summary={"intent": understood.intent, "slots": understood.slots})
        state.history.append(Line(role="customer", text=message))
        self._update(state, understood)
        record.intent = state.active.intent if state.active else None

        review = await self.specialists.review(ReviewRequest(
            session_id=state.session_id, dialogue=state.dialogue, actions=state.actions,
            intent=record.intent))
        record.steps.append(review.step)
        record.rules_version = review.rules_version

        moves = self.legal_moves(state, understood, review, new_evidence)
        done = len(record.steps)
        move = moves[0] if len(moves) == 1 else await self._decide(state, message, moves, record)
        record.moves.append(move)
        summaries: list[tuple[AgentStep, HandoffRequest]] = []
        respond = await self._act(move, state, understood, review, record, message, summaries)
        respond.done = self.claims_done(state)
        for step in record.steps[done:]:
            yield StepEvent(agent=step.agent, summary=step.output)

        # A hand-over's summary does not feed the reply: both model calls run at once.
        writing = [asyncio.ensure_future(self.specialists.summarize(req)) for _, req in summaries]
        reply: Reply | None = None
        try:
            if stream:
                async for piece in self.specialists.respond_stream(respond):
                    if isinstance(piece, Reply):
                        reply = piece
                    else:
                        yield DeltaEvent(text=piece)
            else:
                reply = await self.specialists.respond(respond)
            written = await asyncio.gather(*writing)
        finally:
            for task in writing:
                task.cancel()  # no-op once done; a failed or abandoned turn leaves none running
        for (step, _), summary in zip(summaries, written, strict=True):
            assert record.handoff is not None
            record.handoff = summary.added_to(record.handoff, step)
        assert reply is not None
        record.steps.append(reply.step)
        record.reply = reply.text
        state.history.append(Line(role="agent", text=reply.text))
        record.dialogue = state.dialogue.model_dump(mode="json")
        record.latency_s = round(time.perf_counter() - started, 6)
        yield FinalEvent(outcome=TurnOutcome(state=state, turn=record))

    # -- state --------------------------------------------------------------------------

    def _update(self, state: SessionState, understood: Understanding) -> None:
        dialogue = state.dialogue
        for flag in understood.flags:
            if flag not in dialogue.flags:
                dialogue.flags.append(flag)
        intent = understood.intent
        if intent is None:
            return
        if intent not in dialogue.intents:
            dialogue.intents.append(intent)
        if intent in self.human_intents:
            dialogue.human_requests += 1
        active = state.active
        if active is None or active.intent != intent or active.resolved:
            spec = next(i for i in self.pack.intents if i.name == intent)
            carried = {s.name: state.known[s.name] for s in spec.slots if s.name in state.known}
            active = state.active = ActiveRequest(intent=intent, slots=carried)
        active.slots.update(understood.slots)
        # What the rules may look records up by (a hand-over they require names the order).
        dialogue.slots = dict(active.slots)
        if understood.demand is not None:
            active.demand = understood.demand
        for name, value in understood.slots.items():
            if name in self.shapes:
                state.known[name] = value
        active.missing = missing_slots(self.pack, intent, active.slots)

    def legal_moves(self, state: SessionState, understood: Understanding, review: Review,
                    new_evidence: bool = False) -> list[str]:
        """The moves open now; the first is the default."""
        active = state.active
        return legal_moves(
            active, understood.intent, goodbye=understood.goodbye,
            hand_over=any(o.ends_dialogue for o in review.obligations), new_evidence=new_evidence,
            answered_offer=understood.consent is not None and active is not None
            and active.offer is not None,
            human=active is not None and active.intent in self.human_intents,
            resolvable=active is not None and self._resolvable(state, active))

    def _resolvable(self, state: SessionState, active: ActiveRequest) -> bool:
        """Whether the solution agent may find the missing ids in the customer's records."""
        return state.dialogue.user_id is not None and all(m in self.shapes for m in active.missing)

    async def _decide(self, state: SessionState, message: str, moves: list[str],
                      record: TurnRecord) -> str:
        started = time.perf_counter()
        inp = master_input(self.pack, message, moves, state.active)
        step = AgentStep(agent=self.agent.name, input=inp.model_dump())

        def check(data: dict[str, Any]) -> str:
            choice = MasterDecision.model_validate(data).next
            if choice not in moves:
                raise InvalidOutput(f"next must be one of {', '.join(moves)}")
            return choice

        move = await run_structured(self.client, self.agent, inp, step, check)
        if move is None:
            step.fallback = self.client is not None and self.agent.settings.use_model
            move = moves[0]
        step.output = {"next": move, "moves": moves}
        step.latency_s = round(time.perf_counter() - started, 6)
        record.steps.append(step)
        return move

    def claims_done(self, state: SessionState) -> list[str]:
        """What the writes executed in this dialogue did, as replies may claim it."""
        return sorted({claim for action in state.actions
                       for claim in self.pack.tools.spec(action.name).claims})

    # -- acting -------------------------------------------------------------------------

    async def _act(self, move: str, state: SessionState, understood: Understanding,
                   review: Review, record: TurnRecord, message: str,
                   summaries: list[tuple[AgentStep, HandoffRequest]]) -> RespondRequest:
        """Carry out ``move``; return what the response agent should write. A hand-over made
        adds its step and the request for its summary to ``summaries`` (written later)."""
        base = {"session_id": state.session_id, "message": message, "history": state.history[:-1],
                "intent": state.active.intent if state.active else None}
        if move == "handoff":
            obligation = next(o for o in review.obligations if o.ends_dialogue)
            call = ToolCall(name=obligation.tool, arguments=obligation.arguments)
            return await self._handoff(state, record, base, call, obligation.rule_id,
                                       [obligation.customer_reason], [], [], summaries)
        if move == "end":
            state.status = "ended"
            return RespondRequest(kind="end", **base)
        if move == "answer":
            knowledge = await self.specialists.answer(AnswerRequest(
                session_id=state.session_id, question=message, intent=base["intent"]))
            return RespondRequest(kind="answer", facts=knowledge, **base)
        active = state.active
        assert active is not None
        if move == "clarify":
            return self._clarify(active, base, [])
        solved = await self.specialists.solve(SolveRequest(
            session_id=state.session_id, dialogue=state.dialogue, actions=state.actions,
            intent=active.intent, slots=active.slots, customer_text=state.customer_text(),
            question=message, demand=active.demand, offer=active.offer,
            consent=understood.consent if active.offer else None))
        record.steps.append(solved.step)
        active.offer = solved.offer
        if understood.consent is not None:
            active.demand = None  # answered: asking again would offer the same thing again
        state.dialogue, state.actions = solved.dialogue, solved.actions
        active.slots.update(solved.slots)
        for name, value in solved.slots.items():
            if name in self.shapes and value is not None:
                state.known[name] = value
        refusals = [d.customer_reason for d in solved.denials if d.customer_reason]
        if solved.handoff is not None:
            return await self._handoff(state, record, base, solved.handoff,
                                       solved.handoff_reason or "playbook",
                                       [*solved.facts, *refusals], solved.must_say, refusals,
                                       summaries)
        if solved.missing:
            active.missing = solved.missing
            for name in solved.missing:  # an id that named no record is forgotten
                active.slots.pop(name, None)
                state.known.pop(name, None)
            return self._clarify(active, base, solved.facts)
        wrote = any(r.kind == "write" for r in solved.executed)
        kind, facts, must_say = solved_reply(solved.facts, solved.must_say, refusals, wrote,
                                             offered=solved.offer is not None)
        # A refusal leaves the request open: new evidence or details may change the verdict.
        active.resolved, active.missing = kind == "resolve", []
        return RespondRequest(kind=kind, facts=facts, must_say=must_say, **base)

    def _clarify(self, active: ActiveRequest, base: dict[str, Any], facts: list[str]) -> RespondRequest:
        for name in active.missing:
            active.asked[name] = active.asked.get(name, 0) + 1
        return RespondRequest(kind="clarify", ask_for=list(active.missing), facts=facts, **base)

    async def _handoff(self, state: SessionState, record: TurnRecord, base: dict[str, Any],
                       call: ToolCall, reason: str, facts: list[str], must_say: list[str],
                       refused: list[str],
                       summaries: list[tuple[AgentStep, HandoffRequest]]) -> RespondRequest:
        active = state.active
        req = HandoffRequest(
            session_id=state.session_id, dialogue=state.dialogue, actions=state.actions,
            reason=reason, call=call, intent=active.intent if active else None,
            slots=active.slots if active else {}, history=state.history, done=facts,
            refused=refused, with_summary=False)
        result = await self.specialists.handoff(req)
        record.steps.append(result.step)
        state.dialogue, state.actions = result.dialogue, result.actions
        if not result.ok or result.record is None:
            return RespondRequest(kind="deny", facts=_unique([*facts, result.customer_reason]),
                                  must_say=_unique([*must_say, *refused, result.customer_reason]),
                                  **base)
        state.status = "handed_off"
        state.ticket_id = result.record.ticket_id
        record.handoff = result.record
        summaries.append((result.step, req.model_copy(update={"reason": result.record.reason}, deep=True)))
        if active is not None:
            active.resolved = True
        told, quote = handed_over_reply(facts, must_say, refused, result.customer_reason,
                                        result.record.ticket_id)
        return RespondRequest(kind="handoff", facts=told, must_say=quote, **base)


def _unique(items: list[str]) -> list[str]:
    return [x for x in dict.fromkeys(items) if x]
