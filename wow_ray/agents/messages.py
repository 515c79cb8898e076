"""The state of one session, and the requests and results the agents pass each other.

Everything here is a pydantic model: it is stored as JSON between turns (the session store)
and pickled through Ray Serve handles between deployments. Agents keep no state of their own
between calls, so any replica can serve any turn, and a replica that dies loses nothing.

The business backend of a session is not stored as tables: ``SessionState.actions`` (the tool
calls executed, in order) is replayed on a fresh copy of the pack's fixtures when a replica
needs it. Tools are deterministic against the pack's clock, so the replay is exact.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from wow_ray.agents.prompts import Line
from wow_ray.agents.transcript import AgentStep, HandoffRecord, ToolCallRecord
from wow_ray.scenario import ClaimKind, DialogueState, ToolCall

STATE_SCHEMA_VERSION = 1
# human: a colleague took the hand-over ticket and talks with the customer; the agents wait.
SessionStatus = Literal["active", "ended", "handed_off", "human"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Offer(_Model):
    """A write the rules allow, offered in place of the one the customer demanded and they
    refused; done only if the customer accepts (``wow_ray/agents/offers.py``)."""

    call: ToolCall = Field(description="What would be done if the customer accepts.")
    demanded: ToolCall = Field(description="What the customer asked for.")
    denied_by: list[str] = Field(default_factory=list, description="Rules that refused it.")
    reasons: list[str] = Field(default_factory=list, description="Their reasons, as told.")


class ActiveRequest(_Model):
    """The request being served: its intent, the slots known so far, and progress."""

    intent: str
    slots: dict[str, Any] = Field(default_factory=dict)
    missing: list[str] = Field(default_factory=list, description="Required slots not known yet.")
    asked: dict[str, int] = Field(default_factory=dict, description="Times each slot was asked for.")
    resolved: bool = False
    demand: ToolCall | None = Field(None, description="A write the customer asked for by name.")
    offer: Offer | None = Field(None, description="An offer waiting for the customer's answer.")


class SessionState(_Model):
    """Everything the master needs to continue a session, stored after every turn."""

    schema_version: int = STATE_SCHEMA_VERSION
    session_id: str
    scenario: str
    owner: str | None = Field(None, description="Who the session belongs to: the subject of the "
                              "customer token that started it. Only that customer may use it.")
    dialogue: DialogueState = Field(default_factory=DialogueState)
    active: ActiveRequest | None = None
    known: dict[str, Any] = Field(
        default_factory=dict, description="Id slots the customer gave earlier (order_id...)."
    )
    history: list[Line] = Field(default_factory=list)
    actions: list[ToolCall] = Field(default_factory=list, description="Executed tool calls.")
    status: SessionStatus = "active"
    turns: int = 0
    ticket_id: str | None = None

    def customer_text(self) -> str:
        """Everything the customer said, for grounding slot values."""
        return "\n".join(line.text for line in self.history if line.role == "customer")


# --------------------------------------------------------------------------- understanding


class UnderstandRequest(_Model):
    session_id: str
    message: str
    history: list[Line] = Field(default_factory=list)
    active: ActiveRequest | None = None
    known: dict[str, Any] = Field(default_factory=dict)


class Understanding(_Model):
    """What the customer's message means, validated against the pack."""

    intent: str | None = Field(None, description="A pack intent; None: no request in it.")
    slots: dict[str, Any] = Field(default_factory=dict, description="Values grounded in the text.")
    flags: list[str] = Field(default_factory=list, description="Pack flags the text raises.")
    goodbye: bool = Field(False, description="The customer is closing the conversation.")
    demand: ToolCall | None = Field(None, description="A write of the intent asked for by name.")
    consent: bool | None = Field(None, description="The answer to a pending offer, if any.")
    source: Literal["model", "lexical", "pattern", "none"] = "none"
    step: AgentStep


# --------------------------------------------------------------------------- policy


class ExecuteRequest(_Model):
    """Check one proposed tool call against the rules and, if allowed, run it."""

    session_id: str
    dialogue: DialogueState
    actions: list[ToolCall] = Field(description="What the session's backend has done so far.")
    call: ToolCall
    proposed_by: str
    source: Literal["playbook", "model", "obligation", "handoff"] = "playbook"
    dry_run: bool = Field(False, description="Only ask the rules; never run the call.")


class ExecuteResult(_Model):
    record: ToolCallRecord
    action: ToolCall | None = Field(None, description="The call as executed (clean arguments).")
    dialogue: DialogueState = Field(description="The state after the call (updated if it ran).")


class ObligationInfo(_Model):
    rule_id: str
    tool: str
    arguments: dict[str, Any]
    customer_reason: str
    ends_dialogue: bool


