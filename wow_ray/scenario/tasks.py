"""``tasks.json``: evaluation tasks in tau2-bench's layout, plus what this project needs.

Each task keeps tau2-bench's fields (``id``, ``description``, ``user_scenario.instructions`` with
``domain``/``reason_for_call``/``known_info``/``unknown_info``/``task_instructions``,
``initial_state``, ``evaluation_criteria`` with gold ``actions``, ``communicate_info``,
``nl_assertions``, ``reward_basis``) and adds:

- ``split``: train, dev or test;
- ``tags``: ``intent:<name>``, ``multi_intent``, ``edge_case``, ``forbidden_request``,
  ``injection``, and free-form ones;
- ``situation``: the machine-readable facts of the case (who the customer is, what they ask,
  evidence they can give). The oracle computes the gold actions from it, the rules and the
  backend; a test checks that the gold actions in the file are still what the oracle says.

Success is judged as in tau2-bench: the backend's state after the agent's episode must hash the
same as after replaying the gold actions, and every ``communicate_info`` string must have been
said. Text is never matched against a reference answer.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from wow_ray.scenario.state import DialogueState, ToolCall


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UserInstructions(_Strict):
    """What the simulated customer knows and wants (tau2-bench's StructuredUserInstructions)."""

    domain: str
    reason_for_call: str
    known_info: str | None = None
    unknown_info: str | None = None
    task_instructions: str


class UserScenario(_Strict):
    """Everything sent to the user simulator."""

    persona: str | None = None
    instructions: UserInstructions


class Description(_Strict):
    """What the task tests; shown to evaluators, never to the agent."""

    purpose: str | None = None
    relevant_policies: str | None = None
    notes: str | None = None


class GoldAction(_Strict):
    """One step of the reference trajectory (tau2-bench's Action)."""

    action_id: str
    requestor: Literal["assistant", "user"] = "assistant"
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    info: str | None = None
    compare_args: list[str] | None = None

    def as_call(self) -> ToolCall:
        return ToolCall(name=self.name, arguments=self.arguments)


class EvaluationCriteria(_Strict):
    """How the task is scored (tau2-bench's EvaluationCriteria)."""

    actions: list[GoldAction] = Field(default_factory=list)
    communicate_info: list[str] = Field(default_factory=list)
    nl_assertions: list[str] = Field(default_factory=list)
    reward_basis: list[Literal["DB", "COMMUNICATE", "NL_ASSERTION", "ACTION", "ENV_ASSERTION"]] = Field(
        default_factory=lambda: ["DB", "COMMUNICATE"]
    )


class Demand(_Strict):
    """What the customer insists on: a tool, optionally with argument values they ask for."""

    tool: str
    args: dict[str, Any] = Field(default_factory=dict)


class IntentRequest(_Strict):
    """One thing the customer wants in this dialogue."""

    intent: str
    slots: dict[str, Any] = Field(default_factory=dict)
    demand: Demand | None = Field(None, description="A specific resolution they ask for.")
    accept_alternatives: bool = Field(
        True, description="If the demand is refused, whether they take what the policy offers."
    )


class Situation(_Strict):
    """The facts of one case, from which the oracle derives the correct actions."""

    user_id: str | None = None
    identity_verified: bool = True
    evidence: list[str] = Field(default_factory=list)
    flags: list[str] = Field(default_factory=list)
    human_requests: int = Field(0, ge=0)
    requests: list[IntentRequest] = Field(min_length=1)

    def initial_state(self) -> DialogueState:
        """The dialogue state at the moment the customer has explained everything."""
        return DialogueState(
            user_id=self.user_id,
            identity_verified=self.identity_verified,
            evidence=list(self.evidence),
            flags=list(self.flags),
            human_requests=self.human_requests,
            intents=[r.intent for r in self.requests],
        )


class Task(_Strict):
    """One evaluation task."""

    id: str = Field(min_length=1)
    split: Literal["train", "dev", "test"]
    tags: list[str] = Field(default_factory=list)
    description: Description | None = None
    user_scenario: UserScenario
    initial_state: dict[str, Any] | None = None
    situation: Situation
    evaluation_criteria: EvaluationCriteria = Field(default_factory=EvaluationCriteria)

    @model_validator(mode="after")
    def _action_ids_unique(self) -> Task:
        ids = [a.action_id for a in self.evaluation_criteria.actions]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"duplicate action_id {', '.join(dup)}")
        return self

    @property
    def intents(self) -> list[str]:
        return [r.intent for r in self.situation.requests]
