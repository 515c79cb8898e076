"""The rule engine: given the state and a proposed action, allow or deny, with the rule ids and
a reason a customer can be told.

How a check decides, for a proposed call of tool T at time ``now`` (the pack clock, never the
wall clock):

1. An unknown tool is denied (``engine.unknown_tool``).
2. Obligations: a ``require`` rule in force whose conditions hold, and whose required tool has
   not been called yet in this dialogue, blocks every action in its ``tools`` (default: all
   writes) other than the required one. The customer is told the rule's reason.
3. Among the ``allow``/``forbid`` rules governing T and in force on ``now``'s date, those with
   the highest priority whose conditions all hold decide: forbid if any of them forbids, else
   allow. A pending ``require`` for T itself counts as an allow at its priority.
4. If none matches, the default for T's kind applies (``defaults.read``/``defaults.write``).

A condition that fails to evaluate counts as true for ``forbid`` and false for ``allow``: the
engine fails closed. Checks are deterministic and cheap (compiled functions; see the
benchmark). Rules hot-reload with ``load_file``/``load_text``/``load_data``: the new rules are
validated and compiled completely, then swapped in by one assignment; on any error a
``RulesError`` names file, line and field, and the rules in force stay in force.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from wow_ray.scenario.catalogue import Catalogue, args_fields
from wow_ray.scenario.errors import ExpressionError, PackIssue, PackValidationError, RulesError
from wow_ray.scenario.expr import compile_all, compile_template, compile_value
from wow_ray.scenario.rulespec import Rule, RulesFile
from wow_ray.scenario.spec import ToolSpec
from wow_ray.scenario.state import ToolCall
from wow_ray.scenario.yamlio import LineMap, field_path, parse_yaml, pydantic_issues


@dataclass(frozen=True, slots=True)
class Decision:
    """The engine's answer: allowed or not, which rules decided, and what to tell the customer."""

    allowed: bool
    tool: str
    effect: str  # allow | forbid | require | default | invalid
    rule_ids: tuple[str, ...]
    reason: str  # for people operating the system: the deciding rules' titles
    customer_reason: str  # safe to say to the customer
    rules_version: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "allowed": self.allowed,
            "tool": self.tool,
            "effect": self.effect,
            "rule_ids": list(self.rule_ids),
            "reason": self.reason,
            "customer_reason": self.customer_reason,
            "rules_version": self.rules_version,
        }


@dataclass(frozen=True)
class Obligation:
    """An action a ``require`` rule demands now, with its arguments filled in."""

    rule_id: str
    tool: str
    arguments: dict[str, Any]
    customer_reason: str

    def as_call(self) -> ToolCall:
        return ToolCall(name=self.tool, arguments={k: v for k, v in self.arguments.items() if v is not None})


@dataclass(eq=False)
class CompiledRule:
    id: str
    title: str
    effect: str
    priority: int
    tools: frozenset[str]
    condition: Callable[[Mapping[str, Any]], Any]
    reason: Callable[[Mapping[str, Any]], str]
    effective_from: date | None
    effective_until: date | None
    fields: frozenset[tuple[str, ...]]
    require_tool: str | None = None
    require_args: Callable[[Mapping[str, Any]], Any] | None = None

    def in_force(self, day: date) -> bool:
        return (self.effective_from is None or self.effective_from <= day) and (
            self.effective_until is None or day <= self.effective_until
        )

    def holds(self, context: Mapping[str, Any]) -> bool:
        try:
            return bool(self.condition(context))
        except Exception:  # noqa: BLE001 - fail closed: an unreadable forbid still forbids
            return self.effect == "forbid"


@dataclass
class CompiledRules:
    """One validated rules file, ready to check against."""

    version: str
    source: str
    digest: str
    data: RulesFile
    kinds: dict[str, str]  # tool -> read/write
    by_tool: dict[str, list[CompiledRule]] = field(default_factory=dict)  # allow/forbid, by priority
    requires: list[CompiledRule] = field(default_factory=list)
    by_id: dict[str, CompiledRule] = field(default_factory=dict)


