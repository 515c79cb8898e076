"""What the rules read about the conversation: ``DialogueState``, and the ``ToolCall`` an agent
proposes.

Agents fill the state in as the dialogue goes (who the customer proved to be, what evidence
they gave, how often they asked for a person, flags such as ``food_safety``); the engine
updates the parts that follow from actions (``record``). Rules read it as ``dialogue.<field>``.
Slots are here for entity lookups (``slots.order_id``) but rules may not read them directly:
a rule's verdict must follow from the action, the records and these facts alone, so that a
replay of the gold actions reaches the same verdicts.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ToolCall(BaseModel):
    """A proposed or performed action: a tool name and its arguments."""

    model_config = ConfigDict(extra="forbid")

    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)

    def key(self) -> tuple[str, str]:
        """A comparable form: name and arguments with nulls dropped and floats rounded."""
        import json

        args = {k: _norm(v) for k, v in sorted(self.arguments.items()) if v is not None}
        return self.name, json.dumps(args, sort_keys=True)


def _norm(value: Any) -> Any:
    if isinstance(value, float):
        return int(value) if value == int(value) else round(value, 6)
    if isinstance(value, list):
        return [_norm(v) for v in value]
    if isinstance(value, dict):
        return {k: _norm(v) for k, v in value.items()}
    return value


class DialogueState(BaseModel):
    """The facts of one conversation that business rules depend on."""

    model_config = ConfigDict(extra="forbid", validate_assignment=False)

    user_id: str | None = Field(None, description="The customer's account, once known.")
    identity_verified: bool = Field(False, description="Identity proven (logged in, or checked).")
    intents: list[str] = Field(default_factory=list, description="Intents raised so far.")
    slots: dict[str, Any] = Field(default_factory=dict, description="Slots of the current intent.")
    evidence: list[str] = Field(default_factory=list, description="Evidence given, e.g. photo.")
    flags: list[str] = Field(default_factory=list, description="e.g. food_safety, legal_threat.")
    turn: int = Field(0, ge=0, description="Customer turns so far.")
    human_requests: int = Field(0, ge=0, description="Times the customer asked for a person.")
    claims_made: int = Field(0, ge=0, description="Compensating actions done in this dialogue.")
    compensation_total: float = Field(0.0, ge=0, description="Amount given in this dialogue.")
    tools_called: list[str] = Field(default_factory=list, description="Successful actions, in order.")
    ended: bool = Field(False, description="Handed over: the agent must stop acting.")

    def record(self, call: ToolCall, result: Any, *, compensation: str | None, ends: bool) -> None:
        """Update the state after ``call`` succeeded with ``result``."""
        self.tools_called.append(call.name)
        if compensation is not None:
            amount = result.get(compensation) if isinstance(result, dict) else None
            if isinstance(amount, int | float):
                self.claims_made += 1
                self.compensation_total = round(self.compensation_total + float(amount), 2)
        if ends:
            self.ended = True

    def as_context(self) -> dict[str, Any]:
        """The state as the plain dict the compiled rules read (``dialogue.<field>``)."""
        return {name: getattr(self, name) for name in type(self).model_fields}
