"""A loaded scenario pack, and the per-episode ``Environment`` agents and evaluators act in.

``ScenarioPack`` is the validated, read-only content of a pack folder plus one ``RuleEngine``
(shared, hot-reloadable) and one backend template. ``pack.new_environment()`` gives an episode:
a fresh copy of the backend, the toolset and the rules, with the checks wired in::

    env = pack.new_environment()
    state = DialogueState(user_id="U0001", identity_verified=True)
    env.call("get_order", {"order_id": "O10001"}, state)          # reads are allowed by default
    decision = env.check(ToolCall(name="refund_full", arguments={...}), state)
    result = env.call("refund_full", {...}, state)                 # checked, executed, recorded
    verdict = env.gate(call, state); env.run(verdict, state)       # the same call, in two steps
    env.state_hash()
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from wow_ray.scenario.backend import Backend, BackendTemplate
from wow_ray.scenario.binding import ToolResult, Toolset
from wow_ray.scenario.catalogue import Catalogue
from wow_ray.scenario.context import ContextBuilder, RuleContext
from wow_ray.scenario.errors import ToolError
from wow_ray.scenario.kb import KnowledgeBase
from wow_ray.scenario.rules import Decision, Obligation, RuleEngine
from wow_ray.scenario.spec import FixtureSchema, IntentSpec, PackManifest, PlaybooksFile
from wow_ray.scenario.state import DialogueState, ToolCall
from wow_ray.scenario.tasks import Task


@dataclass(eq=False)
class ScenarioPack:
    """Everything one business scenario consists of, validated."""

    path: Path
    manifest: PackManifest
    policy: str
    schema: FixtureSchema
    fixtures: dict[str, list[dict[str, Any]]]
    tools: Toolset
    intents: list[IntentSpec]
    playbooks: PlaybooksFile
    kb: KnowledgeBase
    tasks: list[Task]
    rules: RuleEngine
    catalogue: Catalogue = field(repr=False)

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def now(self) -> datetime:
        """The pack's reference clock (rules compare time windows against it)."""
        return self.manifest.clock.now

    @functools.cached_property
    def contexts(self) -> ContextBuilder:
        lookups = self.catalogue.extended(args=None)
        return ContextBuilder(self.manifest.entities, self.schema, lookups)

    @functools.cached_property
    def template(self) -> BackendTemplate:
        """The fixtures loaded once; each episode copies it."""
        return BackendTemplate(self.schema, self.fixtures, self.now)

    def new_backend(self) -> Backend:
        """An isolated in-memory copy of the backend (about a millisecond)."""
        return self.template.new_backend()

    def new_environment(self, backend: Backend | None = None, now: datetime | None = None) -> Environment:
        """An episode: a fresh backend (or the one given), this pack's tools and rules."""
        return Environment(self, backend or self.new_backend(), now)

    def intent(self, name: str) -> IntentSpec:
        for intent in self.intents:
            if intent.name == name:
                return intent
        raise KeyError(f"unknown intent '{name}'")

    def tasks_in(self, split: str) -> list[Task]:
        return [t for t in self.tasks if t.split == split]

    def intent_schema(self) -> dict[str, Any]:
        """JSON Schema for intent/slot extraction (e.g. vLLM structured outputs): a list of
        ``{"intent": <name>, "slots": {...}}`` objects, one per thing the customer wants."""
        variants = []
        for intent in self.intents:
            props = {}
            for slot in intent.slots:
                kind = {"string": "string", "integer": "integer", "number": "number", "boolean": "boolean"}[slot.type]
                props[slot.name] = {"type": [kind, "null"], "description": slot.description}
                if slot.enum:
                    props[slot.name]["enum"] = [*slot.enum, None]
            variants.append({
                "type": "object",
                "properties": {
                    "intent": {"const": intent.name, "description": intent.description},
                    "slots": {"type": "object", "properties": props, "additionalProperties": False},
                },
                "required": ["intent", "slots"],
                "additionalProperties": False,
            })
        return {
            "type": "object",
            "properties": {"requests": {"type": "array", "items": {"anyOf": variants}}},
            "required": ["requests"],
            "additionalProperties": False,
        }

    def summary(self) -> dict[str, Any]:
        """Counts for a validation report."""
        splits = {s: len(self.tasks_in(s)) for s in ("train", "dev", "test")}
        return {
            "name": self.name,
            "title": self.manifest.title,
            "version": self.manifest.version,
            "rules": len(self.rules.rules.by_id),
            "rules_version": self.rules.version,
            "tools": len(self.tools.names),
            "intents": len(self.intents),
            "kb_articles": len(self.kb.articles),
            "fixture_rows": sum(len(rows) for rows in self.fixtures.values()),
            "tasks": len(self.tasks),
            "splits": splits,
        }


