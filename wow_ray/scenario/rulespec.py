"""``rules.yaml``: the business rules as data.

A rule says that, when all of its ``when`` conditions hold, an action on one of its ``tools``
is allowed, forbidden, or that another action is required first::

    - id: FD-LATE-002
      title: Partial refund for orders 30-59 minutes late
      effect: allow
      tools: [refund_partial]
      when:
        - args.reason == 'late_delivery'
        - order.minutes_late >= params.late_partial_minutes
        - args.amount <= min(order.total * params.late_partial_rate, params.late_partial_cap)
      priority: 50
      effective_from: 2025-01-01
      customer_reason: Your order was {order.minutes_late} minutes late, so I can refund part of it.

``tools`` takes tool names, group names from ``groups`` written ``@name``, and the built-in
groups ``@read``, ``@write`` and ``@all``. ``params`` are named constants (``params.x``), so a
threshold changes in one place. How the engine decides is in ``rules.py``.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

RULE_ID = r"^[A-Za-z][A-Za-z0-9_.-]*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RequireSpec(_Strict):
    """The action a ``require`` rule demands: a tool and its arguments (literal or '=expr')."""

    tool: str
    args: dict[str, Any] = Field(default_factory=dict)


class Rule(_Strict):
    """One business rule."""

    id: str = Field(pattern=RULE_ID, description="Stable id, quoted back in decisions.")
    title: str = Field(min_length=1, description="One line saying what the rule is for.")
    description: str = ""
    effect: Literal["allow", "forbid", "require"]
    tools: list[str] = Field(
        default_factory=list,
        description="Actions the rule governs: tool names, '@group', '@read', '@write', '@all'. "
        "For 'require', the actions blocked until the required one is done (default @write).",
    )
    when: list[str] = Field(default_factory=list, description="Conditions; all must hold.")
    priority: int = Field(0, ge=0, le=1000, description="Higher wins; on a tie, forbid wins.")
    effective_from: date | None = Field(None, description="First day in force (pack clock).")
    effective_until: date | None = Field(None, description="Last day in force (pack clock).")
    customer_reason: str = Field(
        "", description="What the customer may be told; {expression} placeholders are filled in."
    )
    require: RequireSpec | None = Field(None, description="For effect 'require': what must happen.")

    @field_validator("when", mode="before")
    @classmethod
    def _one_condition_is_a_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _consistent(self) -> Rule:
        if self.effect == "require" and self.require is None:
            raise ValueError("effect 'require' needs a 'require' block naming the tool")
        if self.effect != "require" and self.require is not None:
            raise ValueError("'require' is only for effect 'require'")
        if self.effect != "require" and not self.tools:
            raise ValueError("'tools' must name at least one tool or group")
        if self.effective_from and self.effective_until and self.effective_from > self.effective_until:
            raise ValueError("effective_from is after effective_until")
        return self


class Defaults(_Strict):
    """What happens when no rule matches an action."""

    read: Literal["allow", "deny"] = "allow"
    write: Literal["allow", "deny"] = "deny"
    deny_reason: str = Field(
        "I'm sorry, I'm not able to do that under our policy.",
        description="Told to the customer when an action is denied by default.",
    )


class RulesFile(_Strict):
    """``rules.yaml``."""

    version: str = Field("1", description="Bumped on every change; shown in decisions.")
    defaults: Defaults = Field(default_factory=Defaults)
    params: dict[str, float | int | str | bool] = Field(default_factory=dict)
    groups: dict[str, list[str]] = Field(default_factory=dict, description="Named sets of tools.")
    rules: list[Rule] = Field(default_factory=list)

    @field_validator("version", mode="before")
    @classmethod
    def _version_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int | float) else value
