"""The context a rule is checked against, fetched lazily from the backend.

``RuleContext`` is a dict with ``args``, ``dialogue``, ``slots`` and ``now`` filled in, and one
key per entity of ``pack.yaml`` (``order``, ``user``, ...) resolved on first read: the record is
looked up by the first of its ``lookup`` paths that has a value, and its derived fields and
aggregates are computed only when a rule reads them. A check that only reads ``dialogue``
touches no table; one that reads ``user.claims_30d`` runs one COUNT query.

A plain dict of dicts works as a context too (a missing key reads as null), which is how
tests feed the engine without a database. Lazy fields use ``__missing__``, so a value that
has been fetched is read back at plain-dict speed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from wow_ray.scenario.backend import Backend
from wow_ray.scenario.catalogue import Catalogue
from wow_ray.scenario.expr import compile_expr, compile_value
from wow_ray.scenario.spec import AggregateSpec, EntitySpec, FixtureSchema
from wow_ray.scenario.state import DialogueState, ToolCall


class _Aggregate:
    def __init__(self, spec: AggregateSpec, catalogue: Catalogue | None) -> None:
        self.spec = spec
        self.match = {col: compile_value(v, catalogue) for col, v in spec.match.items()}
        window = spec.within
        self.window = (window.column, timedelta(days=window.days, hours=window.hours)) if window else None

    def __call__(self, context: RuleContext) -> Any:
        where = {col: f(context) for col, f in self.match.items()}
        if any(v is None for v in where.values()):
            return None
        since = (self.window[0], context["now"] - self.window[1]) if self.window else None
        return context.backend.aggregate(self.spec.table, self.spec.fn, self.spec.column, where, since)


class EntityResolver:
    """How to fetch one entity and compute its extra fields (compiled once per pack)."""

    def __init__(self, name: str, spec: EntitySpec, catalogue: Catalogue | None) -> None:
        self.name = name
        self.table = spec.table
        self.lookups = [compile_expr(path, catalogue).fn for path in spec.lookup]
        self.extra: dict[str, Callable[[RuleContext], Any]] = {}
        for field, source in spec.derived.items():
            self.extra[field] = compile_expr(source, catalogue).fn
        for field, agg in spec.aggregates.items():
            self.extra[field] = _Aggregate(agg, catalogue)

    def load(self, context: RuleContext) -> Record | None:
        for lookup in self.lookups:
            key = lookup(context)
            if key is not None:
                row = context.backend.get(self.table, key)
                return None if row is None else Record(row, self, context)
        return None


class Record(dict):
    """A backend row whose derived fields and aggregates are computed when first read."""

    __slots__ = ("_resolver", "_context")

    def __init__(self, row: Mapping[str, Any], resolver: EntityResolver, context: RuleContext):
        super().__init__(row)
        self._resolver = resolver
        self._context = context

    def __missing__(self, key: str) -> Any:
        # Called by dict lookups only for keys not fetched yet: derived fields and aggregates
        # are computed once, on first read; an unknown key reads as None.
        compute = self._resolver.extra.get(key)
        if compute is None:
            return None
        self[key] = value = compute(self._context)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        value = self[key]
        return default if value is None else value


class RuleContext(dict):
    """``args``, ``dialogue``, ``slots``, ``now``, and the entities, fetched on first read."""

    __slots__ = ("backend", "_resolvers")

    def __init__(
        self,
        base: dict[str, Any],
        backend: Backend,
        resolvers: Mapping[str, EntityResolver],
    ) -> None:
        super().__init__(base)
        self.backend = backend
        self._resolvers = resolvers

    def __missing__(self, key: str) -> Any:
        resolver = self._resolvers.get(key)
        if resolver is None:
            return None
        # Reserve the key first: a lookup that reads its own entity sees None, not recursion.
        self[key] = None
        self[key] = value = resolver.load(self)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        value = self[key]
        return default if value is None else value

    def jsonable(self) -> dict[str, Any]:
        """The fetched parts, for logs and error reports."""
        from wow_ray.scenario.backend import jsonable

        return jsonable({k: dict(v) if isinstance(v, dict) else v for k, v in self.items()})


class ContextBuilder:
    """Builds RuleContexts for one pack (entity resolvers compiled once)."""

    def __init__(self, entities: Mapping[str, EntitySpec], schema: FixtureSchema, catalogue: Catalogue | None):
        self.schema = schema
        self.resolvers = {name: EntityResolver(name, spec, catalogue) for name, spec in entities.items()}

    def build(
        self,
        backend: Backend,
        state: DialogueState,
        call: ToolCall | None = None,
        *,
        now: datetime | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> RuleContext:
        """The context for checking ``call`` (or obligations, when None) in ``state``."""
        base = {
            "args": dict(call.arguments) if call is not None else {},
            "dialogue": state.as_context(),
            "slots": state.slots,
            "now": now or backend.now,
            **(extra or {}),
        }
        return RuleContext(base, backend, self.resolvers)