class RuleCompiler:
    """Validates a rules file against a pack's tools and fields, and compiles it."""

    def __init__(self, catalogue: Catalogue, tools: Mapping[str, ToolSpec]) -> None:
        self.catalogue = catalogue
        self.tools = dict(tools)

    def compile_text(self, text: str, source: str) -> CompiledRules:
        try:
            data, lines = parse_yaml(text, source)
        except PackValidationError as exc:  # a YAML syntax error is a rules error like any other
            raise RulesError(exc.issues) from None
        return self.compile_data(data, source, lines, digest=_digest(text))

    def compile_data(
        self, data: Any, source: str, lines: LineMap | None = None, digest: str | None = None
    ) -> CompiledRules:
        lines = lines or LineMap()
        try:
            spec = RulesFile.model_validate(data if data is not None else {})
        except ValidationError as exc:
            raise RulesError(pydantic_issues(exc, source, lines)) from None
        issues: list[PackIssue] = []

        def issue(path: tuple, message: str) -> None:
            issues.append(PackIssue(source, message, field_path(path), lines.line(path)))

        groups = self._groups(spec, issue)
        out = CompiledRules(
            version=spec.version,
            source=source,
            digest=digest or _digest(spec.model_dump_json()),
            data=spec,
            kinds={name: t.kind for name, t in self.tools.items()},
        )
        seen: dict[str, int] = {}
        for index, rule in enumerate(spec.rules):
            if rule.id in seen:
                issue(("rules", index, "id"), f"duplicate rule id '{rule.id}' (first at rules[{seen[rule.id]}])")
                continue
            seen[rule.id] = index
            compiled = self._rule(rule, index, spec, groups, issue)
            if compiled is not None:
                out.by_id[rule.id] = compiled
                if compiled.effect == "require":
                    out.requires.append(compiled)
                else:
                    for tool in compiled.tools:
                        out.by_tool.setdefault(tool, []).append(compiled)
        if issues:
            raise RulesError(issues)
        for rules in out.by_tool.values():
            rules.sort(key=lambda r: -r.priority)
        out.requires.sort(key=lambda r: -r.priority)
        return out

    def _groups(self, spec: RulesFile, issue: Callable) -> dict[str, frozenset[str]]:
        groups = {
            "all": frozenset(self.tools),
            "read": frozenset(n for n, t in self.tools.items() if t.kind == "read"),
            "write": frozenset(n for n, t in self.tools.items() if t.kind == "write"),
        }
        for name, members in spec.groups.items():
            if name in groups:
                issue(("groups", name), f"group name '{name}' is built in")
            for j, member in enumerate(members):
                if member not in self.tools:
                    issue(("groups", name, j), self._unknown_tool(member))
            groups[name] = frozenset(m for m in members if m in self.tools)
        return groups

    def _unknown_tool(self, name: str) -> str:
        return f"unknown tool '{name}' (tools: {', '.join(sorted(self.tools))})"

    def _expand(self, names: list[str], groups: Mapping[str, frozenset[str]], path: tuple, issue: Callable) -> set[str]:
        tools: set[str] = set()
        for j, name in enumerate(names):
            if name == "*":
                name = "@all"
            if name.startswith("@"):
                if name[1:] not in groups:
                    issue((*path, j), f"unknown group '{name}' (groups: {', '.join('@' + g for g in sorted(groups))})")
                tools |= groups.get(name[1:], frozenset())
            elif name in self.tools:
                tools.add(name)
            else:
                issue((*path, j), self._unknown_tool(name))
        return tools

    def _rule(self, rule: Rule, index: int, spec: RulesFile, groups: Mapping, issue: Callable) -> CompiledRule | None:
        base = ("rules", index)
        default_tools = ["@write"] if rule.effect == "require" else []
        tools = self._expand(rule.tools or default_tools, groups, (*base, "tools"), issue)
        governed = [self.tools[t] for t in sorted(tools)]
        catalogue = self.catalogue.extended(
            constants={"params": dict(spec.params)},
            args=args_fields(governed) if rule.effect != "require" else {},
        )
        ok = True
        conditions = []
        for j, source in enumerate(rule.when):
            try:
                conditions.append(compile_all([source], catalogue))
            except ExpressionError as exc:
                issue((*base, "when", j), f"{exc}{self._args_hint(exc, governed)}")
                ok = False
        try:
            reason = compile_template(rule.customer_reason or spec.defaults.deny_reason, catalogue)
        except ExpressionError as exc:
            issue((*base, "customer_reason"), str(exc))
            ok = False
        require_tool, require_args = None, None
        if rule.require is not None:
            require_tool = rule.require.tool
            if require_tool not in self.tools:
                issue((*base, "require", "tool"), self._unknown_tool(require_tool))
                ok = False
            else:
                ok &= self._check_require_args(rule, base, issue)
                try:
                    require_args = compile_value(rule.require.args, catalogue)
                except ExpressionError as exc:
                    issue((*base, "require", "args"), str(exc))
                    ok = False
        if not ok:
            return None
        condition = compile_all([c.source for c in conditions], catalogue) if conditions else None
        return CompiledRule(
            id=rule.id,
            title=rule.title,
            effect=rule.effect,
            priority=rule.priority,
            tools=frozenset(tools),
            condition=condition.fn if condition else (lambda c: True),
            reason=reason,
            effective_from=rule.effective_from,
            effective_until=rule.effective_until,
            fields=condition.fields if condition else frozenset(),
            require_tool=require_tool,
            require_args=require_args,
        )

    def _check_require_args(self, rule: Rule, base: tuple, issue: Callable) -> bool:
        spec = self.tools[rule.require.tool].parameters
        ok = True
        for name in rule.require.args:
            if name not in spec.properties:
                issue((*base, "require", "args", name), f"tool '{rule.require.tool}' has no parameter '{name}'")
                ok = False
        for name in spec.required:
            if name not in rule.require.args:
                issue((*base, "require", "args"), f"missing required argument '{name}' of '{rule.require.tool}'")
                ok = False
        return ok

    @staticmethod
    def _args_hint(exc: ExpressionError, governed: list[ToolSpec]) -> str:
        if "'args." not in str(exc) or not governed:
            return ""
        return f" (a rule may read only the parameters shared by all of its tools: {', '.join(t.name for t in governed)})"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


