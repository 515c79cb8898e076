"""Pydantic models of a pack's files, except rules and tasks (``rulespec.py``, ``tasks.py``).

A pack is a folder::

    pack.yaml            manifest: name, reference clock, entities the rules read
    policy.md            the policy as a human agent reads it
    rules.yaml           machine-checkable rules (rulespec.py)
    tools.yaml           typed tool definitions; tools.py binds them to Python functions
    intents.yaml         intents with slots and examples
    playbooks.yaml       how a by-the-book agent resolves each intent (the oracle runs these)
    kb/*.md              knowledge articles
    fixtures/schema.yaml tables of the business backend; fixtures/<table>.json their rows
    tasks.json           evaluation tasks, tau2-bench layout plus split, tags, situation

Every model forbids unknown keys, so a misspelt key is an error naming its file and line
instead of a silently ignored setting. ``schemas.py`` exports these models as JSON Schema.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

NAME = r"^[a-z][a-z0-9_]*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ----------------------------------------------------------------------------- pack.yaml


class WindowSpec(_Strict):
    """Only rows whose ``column`` lies in the last ``days``/``hours`` before the clock."""

    column: str = Field(description="A datetime column of the aggregated table.")
    days: float = Field(0, ge=0, description="Window length in days (added to hours).")
    hours: float = Field(0, ge=0, description="Window length in hours (added to days).")


class AggregateSpec(_Strict):
    """A number computed over a table's rows that match this record, e.g. claims in 30 days."""

    table: str = Field(description="Table to aggregate.")
    fn: Literal["count", "sum", "max", "min"] = Field("count", description="Aggregate function.")
    column: str | None = Field(None, description="Column for sum/max/min.")
    match: dict[str, Any] = Field(
        default_factory=dict,
        description="column -> value; a value starting with '=' is an expression, e.g. "
        "'=user.user_id'; a list means any of its values.",
    )
    within: WindowSpec | None = Field(None, description="Only rows inside this time window.")

    @model_validator(mode="after")
    def _column_needed(self) -> AggregateSpec:
        if self.fn != "count" and not self.column:
            raise ValueError(f"fn '{self.fn}' needs a column")
        return self


class EntitySpec(_Strict):
    """A backend record the rules can read as a namespace, e.g. ``order.status``."""

    table: str = Field(description="The table holding the record.")
    lookup: list[str] = Field(
        min_length=1,
        description="Field paths tried in order for the record's primary key, e.g. "
        "['args.order_id', 'slots.order_id']; the first that is set wins.",
    )
    derived: dict[str, str] = Field(
        default_factory=dict, description="Extra fields: name -> expression over the context."
    )
    aggregates: dict[str, AggregateSpec] = Field(
        default_factory=dict, description="Extra numeric fields computed over other tables."
    )
    owner: str | None = Field(
        None, description="Column holding the account id of the customer the record belongs "
        "to; every write that can name the record must be covered by an ownership rule "
        "(see ownership.py)."
    )


class ClockSpec(_Strict):
    """The pack's reference time. Rules never read the wall clock: ``now`` is this."""

    now: datetime = Field(description="The moment the fixtures describe, e.g. 2025-06-14T20:00:00.")
    timezone: str = Field("UTC", description="Timezone the naive datetimes are in (informative).")


class DialogueVocab(_Strict):
    """Words the dialogue state may hold, so rules and tasks are checked against them."""

    evidence: list[str] = Field(default_factory=list, description="Kinds of evidence, e.g. photo.")
    flags: list[str] = Field(
        default_factory=list, description="Situations an agent may flag, e.g. food_safety."
    )


class PackManifest(_Strict):
    """``pack.yaml``: what the pack is, its clock, and the records its rules read."""

    name: str = Field(pattern=NAME, description="Pack name, the built-in name if shipped.")
    title: str = Field(description="Human title of the business.")
    version: str = Field("1", description="Pack version, bumped by the business.")
    description: str = Field("", description="What the business does.")
    currency: str = Field("USD", description="Currency of amounts in the backend.")
    clock: ClockSpec
    entities: dict[str, EntitySpec] = Field(
        default_factory=dict, description="Namespaces the rules read, resolved in this order."
    )
    dialogue: DialogueVocab = Field(default_factory=DialogueVocab)


# ----------------------------------------------------------------------------- fixtures/schema.yaml

ColumnType = Literal["string", "integer", "number", "boolean", "datetime"]


