"""Which fields an expression in a pack may read, built from the pack's own files.

- ``<entity>.<field>`` for each entity in ``pack.yaml``: its table's columns (with their enums),
  its derived fields and its aggregates;
- ``dialogue.<field>``: the DialogueState fields (evidence and flags checked against the
  vocabulary in ``pack.yaml``);
- ``args.<param>``: parameters of the tools a rule governs (added per rule);
- ``params.<name>``: constants from ``rules.yaml`` (folded in when the rules are compiled);
- ``slots.<name>``: slots of any intent (entity lookups and playbooks only);
- ``result.<key>``: the last tool result (playbooks only, not checked);
- ``now``: the pack's reference clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from wow_ray.scenario.errors import ExpressionError
from wow_ray.scenario.spec import FixtureSchema, IntentSpec, PackManifest, ParamSchema, ToolSpec
from wow_ray.scenario.state import DialogueState


@dataclass(frozen=True)
class FieldInfo:
    """What is known about one field: a coarse type, and its allowed values if it is an enum
    (for a list field: the vocabulary of its items)."""

    type: str = "any"
    values: frozenset[str] | None = None


@dataclass
class Catalogue:
    """The namespaces an expression may read. A namespace maps field names to FieldInfo; a
    namespace given as None is open (any field is accepted, e.g. a tool's result)."""

    namespaces: dict[str, dict[str, FieldInfo] | None] = field(default_factory=dict)
    scalars: dict[str, FieldInfo] = field(default_factory=dict)  # bare names such as ``now``
    # Namespaces whose values are known when compiling (``params``): folded into constants.
    constants: dict[str, dict[str, Any]] = field(default_factory=dict)

    def extended(self, constants: dict[str, dict[str, Any]] | None = None, **namespaces: Any) -> Catalogue:
        """A copy with namespaces (or constant namespaces) added or replaced."""
        return Catalogue(
            {**self.namespaces, **namespaces},
            dict(self.scalars),
            {**self.constants, **(constants or {})},
        )

    def constant(self, path: tuple[str, ...]) -> tuple[bool, Any]:
        """(True, value) if ``path`` names a compile-time constant such as ``params.cap``."""
        if path[0] not in self.constants:
            return False, None
        values = self.constants[path[0]]
        if len(path) != 2 or path[1] not in values:
            known = ", ".join(sorted(values)) or "none"
            raise ExpressionError(f"unknown field '{'.'.join(path)}' ({path[0]} defines: {known})")
        return True, values[path[1]]

    def lookup(self, path: tuple[str, ...]) -> FieldInfo:
        """The info of ``path``; raises ExpressionError with the known alternatives if unknown."""
        root = path[0]
        if root in self.constants:
            value = self.constant(path)[1]
            return FieldInfo({bool: "boolean", int: "integer", float: "number"}.get(type(value), "string"))
        if len(path) == 1:
            if root in self.scalars:
                return self.scalars[root]
            known = sorted([*self.scalars, *self.namespaces])
            raise ExpressionError(f"unknown name '{root}' (known: {', '.join(known)})")
        if root not in self.namespaces:
            known = sorted([*self.namespaces, *self.constants])
            raise ExpressionError(f"unknown field '{'.'.join(path)}' (namespaces: {', '.join(known)})")
        fields = self.namespaces[root]
        if fields is None:
            return FieldInfo()
        name = path[1]
        if name not in fields:
            known = ", ".join(sorted(fields)) or "none"
            raise ExpressionError(f"unknown field '{root}.{name}' (fields of {root}: {known})")
        if len(path) > 2 and fields[name].type not in {"any", "object"}:
            raise ExpressionError(f"'{root}.{name}' has no field '{path[2]}'")
        return fields[name] if len(path) == 2 else FieldInfo()


_DIALOGUE_TYPES = {
    "user_id": "string",
    "identity_verified": "boolean",
    "intents": "list",
    "slots": "object",
    "evidence": "list",
    "flags": "list",
    "turn": "integer",
    "human_requests": "integer",
    "claims_made": "integer",
    "compensation_total": "number",
    "tools_called": "list",
    "ended": "boolean",
}


def entity_catalogue(manifest: PackManifest, schema: FixtureSchema) -> dict[str, dict[str, FieldInfo]]:
    """Fields of every entity namespace (tables that exist only; the loader reports others)."""
    out: dict[str, dict[str, FieldInfo]] = {}
    for name, entity in manifest.entities.items():
        table = schema.tables.get(entity.table)
        fields = {}
        if table is not None:
            for col, spec in table.columns.items():
                values = frozenset(spec.enum) if spec.enum else None
                fields[col] = FieldInfo(spec.type, values)
        fields.update({k: FieldInfo() for k in entity.derived})
        fields.update({k: FieldInfo("number") for k in entity.aggregates})
        out[name] = fields
    return out


def dialogue_fields(manifest: PackManifest, tools: list[ToolSpec], intents: list[IntentSpec]) -> dict[str, FieldInfo]:
    vocab = {
        "evidence": frozenset(manifest.dialogue.evidence),
        "flags": frozenset(manifest.dialogue.flags),
        "tools_called": frozenset(t.name for t in tools),
        "intents": frozenset(i.name for i in intents),
    }
    assert set(_DIALOGUE_TYPES) == set(DialogueState.model_fields), "keep _DIALOGUE_TYPES in step"
    return {name: FieldInfo(kind, vocab.get(name)) for name, kind in _DIALOGUE_TYPES.items()}


def slot_fields(intents: list[IntentSpec]) -> dict[str, FieldInfo]:
    """Slots of all intents; a slot name shared by intents accepts the union of their enums."""
    out: dict[str, FieldInfo] = {}
    for intent in intents:
        for slot in intent.slots:
            values = frozenset(slot.enum) if slot.enum else None
            if slot.name in out:
                prev = out[slot.name].values
                values = None if prev is None or values is None else prev | values
            out[slot.name] = FieldInfo(slot.type, values)
    return out


def param_info(schema: ParamSchema) -> FieldInfo:
    values = frozenset(str(v) for v in schema.enum) if schema.enum else None
    return FieldInfo(schema.type, values)


def args_fields(tools: list[ToolSpec]) -> dict[str, FieldInfo]:
    """Parameters common to all ``tools``: what a rule governing them may read as ``args``."""
    if not tools:
        return {}
    common = set(tools[0].parameters.properties)
    for tool in tools[1:]:
        common &= set(tool.parameters.properties)
    return {name: param_info(tools[0].parameters.properties[name]) for name in sorted(common)}


def pack_catalogue(
    manifest: PackManifest,
    schema: FixtureSchema,
    tools: list[ToolSpec],
    intents: list[IntentSpec],
) -> Catalogue:
    """The base catalogue: entities, dialogue, slots and ``now`` (no args, params or result)."""
    namespaces: dict[str, Any] = dict(entity_catalogue(manifest, schema))
    namespaces["dialogue"] = dialogue_fields(manifest, tools, intents)
    namespaces["slots"] = slot_fields(intents)
    return Catalogue(namespaces, {"now": FieldInfo("datetime")})


def without(catalogue: Catalogue, *names: str) -> Catalogue:
    """A copy of the catalogue without some namespaces (rules may not read ``slots``)."""
    return Catalogue({k: v for k, v in catalogue.namespaces.items() if k not in names}, dict(catalogue.scalars))