class ReviewRequest(_Model):
    session_id: str
    dialogue: DialogueState
    actions: list[ToolCall]
    intent: str | None = None


class Review(_Model):
    """What the rules demand now, and the policy text that applies."""

    obligations: list[ObligationInfo] = Field(default_factory=list)
    policy: str = ""
    rules_version: str = ""
    step: AgentStep


# --------------------------------------------------------------------------- solution


class SolveRequest(_Model):
    session_id: str
    dialogue: DialogueState
    actions: list[ToolCall]
    intent: str
    slots: dict[str, Any]
    customer_text: str = Field("", description="What the customer said, to resolve ids by name.")
    question: str = Field("", description="The latest message, for knowledge-base lookup.")
    demand: ToolCall | None = Field(None, description="What the customer asked for by name.")
    offer: Offer | None = Field(None, description="The offer the customer answered, if any.")
    consent: bool | None = Field(None, description="Their answer: accepted or declined.")


class Denial(_Model):
    tool: str
    rule_ids: list[str]
    customer_reason: str


class SolveResult(_Model):
    """What the solution agent did and what the reply must convey."""

    executed: list[ToolCallRecord] = Field(default_factory=list)
    dialogue: DialogueState
    actions: list[ToolCall] = Field(description="The action log after this step.")
    slots: dict[str, Any] = Field(default_factory=dict, description="Slots, resolved ids added.")
    missing: list[str] = Field(default_factory=list, description="Required slots still unknown.")
    facts: list[str] = Field(default_factory=list, description="Sentences the reply rests on.")
    must_say: list[str] = Field(default_factory=list, description="Values the reply must quote.")
    denials: list[Denial] = Field(default_factory=list)
    handoff: ToolCall | None = Field(None, description="A hand-over the plan reached.")
    handoff_reason: str | None = None
    knowledge: list[str] = Field(default_factory=list, description="Knowledge-base passages.")
    offer: Offer | None = Field(None, description="Made instead of a refused demand: the reply "
                                "asks the customer, and nothing is done until they accept.")
    step: AgentStep


class AnswerRequest(_Model):
    session_id: str
    question: str
    intent: str | None = None


# --------------------------------------------------------------------------- response


class RespondRequest(_Model):
    session_id: str
    kind: Literal["resolve", "clarify", "deny", "offer", "answer", "handoff", "end", "greet"]
    message: str
    history: list[Line] = Field(default_factory=list)
    facts: list[str] = Field(default_factory=list)
    must_say: list[str] = Field(default_factory=list)
    ask_for: list[str] = Field(default_factory=list, description="Slot names to ask for.")
    intent: str | None = None
    allowed_values: list[str] = Field(
        default_factory=list, description="Numbers and ids the reply may mention besides facts."
    )
    done: list[ClaimKind] | None = Field(
        None, description="What the writes executed in this dialogue did (their tools' claims): "
        "a reply may say only these, or what its facts say, were done. None: not checked."
    )


class Reply(_Model):
    text: str
    step: AgentStep


# --------------------------------------------------------------------------- handoff


class HandoffRequest(_Model):
    session_id: str
    dialogue: DialogueState
    actions: list[ToolCall]
    reason: str = Field(description="Why: a rule id, 'customer_request', or the plan's reason.")
    call: ToolCall | None = Field(None, description="The hand-over call, if already built.")
    intent: str | None = None
    slots: dict[str, Any] = Field(default_factory=dict)
    history: list[Line] = Field(default_factory=list)
    done: list[str] = Field(default_factory=list)
    refused: list[str] = Field(default_factory=list)
    with_summary: bool = Field(
        True, description="False: the ticket is made without its summary, which the caller "
        "asks for next (``summarize``), so the summary's model call can run beside the reply.")


class WrittenSummary(_Model):
    """The hand-over summary a colleague reads first, and the work of writing it."""

    summary: str
    source: Literal["model", "fallback"]
    step: AgentStep = Field(description="The summary's prompt input and model calls.")

    def added_to(self, record: HandoffRecord, step: AgentStep) -> HandoffRecord:
        """``record`` with this summary, and its work added to the hand-over's ``step`` (one
        step per hand-over in the trace, whether the summary was written inline or later)."""
        record = record.model_copy(update={"summary": self.summary, "summary_source": self.source})
        step.input = {**step.input, **self.step.input}
        step.llm_calls.extend(self.step.llm_calls)
        step.fallback = self.step.fallback
        step.output = record.model_dump()
        step.latency_s = round(step.latency_s + self.step.latency_s, 6)
        return record


class HandoffResult(_Model):
    ok: bool
    record: HandoffRecord | None = None
    dialogue: DialogueState
    actions: list[ToolCall]
    customer_reason: str = Field("", description="What to tell the customer.")
    step: AgentStep