_ENDED = "the dialogue was handed over; no further actions"


@dataclass(frozen=True)
class GateVerdict:
    """One pass of the rule gate over a proposed call."""

    call: ToolCall  # with validated arguments, unless they were invalid
    decision: Decision
    invalid: str | None = None  # why the arguments are invalid (the model needs the details)


ANONYMOUS_REASON = ("I can only make changes for a signed-in customer. Please sign in to the app "
                    "and contact us from there.")


class Environment:
    """One episode: a backend copy plus the pack's tools, with rule checks before writes."""

    def __init__(self, pack: ScenarioPack, backend: Backend, now: datetime | None = None) -> None:
        self.pack = pack
        self.backend = backend
        self.now = now or pack.now
        self.rules = pack.rules
        self.tools = pack.tools

    def context(self, state: DialogueState, call: ToolCall | None = None, **extra: Any) -> RuleContext:
        """What the rules see for ``call`` in ``state`` (records fetched lazily)."""
        return self.pack.contexts.build(self.backend, state, call, now=self.now, extra=extra)

    def gate(self, call: ToolCall, state: DialogueState) -> GateVerdict:
        """One pass of the gate: the arguments validated once, then the rules asked once."""
        try:
            clean = ToolCall(name=call.name, arguments=self.tools.validate(call.name, call.arguments))
        except ToolError as exc:
            if call.name not in self.tools:  # the engine's unknown-tool answer
                return GateVerdict(call, self.rules.check(call, {"now": self.now}), str(exc))
            return GateVerdict(call, Decision(False, call.name, "invalid", ("engine.invalid_arguments",), str(exc),
                                              "I couldn't process that request as given.", self.rules.version),
                               str(exc))
        if self.tools.spec(call.name).kind == "write" and not state.user_id:
            # Nobody signed in (an anonymous session): there is no account to act for, so no
            # rule can make a write safe; the pack's rules are not asked.
            return GateVerdict(clean, Decision(False, call.name, "forbid", ("engine.anonymous",),
                                               "no signed-in customer", ANONYMOUS_REASON,
                                               self.rules.version))
        return GateVerdict(clean, self.rules.check(clean, self.context(state, clean)))

    def check(self, call: ToolCall, state: DialogueState) -> Decision:
        """Ask the rule engine about ``call``; arguments are validated first."""
        return self.gate(call, state).decision

    def obligations(self, state: DialogueState) -> list[Obligation]:
        """Actions the rules require now, before anything else is done."""
        return self.rules.obligations(self.context(state))

    def call(self, name: str, arguments: dict[str, Any] | None, state: DialogueState | None = None,
             *, enforce: bool = True) -> ToolResult:
        """Call a tool. With ``enforce`` every call passes the gate first (reads are allowed
        unless a rule forbids them, e.g. another customer's records); a denial comes back as an
        error result carrying the decision. Success updates ``state``."""
        state = state if state is not None else DialogueState()
        call = ToolCall(name=name, arguments=dict(arguments or {}))
        if state.ended:
            return ToolResult(name, False, error=_ENDED)
        if enforce:
            return self.run(self.gate(call, state), state)
        return self._record(call, self.tools.invoke(self.backend, name, call.arguments), state)

    def run(self, verdict: GateVerdict, state: DialogueState) -> ToolResult:
        """Run the call ``gate`` let through, on the arguments it validated (not checked again);
        the result carries the decision, and a call it refused comes back as that error."""
        name, decision = verdict.call.name, verdict.decision
        if state.ended:
            return ToolResult(name, False, error=_ENDED, decision=decision)
        if verdict.invalid is not None:  # the model needs the validation details, not a refusal
            return ToolResult(name, False, error=verdict.invalid, decision=decision)
        if not decision.allowed:
            return ToolResult(name, False, error=decision.customer_reason or "not allowed", decision=decision)
        result = self.tools.run(self.backend, name, verdict.call.arguments)
        result.decision = decision
        return self._record(verdict.call, result, state)

    def _record(self, call: ToolCall, result: ToolResult, state: DialogueState) -> ToolResult:
        if result.ok:
            spec = self.tools.spec(call.name)
            state.record(call, result.content, compensation=spec.compensation, ends=spec.ends_dialogue)
        return result

    def state_hash(self) -> str:
        return self.backend.state_hash()

    def close(self) -> None:
        self.backend.close()