class RuleEngine:
    """Checks proposed actions against the rules in force; reloads rules atomically."""

    def __init__(self, compiler: RuleCompiler, rules: CompiledRules, path: Path | None = None) -> None:
        self._compiler = compiler
        self._rules = rules
        self._path = path
        self._lock = threading.Lock()

    # -- what is in force ---------------------------------------------------------------------

    @property
    def rules(self) -> CompiledRules:
        return self._rules

    @property
    def version(self) -> str:
        """The rules file's own version plus a content digest, e.g. '3@1a2b3c4d5e6f'."""
        return f"{self._rules.version}@{self._rules.digest}"

    @property
    def params(self) -> dict[str, Any]:
        return dict(self._rules.data.params)

    # -- checking -----------------------------------------------------------------------------

    def check(self, action: ToolCall, context: Mapping[str, Any]) -> Decision:
        """Allow or deny ``action`` in ``context`` (see the module docstring for how)."""
        rules = self._rules  # one read: a concurrent reload cannot mix two rule sets
        tool = action.name
        kind = rules.kinds.get(tool)
        version = f"{rules.version}@{rules.digest}"
        if kind is None:
            return Decision(False, tool, "invalid", ("engine.unknown_tool",), f"unknown tool '{tool}'",
                            rules.data.defaults.deny_reason, version)
        day = context.get("now").date()
        own_requirement = None
        if kind == "write":
            blocking = []
            for rule in self._pending(rules, context, day):
                if rule.require_tool == tool:
                    own_requirement = own_requirement or rule
                elif tool in rule.tools:
                    blocking.append(rule)
            if blocking:
                return self._decide(False, tool, "require", blocking, context, version)
        matched: list[CompiledRule] = []
        best = -1
        for rule in rules.by_tool.get(tool, ()):
            if rule.priority < best:
                break
            if rule.in_force(day) and rule.holds(context):
                matched.append(rule)
                best = rule.priority
        if own_requirement is not None and own_requirement.priority >= best:
            if own_requirement.priority > best:
                matched = []
            matched.append(own_requirement)
        if matched:
            forbids = [r for r in matched if r.effect == "forbid"]
            if forbids:
                return self._decide(False, tool, "forbid", forbids, context, version)
            return self._decide(True, tool, matched[0].effect, matched, context, version)
        default = getattr(rules.data.defaults, kind)
        allowed = default == "allow"
        reason = "" if allowed else rules.data.defaults.deny_reason
        return Decision(allowed, tool, "default", (), f"default for {kind} actions: {default}", reason, version)

    def obligations(self, context: Mapping[str, Any]) -> list[Obligation]:
        """Actions that ``require`` rules demand now (the agent should do these first)."""
        rules = self._rules
        out = []
        for rule in self._pending(rules, context, context.get("now").date()):
            args = rule.require_args(context) if rule.require_args else {}
            out.append(Obligation(rule.id, rule.require_tool, args, rule.reason(context)))
        return out

    @staticmethod
    def _pending(rules: CompiledRules, context: Mapping[str, Any], day: date) -> list[CompiledRule]:
        if not rules.requires:
            return []
        done = (context.get("dialogue") or {}).get("tools_called") or ()
        return [
            r for r in rules.requires
            if r.require_tool not in done and r.in_force(day) and r.holds(context)
        ]

    @staticmethod
    def _decide(allowed: bool, tool: str, effect: str, rules: list[CompiledRule],
                context: Mapping[str, Any], version: str) -> Decision:
        try:
            customer = rules[0].reason(context)
        except Exception:  # noqa: BLE001 - a reason that cannot be filled must not crash a check
            customer = ""
        return Decision(allowed, tool, effect, tuple(r.id for r in rules),
                        "; ".join(f"{r.id}: {r.title}" for r in rules), customer, version)

    # -- hot reload ---------------------------------------------------------------------------

    def load_text(self, text: str, source: str = "<rules>") -> str:
        """Validate and swap in rules from YAML text; returns the new version."""
        return self._swap(lambda: self._compiler.compile_text(text, source))

    def load_data(self, data: Mapping[str, Any], source: str = "<user_config>") -> str:
        """Validate and swap in rules from a dict (e.g. a Ray Serve ``user_config``)."""
        return self._swap(lambda: self._compiler.compile_data(dict(data), source))

    def load_file(self, path: str | Path) -> str:
        """Validate and swap in rules from a YAML file, which becomes the file to reload."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise RulesError([PackIssue(str(path), f"cannot read rules: {exc.strerror}")]) from None
        version = self._swap(lambda: self._compiler.compile_text(text, path.name))
        self._path = path
        return version

    def reload(self) -> str:
        """Re-read the rules file this engine was loaded from."""
        if self._path is None:
            raise RulesError([PackIssue("<rules>", "these rules were not loaded from a file")])
        return self.load_file(self._path)

    def reload_if_changed(self) -> bool:
        """Reload when the file's content differs from the rules in force; True if swapped."""
        if self._path is None:
            return False
        text = self._path.read_text(encoding="utf-8")
        if _digest(text) == self._rules.digest:
            return False
        self.load_file(self._path)
        return True

    def _swap(self, build: Callable[[], CompiledRules]) -> str:
        new = build()  # raises RulesError; nothing below runs, so the old rules stay
        with self._lock:
            self._rules = new
        return self.version
