"""The business backend: a real SQL database built from a pack's fixtures.

``BackendTemplate`` loads the fixtures once into an in-memory SQLite database; every episode
then gets ``template.new_backend()``, an isolated copy made with SQLite's backup API (about a
millisecond for a few hundred rows; see ``benchmarks/README.md``). ``template.save(path)``
writes the same database to a SQLite file, and ``Backend.open(url)`` serves any SQLAlchemy URL
(a file, or e.g. PostgreSQL for a real deployment, created from the fixtures if empty).

Tools act on a ``Backend`` through a few helpers (``get``, ``find``, ``insert``, ``update``,
``next_id``) or through SQLAlchemy Core on ``backend.conn`` and ``backend.tables``. A Backend
holds one connection: one episode, one thread at a time.

``state_hash()`` digests every table, independent of row order, so an evaluator compares the
state an agent left with the state the gold actions leave; ``state_diff(before, after)`` says
which rows and fields differ.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    DateTime,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    create_engine,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.pool import NullPool, StaticPool

from wow_ray.scenario.errors import ToolError
from wow_ray.scenario.spec import FixtureSchema

_TYPES = {"string": String, "integer": Integer, "number": Float, "boolean": Boolean, "datetime": DateTime}


def build_metadata(schema: FixtureSchema) -> MetaData:
    """SQLAlchemy tables for a pack's fixture schema (foreign keys are checked by the loader)."""
    metadata = MetaData()
    for name, spec in schema.tables.items():
        columns = [
            Column(col, _TYPES[c.type](), primary_key=(col == spec.primary_key), nullable=c.nullable)
            for col, c in spec.columns.items()
        ]
        Table(name, metadata, *columns)
    return metadata


def coerce_row(schema: FixtureSchema, table: str, row: Mapping[str, Any]) -> dict[str, Any]:
    """A fixture row with ISO datetime strings parsed, ready to insert."""
    columns = schema.tables[table].columns
    out = {}
    for key, value in row.items():
        if value is not None and columns[key].type == "datetime" and isinstance(value, str):
            value = datetime.fromisoformat(value)
        out[key] = value
    return out


