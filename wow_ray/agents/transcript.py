"""The transcript of a session: what was said, and the trace of how each reply was made.

Evaluation (user simulators judged by backend state) and data construction (samples from live
traffic, corrections from failures) read this, never the agents' internals. It is plain JSON
(``Transcript.model_dump(mode="json")``) with a ``schema_version``; fields are only ever added.

Per turn the trace holds one :class:`AgentStep` per specialist that ran, in order: its input
(the exact prompt inputs from ``wow_ray.agents.prompts``, so a sample can be re-rendered),
its output, the LLM calls it made (model id, tokens, latency, raw text), the tool calls it
caused (arguments, results) and the rule decisions taken on them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

TRANSCRIPT_SCHEMA_VERSION = 1
ModelUse = Literal["used", "retried", "completed", "fallback"]


def utcnow() -> datetime:
    return datetime.now(UTC)


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LLMCallRecord(_Record):
    """One request to the LLM deployment."""

    model: str = Field(description="Model id served, '<base>:<adapter>:vN' for an adapter.")
    attempt: int = Field(0, description="0 for the first try, then 1, 2... for retries.")
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = Field(0.0, description="Wall time of the call, as the agent saw it.")
    first_token_s: float | None = Field(
        None, description="Streamed calls: seconds to the first text piece (queue and prefill).")
    first_shown_s: float | None = Field(
        None, description="Streamed replies: seconds to the first text released to the "
        "customer (the first sentence that passed the checks).")
    queue_s: float | None = Field(
        None, description="Seconds the request waited in the engine before it was scheduled "
        "(measured by the engine; None when the server does not report it).")
    prefill_s: float | None = Field(
        None, description="Seconds from being scheduled to the first token (the engine's).")
    decode_s: float | None = Field(
        None, description="Seconds from the first token to the last (the engine's).")
    output: str = Field("", description="The raw text the model returned.")
    valid: bool = Field(True, description="Whether the output passed validation.")
    error: str | None = Field(None, description="Why it was rejected, or the transport error.")


class RuleDecisionRecord(_Record):
    """The rule engine's verdict on one proposed tool call (``Decision.to_dict()``)."""

    tool: str
    allowed: bool
    effect: str
    rule_ids: list[str] = Field(default_factory=list)
    reason: str = ""
    customer_reason: str = ""
    rules_version: str = ""


class ToolCallRecord(_Record):
    """A tool call that was proposed, checked and (if allowed) executed."""

    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    kind: Literal["read", "write", "unknown"] = "unknown"
    proposed_by: str = Field("", description="Agent that proposed it (solution, handoff...).")
    source: Literal["playbook", "model", "obligation", "handoff"] = "playbook"
    decision: RuleDecisionRecord | None = Field(None, description="None for unchecked reads.")
    dry_run: bool = Field(False, description="Only checked, to explain a refusal; never run.")
    executed: bool = Field(False, description="True only if it ran and succeeded.")
    ok: bool = False
    result: Any = None
    error: str | None = None
    latency_s: float = 0.0


class HandoffRecord(_Record):
    """A hand-over to a human: the ticket a colleague picks up."""

    ticket_id: str
    reason: str
    summary: str
    backend_ref: str | None = Field(None, description="The backend's handoff id, if any.")
    summary_source: Literal["model", "fallback"] = "fallback"


class AgentStep(_Record):
    """One specialist's work within a turn."""

    agent: str
    latency_s: float = 0.0
    input: dict[str, Any] = Field(default_factory=dict)
    output: dict[str, Any] = Field(default_factory=dict)
    llm_calls: list[LLMCallRecord] = Field(default_factory=list)
    tool_calls: list[ToolCallRecord] = Field(default_factory=list)
    fallback: bool = Field(False, description="The safe fallback replaced the model's output.")
    completed: bool = Field(
        False, description="Only the model output's checked beginning was kept (it had been "
        "shown) and deterministic text was added after it.")
    error: str | None = None

    @property
    def llm_latency_s(self) -> float:
        return sum(c.latency_s for c in self.llm_calls)

    @property
    def model_use(self) -> ModelUse | None:
        """What became of the step's model output (None: no model was asked). Only ``used``
        counts toward the agent's model share: produced once and kept as produced; a reply
        whose checked beginning was kept and then completed is ``completed``."""
        if not self.llm_calls:
            return None
        if self.completed and not self.fallback:
            return "completed"
        if self.fallback or not self.llm_calls[-1].valid:
            return "fallback"
        return "retried" if len(self.llm_calls) > 1 else "used"


class TurnRecord(_Record):
    """One customer message and the reply, with the trace of how it was made."""

    index: int
    customer: str
    attachments: list[str] = Field(default_factory=list)
    reply: str = ""
    started_at: datetime = Field(default_factory=utcnow)
    latency_s: float = Field(0.0, description="Turn time inside the master agent.")
    steps: list[AgentStep] = Field(default_factory=list)
    handoff: HandoffRecord | None = None
    intent: str | None = None
    moves: list[str] = Field(default_factory=list, description="The master's moves, in order.")
    rules_version: str = ""
    dialogue: dict[str, Any] = Field(
        default_factory=dict, description="DialogueState after the turn (what rules read)."
    )
    by: Literal["agents", "human"] = Field(
        "agents", description="Who answered: 'human' while a colleague holds the session's "
        "ticket. Then a turn is either the customer's message to the colleague (empty reply) or "
        "the colleague's reply (empty customer).")
    operator: str | None = Field(None, description="The colleague who replied (their key's name).")

    @property
    def llm_latency_s(self) -> float:
        return sum(s.llm_latency_s for s in self.steps)

    @property
    def tool_calls(self) -> list[ToolCallRecord]:
        return [c for s in self.steps for c in s.tool_calls]


class Outcome(_Record):
    """How the session ended, if it has."""

    status: Literal["active", "ended", "handed_off", "human"] = "active"
    ended_by: Literal["customer", "agent", "api", "handoff", "human"] | None = None
    ticket_id: str | None = None
    ended_at: datetime | None = None


class Transcript(_Record):
    """A whole session, as stored."""

    schema_version: int = TRANSCRIPT_SCHEMA_VERSION
    session_id: str
    scenario: str
    user_id: str | None = None
    identity_verified: bool = False
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    turns: list[TurnRecord] = Field(default_factory=list)
    outcome: Outcome = Field(default_factory=Outcome)
    actions: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Tool calls executed on the session's backend, in order ({name, arguments}): "
        "the trajectory evaluation replays.",
    )

    @property
    def executed_writes(self) -> list[ToolCallRecord]:
        return [c for t in self.turns for c in t.tool_calls if c.executed and c.kind == "write"]