class ColumnSpec(_Strict):
    """One column of a backend table."""

    type: ColumnType
    nullable: bool = Field(False, description="Whether rows may leave it null.")
    enum: list[str] | None = Field(None, description="Allowed values of a string column.")
    references: str | None = Field(None, description="Foreign key, 'table.column'.")
    description: str = ""


class TableSpec(_Strict):
    """One backend table; its rows live in ``fixtures/<table>.json``."""

    primary_key: str
    columns: dict[str, ColumnSpec] = Field(min_length=1)
    description: str = ""

    @model_validator(mode="after")
    def _key_is_a_column(self) -> TableSpec:
        if self.primary_key not in self.columns:
            raise ValueError(f"primary_key '{self.primary_key}' is not a column")
        return self


class FixtureSchema(_Strict):
    """``fixtures/schema.yaml``: the tables of the business backend."""

    tables: dict[str, TableSpec] = Field(min_length=1)

    def table_keyed_by(self, column: str) -> str | None:
        """The table whose primary key is ``column`` (order_id -> orders): what an id names."""
        return next((t for t, spec in self.tables.items() if spec.primary_key == column), None)


# ----------------------------------------------------------------------------- tools.yaml


class ParamSchema(_Strict):
    """The JSON Schema subset a tool parameter may use (what an LLM's function calling reads)."""

    type: Literal["string", "integer", "number", "boolean", "array", "object"]
    description: str = ""
    enum: list[str | int | float] | None = None
    minimum: float | None = None
    maximum: float | None = None
    exclusiveMinimum: float | None = None  # noqa: N815 - JSON Schema's own spelling
    exclusiveMaximum: float | None = None  # noqa: N815
    minLength: int | None = None  # noqa: N815
    maxLength: int | None = None  # noqa: N815
    pattern: str | None = None
    items: ParamSchema | None = None