class Backend:
    """One connection to a business database, with the helpers tools use."""

    def __init__(
        self,
        conn: Connection,
        schema: FixtureSchema,
        metadata: MetaData,
        now: datetime,
        statements: dict | None = None,
    ):
        self.conn = conn
        self.schema = schema
        self.tables: dict[str, Table] = dict(metadata.tables)
        self.now = now
        # Statements built once per shape, with bound parameters, and shared by the episode
        # copies of one template: building a SQLAlchemy statement costs more than running it.
        self._statements = statements if statements is not None else {}

    def _statement(self, key: tuple, build: Any) -> Any:
        statement = self._statements.get(key)
        if statement is None:
            statement = self._statements[key] = build()
        return statement

    def _where(self, table: str, keys: tuple[tuple[str, bool], ...]) -> list:
        t = self.tables[table]
        return [t.c[k].in_(bindparam(k, expanding=True)) if many else t.c[k] == bindparam(k) for k, many in keys]

    # -- opening ----------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        url: str,
        schema: FixtureSchema,
        rows: Mapping[str, list[dict[str, Any]]],
        now: datetime,
    ) -> Backend:
        """Connect to any SQLAlchemy URL; create the tables and load fixtures if it is empty."""
        metadata = build_metadata(schema)
        engine = create_engine(url)
        conn = engine.connect()
        metadata.create_all(conn)
        backend = cls(conn, schema, metadata, now)
        if all(backend.count(t) == 0 for t in schema.tables):
            backend.load_rows(rows)
        conn.commit()
        return backend

    def load_rows(self, rows: Mapping[str, list[dict[str, Any]]]) -> None:
        """Insert fixture rows (tables in schema order)."""
        for table in self.schema.tables:
            data = [coerce_row(self.schema, table, r) for r in rows.get(table, [])]
            if data:
                self.conn.execute(insert(self.tables[table]), data)

    def commit(self) -> None:
        self.conn.commit()

    def rollback(self) -> None:
        self.conn.rollback()

    def close(self) -> None:
        self.conn.close()

    # -- helpers for tools ------------------------------------------------------------------

    def _pk(self, table: str) -> Column:
        return self.tables[table].c[self.schema.tables[table].primary_key]

    def get(self, table: str, key: Any) -> dict[str, Any] | None:
        """The row with primary key ``key``, or None."""
        statement = self._statement(("get", table), lambda: select(self.tables[table]).where(self._pk(table) == bindparam("_key")))
        row = self.conn.execute(statement, {"_key": key}).mappings().first()
        return dict(row) if row is not None else None

    def require(self, table: str, key: Any, what: str | None = None) -> dict[str, Any]:
        """The row with primary key ``key``; a ToolError the agent can read if there is none."""
        row = self.get(table, key)
        if row is None:
            raise ToolError(f"{what or table.rstrip('s')} '{key}' not found")
        return row

    def find(self, table: str, order_by: str | None = None, **where: Any) -> list[dict[str, Any]]:
        """Rows whose columns equal the given values, by primary key (or ``order_by``)."""
        t = self.tables[table]
        keys = tuple((k, False) for k in sorted(where))

        def build() -> Any:
            return select(t).where(*self._where(table, keys)).order_by(t.c[order_by] if order_by else self._pk(table))

        statement = self._statement(("find", table, keys, order_by), build)
        return [dict(r) for r in self.conn.execute(statement, where).mappings()]

    def count(self, table: str, **where: Any) -> int:
        return int(self.aggregate(table, "count", None, where))

    def aggregate(
        self,
        table: str,
        fn: str,
        column: str | None,
        where: Mapping[str, Any],
        since: tuple[str, datetime] | None = None,
    ) -> float | int | None:
        """count/sum/max/min over the rows matching ``where`` (a list value means "one of"),
        and newer than ``since``."""
        t = self.tables[table]
        keys = tuple((k, isinstance(where[k], list | tuple)) for k in sorted(where))
        since_column = since[0] if since is not None else None

        def build() -> Any:
            target = func.count() if fn == "count" else getattr(func, fn)(t.c[column])
            conds = self._where(table, keys)
            if since_column is not None:
                conds.append(t.c[since_column] >= bindparam("_since"))
            return select(target).select_from(t).where(*conds)

        statement = self._statement(("agg", table, fn, column, keys, since_column), build)
        params = {k: list(v) if many else v for (k, many), v in zip(keys, (where[k] for k, _ in keys), strict=True)}
        if since is not None:
            params["_since"] = since[1]
        value = self.conn.execute(statement, params).scalar_one()
        if fn == "sum" and value is None:
            return 0.0
        return value

    def insert(self, table: str, row: Mapping[str, Any]) -> dict[str, Any]:
        self.conn.execute(insert(self.tables[table]), [dict(row)])
        return dict(row)

    def update(self, table: str, key: Any, **values: Any) -> dict[str, Any]:
        """Set columns of one row; returns the updated row."""
        self.conn.execute(update(self.tables[table]).where(self._pk(table) == key).values(**values))
        return self.require(table, key)

    def next_id(self, table: str, prefix: str, width: int = 4) -> str:
        """The next id ``<prefix><number>``: one past the largest used, so ids are deterministic."""
        pk = self._pk(table)
        used = self.conn.execute(select(pk).where(pk.like(f"{prefix}%"))).scalars()
        numbers = [int(s[len(prefix) :]) for s in used if s[len(prefix) :].isdigit()]
        return f"{prefix}{(max(numbers) + 1 if numbers else 1):0{width}d}"

    def days_ago(self, days: float) -> datetime:
        return self.now - timedelta(days=days)

    # -- state ------------------------------------------------------------------------------

    def dump(self) -> dict[str, list[dict[str, Any]]]:
        """Every table's rows, JSON-able, by primary key."""
        return {name: [jsonable(r) for r in self.find(name)] for name in sorted(self.tables)}

    def state_hash(self) -> str:
        """SHA-256 over all tables, independent of row order (and of insertion order).

        Rows are read as the driver returns them, without type conversion, and each is
        serialised with ``repr`` (a few milliseconds for thousands of rows); the lines of a
        table are sorted before hashing. Amounts written by tools are rounded to cents, so
        equal amounts are equal floats."""
        digest = hashlib.sha256()
        for name in sorted(self.tables):
            columns = sorted(c.name for c in self.tables[name].columns)
            lines = sorted(map(repr, self._raw_rows(name, columns)))
            digest.update(f"{name}\n{','.join(columns)}\n{len(lines)}\n".encode())
            digest.update("\n".join(lines).encode())
            digest.update(b"\n")
        return digest.hexdigest()

    def snapshot(self) -> dict[str, dict[Any, tuple]]:
        """Every table's rows as the driver returns them (no conversion), by primary key:
        cheap enough to take per replay, which ``state_diff`` relies on."""
        out = {}
        for name in sorted(self.tables):
            columns = [c.name for c in self.tables[name].columns]
            key = columns.index(self.schema.tables[name].primary_key)
            out[name] = {row[key]: row for row in self._raw_rows(name, columns)}
        return out

    def _raw_rows(self, table: str, columns: list[str]) -> list[tuple]:
        query = "SELECT " + ", ".join(f'"{c}"' for c in columns) + f' FROM "{table}"'
        cursor = self.conn.connection.driver_connection.cursor()  # plain tuples, fast repr
        try:
            return cursor.execute(query).fetchall()
        finally:
            cursor.close()


