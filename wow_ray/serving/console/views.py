"""What the console's pages show, computed from transcripts: plain data, no HTML.

Kept apart from the routes so the shaping (filters, denials, rule-version history, the prompt
a model call saw) is testable without a browser or a served app.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from wow_ray.agents.transcript import ToolCallRecord, Transcript


class SessionRow(BaseModel):
    """One line of the sessions list."""

    session_id: str
    user_id: str | None
    status: str
    ended_by: str | None
    ticket_id: str | None
    turns: int
    intents: list[str]
    denials: list[str] = Field(description="Rule ids that denied a proposed call.")
    human: bool = Field(description="A colleague answered in it.")
    simulated: bool = False
    updated_at: datetime
    last_message: str


class SessionFilter(BaseModel):
    """The list's filters, as query parameters; empty means any."""

    status: str = ""
    intent: str = ""
    outcome: str = Field("", description="How it ended: customer, agent, api, handoff, human.")
    handoff: str = Field("", description="'yes': handed over (a ticket exists); 'no': never.")
    denials: str = Field("", description="'yes': some rule denied a call; 'no': none did.")

    def keeps(self, row: SessionRow) -> bool:
        return ((not self.status or row.status == self.status)
                and (not self.intent or self.intent in row.intents)
                and (not self.outcome or row.ended_by == self.outcome)
                and (not self.handoff or (row.ticket_id is not None) == (self.handoff == "yes"))
                and (not self.denials or bool(row.denials) == (self.denials == "yes")))


def denied_calls(t: Transcript) -> list[ToolCallRecord]:
    return [c for turn in t.turns for c in turn.tool_calls
            if c.decision is not None and not c.decision.allowed]


def session_row(t: Transcript, simulated: bool = False) -> SessionRow:
    intents = list(dict.fromkeys(turn.intent for turn in t.turns if turn.intent))
    said = [turn.customer for turn in t.turns if turn.customer]
    return SessionRow(
        session_id=t.session_id, user_id=t.user_id, status=t.outcome.status,
        ended_by=t.outcome.ended_by, ticket_id=t.outcome.ticket_id, turns=len(t.turns),
        intents=intents, simulated=simulated,
        denials=list(dict.fromkeys(r for c in denied_calls(t) for r in c.decision.rule_ids)),
        human=any(turn.by == "human" for turn in t.turns), updated_at=t.updated_at,
        last_message=said[-1] if said else "")


def rules_history(transcripts: list[Transcript]) -> list[dict[str, Any]]:
    """The rules versions the agents decided with, newest first: when each was first and last
    used, in how many turns (read from the turns, so it is what was in force, not what was
    meant to be)."""
    seen: dict[str, dict[str, Any]] = {}
    for t in transcripts:
        for turn in t.turns:
            if not turn.rules_version:
                continue
            entry = seen.setdefault(turn.rules_version, {
                "version": turn.rules_version, "first": turn.started_at, "last": turn.started_at,
                "turns": 0, "denials": 0})
            entry["first"] = min(entry["first"], turn.started_at)
            entry["last"] = max(entry["last"], turn.started_at)
            entry["turns"] += 1
            entry["denials"] += sum(1 for c in turn.tool_calls
                                    if c.decision is not None and not c.decision.allowed)
    return sorted(seen.values(), key=lambda e: e["last"], reverse=True)


def models_seen(transcripts: list[Transcript]) -> dict[str, dict[str, int]]:
    """Per agent, the model ids its calls reached (and how many calls), from recent turns."""
    found: dict[str, dict[str, int]] = {}
    for t in transcripts:
        for turn in t.turns:
            for step in turn.steps:
                for call in step.llm_calls:
                    per = found.setdefault(step.agent, {})
                    per[call.model] = per.get(call.model, 0) + 1
    return found


def prompt_messages(agent: str, step_input: dict[str, Any]) -> list[dict[str, str]] | None:
    """The chat messages a model call of ``agent`` was sent, re-rendered from the step's input
    with the serving agent's own prompt functions; None when the input is not a prompt input."""
    from wow_ray.agents.prompts import PROMPTS

    spec = PROMPTS.get(agent)
    raw = step_input.get("prompt") if agent in ("solution", "handoff") else step_input
    if spec is None or not raw:
        return None
    try:
        return spec.messages(spec.input_model.model_validate(raw))
    except Exception:  # noqa: BLE001 - an older or partial record: show the raw input only
        return None