class ParametersSchema(_Strict):
    """A tool's parameters: a JSON Schema object."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    type: Literal["object"] = "object"
    properties: dict[str, ParamSchema] = Field(default_factory=dict)
    required: list[str] = Field(default_factory=list)
    additionalProperties: bool = False  # noqa: N815

    @model_validator(mode="after")
    def _required_exist(self) -> ParametersSchema:
        missing = [r for r in self.required if r not in self.properties]
        if missing:
            raise ValueError(f"required names unknown properties: {', '.join(missing)}")
        return self


# What a reply may say was done once a tool ran (wow_ray/agents/claims.py reads replies for them).
ClaimKind = Literal["refund", "coupon", "cancellation", "address_change", "ticket"]


class ToolSpec(_Strict):
    """One tool: what the model sees (name, description, parameters) and how the engine treats
    it (read or write, what it compensates, whether it ends the dialogue)."""

    name: str = Field(pattern=NAME)
    description: str = Field(min_length=1, description="The spec the model reads.")
    kind: Literal["read", "write"] = Field(description="Writes are checked by the rule engine.")
    parameters: ParametersSchema = Field(default_factory=ParametersSchema)
    function: str | None = Field(None, description="Python function in tools.py; default: name.")
    compensation: str | None = Field(
        None, description="Key of the result holding an amount given to the customer."
    )
    ends_dialogue: bool = Field(False, description="After it, the agent hands the dialogue over.")
    claims: list[ClaimKind] = Field(
        default_factory=list, description="What a reply may say was done once this write ran "
        "(a refund, a coupon...); a reply claiming what no executed write did is withdrawn."
    )
    ownership_exempt: str | None = Field(
        None, min_length=1, description="Why no ownership rule needs to cover this write tool "
        "(see ownership.py); without it the pack must have one."
    )
    asked_for: list[str] = Field(
        default_factory=list, description="Phrases a customer uses to demand this write by "
        "name ('full refund'; '{amount} coupon', where {amount} is a number with or without "
        "the currency and becomes that numeric parameter). A demand the rules refuse is "
        "answered with an offer of what they allow, done only if the customer accepts."
    )

    @model_validator(mode="after")
    def _asked_for(self) -> ToolSpec:
        for phrase in self.asked_for:
            for name in re.findall(r"\{(\w*)\}", phrase):
                param = self.parameters.properties.get(name)
                if param is None or param.type not in ("number", "integer"):
                    raise ValueError(f"tool {self.name}: asked_for {phrase!r} names {{{name}}}, "
                                     "which is not a numeric parameter of the tool")
        if self.asked_for and self.kind != "write":
            raise ValueError(f"tool {self.name}: asked_for is for write tools only")
        return self


class ToolsFile(_Strict):
    """``tools.yaml``."""

    tools: list[ToolSpec] = Field(min_length=1)


# ----------------------------------------------------------------------------- intents.yaml


class SlotSpec(_Strict):
    """A piece of information an intent needs, extracted from the dialogue."""

    name: str = Field(pattern=NAME)
    type: Literal["string", "integer", "number", "boolean"] = "string"
    required: bool = False
    description: str = ""
    enum: list[str] | None = None
    shape: str | None = Field(
        None, description="A regular expression the whole value matches (a tax id, a promo "
        "code). A word of that shape in the customer's message is the value; a value the "
        "model gives must have it and appear in what the customer wrote.")
    cues: list[str] = Field(
        default_factory=list, description="Regular expressions with one group that find the "
        "value where a customer announces it ('titled \"(.+?)\"'); the value is group 1.")
    mentions: dict[str, list[str]] = Field(
        default_factory=dict, description="For an enum slot: phrases customers use for a "
        "value besides its own words ('charged twice' for duplicate_charge).")

    @model_validator(mode="after")
    def _patterns(self) -> SlotSpec:
        for where, pattern in [("shape", self.shape), *(("cues", c) for c in self.cues)]:
            if pattern is None:
                continue
            try:
                compiled = re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"slot {self.name}: {where} {pattern!r} is not a regular "
                                 f"expression: {exc}") from exc
            if where == "cues" and compiled.groups != 1:
                raise ValueError(f"slot {self.name}: cue {pattern!r} needs exactly one group")
        unknown = set(self.mentions) - set(self.enum or [])
        if unknown:
            raise ValueError(f"slot {self.name}: mentions of values not in its enum: "
                             f"{sorted(unknown)}")
        return self


class IntentSpec(_Strict):
    """One thing a customer contacts the business about."""

    name: str = Field(pattern=NAME)
    description: str = Field(min_length=1)
    slots: list[SlotSpec] = Field(default_factory=list)
    examples: list[str] = Field(min_length=1, description="Things customers say.")


class IntentsFile(_Strict):
    """``intents.yaml``."""

    intents: list[IntentSpec] = Field(min_length=1)


# ----------------------------------------------------------------------------- playbooks.yaml


class CallStep(_Strict):
    """Call a tool (if ``when`` holds); the oracle skips it when the rule engine denies it."""

    call: str = Field(description="Tool name.")
    args: dict[str, Any] = Field(default_factory=dict, description="Literal or '=expression'.")
    when: str | None = Field(None, description="Only if this expression holds.")
    when_denied_by: list[str] | None = Field(
        None, description="In 'otherwise': only if one of these rules denied the choice."
    )
    communicate: list[str] = Field(
        default_factory=list, description="Facts to tell the customer after the call."
    )


class SayStep(_Strict):
    """Tell the customer facts (``communicate_info``) without calling a tool."""

    communicate: list[str] = Field(min_length=1)
    when: str | None = None
    when_denied_by: list[str] | None = None


FallbackStep = Annotated[
    Annotated[CallStep, Tag("call")] | Annotated[SayStep, Tag("say")],
    Discriminator(lambda v: _step_kind(v)),
]


class ChooseStep(_Strict):
    """Try the options in order and take the first the rules allow; else run ``otherwise``."""

    choose: list[CallStep] = Field(min_length=1)
    when: str | None = None
    otherwise: list[FallbackStep] = Field(
        default_factory=list, description="Steps run when no option was allowed."
    )


def _step_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "choose" if "choose" in value else "call" if "call" in value else "say"
    return "choose" if isinstance(value, ChooseStep) else "call" if isinstance(value, CallStep) else "say"


Step = Annotated[
    Annotated[CallStep, Tag("call")] | Annotated[ChooseStep, Tag("choose")] | Annotated[SayStep, Tag("say")],
    Discriminator(_step_kind),
]


class Playbook(_Strict):
    """The steps that resolve one intent."""

    steps: list[Step] = Field(min_length=1)

    def calls(self) -> list[CallStep]:
        """Every call the playbook may make: its call steps, options and fallbacks."""
        options = [o for step in self.steps for o in (
            [*step.choose, *step.otherwise] if isinstance(step, ChooseStep) else [step])]
        return [o for o in options if isinstance(o, CallStep)]


class PlaybooksFile(_Strict):
    """``playbooks.yaml``: intent name -> playbook."""

    playbooks: dict[str, Playbook]