def state_diff(before: Backend, after: Backend) -> dict[str, dict]:
    """What differs between two backends of one schema, per table that differs (JSON-able).

    ``added`` and ``removed`` are row images, as lines in a text diff: a new row is in
    ``added``, a deleted one in ``removed``, and a changed row in both (its new image added,
    its old one removed). ``changed`` pairs the images of changed rows by primary key and
    names the fields: ``{key: {field: [before, after]}}``. Raw rows are compared, and only
    the rows that differ are read as JSON, so a diff costs about two state hashes."""
    old, new = before.snapshot(), after.snapshot()
    out = {}
    for table in sorted(set(old) | set(new)):
        a, b = old.get(table, {}), new.get(table, {})
        gone = sorted((k for k in a if a[k] != b.get(k)), key=repr)
        came = sorted((k for k in b if b[k] != a.get(k)), key=repr)
        if not gone and not came:
            continue
        removed = {k: jsonable(before.get(table, k)) for k in gone}
        added = {k: jsonable(after.get(table, k)) for k in came}
        changed = {
            str(k): {f: [removed[k][f], v] for f, v in row.items() if removed[k].get(f) != v}
            for k, row in added.items() if k in removed
        }
        out[table] = {"added": list(added.values()), "removed": list(removed.values()), "changed": changed}
    return out


def jsonable(value: Any) -> Any:
    """Rows and tool results as JSON values: datetimes as ISO text, whole floats kept exact."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, float):
        return round(value, 6)
    return value


class BackendTemplate:
    """A pack's fixtures loaded once; ``new_backend()`` copies them for each episode.

    One SQLAlchemy engine serves every copy: its pool (NullPool) has no connections to reuse,
    and its creator makes a fresh in-memory database by backing up the template. So each
    episode is isolated, and all of them share one dialect and one compiled-statement cache.
    """

    def __init__(
        self,
        schema: FixtureSchema,
        rows: Mapping[str, list[dict[str, Any]]],
        now: datetime,
    ) -> None:
        self.schema = schema
        self.now = now
        self.metadata = build_metadata(schema)
        self._master = sqlite3.connect(":memory:", check_same_thread=False)
        loader = create_engine("sqlite://", creator=lambda: self._master, poolclass=StaticPool)
        with loader.connect() as conn:
            master = Backend(conn, schema, self.metadata, now)
            self.metadata.create_all(conn)
            master.load_rows(rows)
            master.commit()
        self._engine = create_engine("sqlite://", creator=self._copy, poolclass=NullPool)
        self._statements: dict = {}

    def _copy(self) -> sqlite3.Connection:
        copy = sqlite3.connect(":memory:", check_same_thread=False)
        self._master.backup(copy)
        return copy

    def new_backend(self) -> Backend:
        """An isolated in-memory copy of the fixtures database."""
        return Backend(self._engine.connect(), self.schema, self.metadata, self.now, self._statements)

    def save(self, path: str | Path) -> Path:
        """Write the fixtures database to a SQLite file (replacing it)."""
        path = Path(path)
        path.unlink(missing_ok=True)
        target = sqlite3.connect(path)
        try:
            self._master.backup(target)
        finally:
            target.close()
        return path
