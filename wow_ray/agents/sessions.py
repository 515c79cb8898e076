"""Sessions, transcripts and hand-over tickets in a real database (SQLAlchemy).

SQLite by default (one file, WAL mode, so several gateway replicas on one machine can share
it); any SQLAlchemy URL works, e.g. ``postgresql+psycopg://user:pw@host/db`` on a cluster
(install a driver such as ``psycopg``). A turn is saved in one transaction, before the reply is
returned: the turn row, the session's new state, and its ticket if it was handed over. The
session row carries a version; a save that finds another version was written in between
fails with ``SessionConflict`` and changes nothing, so two replicas racing on one session
cannot interleave turns. Nothing else is ever updated in place.

Human takeover: a hand-over ticket is ``open`` until a colleague takes it (``taken``; the
session's status becomes ``human``). While it is taken, the customer's messages and the
colleague's replies are stored as turns marked ``by="human"`` and the agents do not run; the
colleague then hands the session back to the agents (ticket ``returned``, session ``active``)
or closes it (ticket ``closed``, session ``ended``). Each of these moves is a row of
``ticket_events``: who did what, when.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Engine, Row, make_url
from sqlalchemy.sql import Select

from wow_ray.agents.messages import SessionState
from wow_ray.agents.prompts import Line
from wow_ray.agents.transcript import Outcome, Transcript, TurnRecord
from wow_ray.errors import WowRayError

DEFAULT_DATABASE_URL = "sqlite:///~/.wow_ray/sessions.db"

metadata = MetaData()
sessions = Table(
    "sessions", metadata,
    Column("session_id", String(64), primary_key=True),
    Column("scenario", String(128), nullable=False),
    Column("user_id", String(128)),
    Column("identity_verified", Boolean, nullable=False, default=False),
    Column("status", String(16), nullable=False, default="active"),
    Column("ended_by", String(16)),
    Column("ticket_id", String(64)),
    Column("version", Integer, nullable=False, default=0),
    Column("state", Text, nullable=False),
    Column("metadata", Text, nullable=False, default="{}"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("ended_at", DateTime(timezone=True)),
)
turns = Table(
    "turns", metadata,
    Column("session_id", String(64), ForeignKey("sessions.session_id"), primary_key=True),
    Column("idx", Integer, primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False, index=True),
    Column("customer", Text, nullable=False),
    Column("reply", Text, nullable=False),
    Column("record", Text, nullable=False),
)
tickets = Table(
    "tickets", metadata,
    Column("ticket_id", String(64), primary_key=True),
    Column("session_id", String(64), ForeignKey("sessions.session_id"), nullable=False),
    Column("reason", String(128), nullable=False),
    Column("summary", Text, nullable=False),
    Column("backend_ref", String(64)),
    Column("status", String(16), nullable=False, default="open"),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

ticket_events = Table(
    "ticket_events", metadata,
    Column("event_id", Integer, primary_key=True, autoincrement=True),
    Column("ticket_id", String(64), ForeignKey("tickets.ticket_id"), nullable=False, index=True),
    Column("event", String(16), nullable=False),  # taken, returned, closed
    Column("operator", String(128), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)


class SessionError(WowRayError):
    """Base of the session store's errors."""


class SessionNotFound(SessionError):
    pass


class SessionConflict(SessionError):
    """Another turn of the same session was saved first; this one was not saved."""


class TicketConflict(SessionError):
    """The ticket is not in the state the move needs (taken by someone else, already closed)."""


def _utc(value: datetime | None) -> datetime | None:
    # SQLite hands datetimes back naive; they were written in UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def sqlite_path(url: str) -> Path | None:
    """The file a SQLite URL names (``~`` expanded, absolute); None for an in-memory SQLite
    database or any other database. SQLAlchemy parses the URL, so a driver
    (``sqlite+pysqlite``) or a query string is read as SQLAlchemy reads it."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database).expanduser().resolve()


def make_engine(url: str = DEFAULT_DATABASE_URL) -> Engine:
    """An engine for ``url``; a SQLite file's folder is created and WAL mode switched on."""
    path = sqlite_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        url = make_url(url).set(database=str(path))
    engine = create_engine(url, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(conn, _record) -> None:  # noqa: ANN001 - DBAPI objects
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=10000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

    metadata.create_all(engine)
    return engine


def _transcript_of(row: Row, records: Sequence[str]) -> Transcript:
    """A session row and its turns' stored records (in turn order) as a Transcript."""
    state = SessionState.model_validate_json(row.state)
    return Transcript(
        session_id=row.session_id, scenario=row.scenario, user_id=row.user_id,
        identity_verified=row.identity_verified, created_at=_utc(row.created_at),
        updated_at=_utc(row.updated_at), turns=[TurnRecord.model_validate_json(r) for r in records],
        outcome=Outcome(status=row.status, ended_by=row.ended_by, ticket_id=row.ticket_id,
                        ended_at=_utc(row.ended_at)),
        actions=[a.model_dump() for a in state.actions])


def is_simulated(metadata_json: str | None) -> bool:
    """Whether a session's stored metadata marks it as played by a simulated customer."""
    try:
        return json.loads(metadata_json or "{}").get("simulated") is True
    except (ValueError, AttributeError):
        return False


class SessionStore:
    """Sessions and their transcripts."""

    def __init__(self, url: str = DEFAULT_DATABASE_URL) -> None:
        self.url = url
        self.engine = make_engine(url)

    def create(self, state: SessionState, metadata_json: str = "{}") -> None:
        now = datetime.now(UTC)
        with self.engine.begin() as conn:
            conn.execute(insert(sessions).values(
                session_id=state.session_id, scenario=state.scenario,
                user_id=state.dialogue.user_id, identity_verified=state.dialogue.identity_verified,
                status=state.status, version=0, state=state.model_dump_json(),
                metadata=metadata_json, created_at=now, updated_at=now))

    def load(self, session_id: str) -> tuple[SessionState, int]:
        """The session's state and the version to save against."""
        with self.engine.connect() as conn:
            row = conn.execute(select(sessions.c.state, sessions.c.version)
                               .where(sessions.c.session_id == session_id)).first()
        if row is None:
            raise SessionNotFound(f"no session {session_id!r}")
        return SessionState.model_validate_json(row.state), row.version

    def save_turn(self, state: SessionState, turn: TurnRecord, expected_version: int) -> int:
        """Store ``turn`` and the state after it, atomically; returns the new version."""
        now = datetime.now(UTC)
        values = {"state": state.model_dump_json(), "status": state.status,
                  "version": expected_version + 1, "updated_at": now, "ticket_id": state.ticket_id}
        if state.status != "active":
            values.update(ended_at=now, ended_by="handoff" if state.status == "handed_off" else "customer")
        with self.engine.begin() as conn:
            done = conn.execute(update(sessions).values(**values).where(
                sessions.c.session_id == state.session_id, sessions.c.version == expected_version,
                sessions.c.status == "active"))
            if done.rowcount != 1:
                raise SessionConflict(
                    f"session {state.session_id} changed while this turn ran; it was not saved")
            conn.execute(insert(turns).values(
                session_id=state.session_id, idx=turn.index, created_at=now,
                customer=turn.customer, reply=turn.reply, record=turn.model_dump_json()))
            if turn.handoff is not None:
                h = turn.handoff
                conn.execute(insert(tickets).values(
                    ticket_id=h.ticket_id, session_id=state.session_id, reason=h.reason,
                    summary=h.summary, backend_ref=h.backend_ref, created_at=now))
        return expected_version + 1

    def end(self, session_id: str, ended_by: str = "api") -> SessionState:
        """Close an active session (idempotent on an already closed one)."""
        state, version = self.load(session_id)
        if state.status != "active":
            return state
        state.status = "ended"
        now = datetime.now(UTC)
        with self.engine.begin() as conn:
            done = conn.execute(update(sessions).values(
                state=state.model_dump_json(), status="ended", ended_by=ended_by, ended_at=now,
                updated_at=now, version=version + 1).where(
                sessions.c.session_id == session_id, sessions.c.version == version))
        if done.rowcount != 1:
            raise SessionConflict(f"session {session_id} changed while ending it; try again")
        return state

    def turns_since(self, session_id: str, since: datetime) -> int:
        """Turns saved for the session after ``since`` (the per-session rate limit)."""
        with self.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(turns).where(
                turns.c.session_id == session_id, turns.c.created_at > since)).scalar_one()

    def transcript(self, session_id: str) -> Transcript:
        with self.engine.connect() as conn:
            row = conn.execute(select(sessions).where(sessions.c.session_id == session_id)).first()
            if row is None:
                raise SessionNotFound(f"no session {session_id!r}")
            records = conn.execute(select(turns.c.record).where(turns.c.session_id == session_id)
                                   .order_by(turns.c.idx)).scalars().all()
        return _transcript_of(row, records)

    def recent_transcripts(self, limit: int = 100) -> list[tuple[Transcript, dict]]:
        """The newest sessions' transcripts, newest first, each with its labels (the metadata
        it was created with): two queries however many sessions, for list pages."""
        with self.engine.connect() as conn:
            rows = conn.execute(self._newest(limit)).all()
            records: dict[str, list[str]] = {r.session_id: [] for r in rows}
            found = conn.execute(select(turns.c.session_id, turns.c.record)
                                 .where(turns.c.session_id.in_(list(records)))
                                 .order_by(turns.c.session_id, turns.c.idx))
            for session_id, record in found:
                records[session_id].append(record)
        return [(_transcript_of(row, records[row.session_id]), json.loads(row.metadata))
                for row in rows]

    def recent_states(self, limit: int = 100) -> list[SessionState]:
        """The newest sessions' states, newest first, in one query (for list pages)."""
        with self.engine.connect() as conn:
            rows = conn.execute(self._newest(limit)).all()
        return [SessionState.model_validate_json(row.state) for row in rows]

    @staticmethod
    def _newest(limit: int) -> Select:
        """The newest ``limit`` session rows, newest first (the order of ``session_ids``)."""
        return select(sessions).order_by(sessions.c.created_at.desc()).limit(limit)

    def ticket(self, ticket_id: str) -> dict | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(tickets).where(tickets.c.ticket_id == ticket_id)).first()
        return None if row is None else {**row._mapping, "created_at": _utc(row.created_at)}

    def session_ids(self, *, since: timedelta | None = None, limit: int = 100,
                    simulated: bool | None = None) -> list[str]:
        """Recent sessions, newest first (for evaluation and data export). ``simulated``: only
        sessions a simulated customer played (True), only live ones (False), or all (None);
        a session is simulated when its metadata says ``"simulated": true``."""
        query = select(sessions.c.session_id, sessions.c.metadata).order_by(sessions.c.created_at.desc())
        if since is not None:
            query = query.where(sessions.c.created_at > datetime.now(UTC) - since)
        if simulated is None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [r.session_id for r in rows
                if simulated is None or is_simulated(r.metadata) == simulated][:limit]

    # -- human takeover -------------------------------------------------------------------

    def tickets(self, status: str | None = None, limit: int = 100) -> list[dict]:
        """Tickets, newest first, each with who holds it (``taken_by``) and the session's status."""
        # Who took it last: a correlated subquery, so the list is one query, not one per ticket.
        taken_by = (select(ticket_events.c.operator)
                    .where(ticket_events.c.ticket_id == tickets.c.ticket_id,
                           ticket_events.c.event == "taken")
                    .order_by(ticket_events.c.event_id.desc()).limit(1)
                    .scalar_subquery().label("taken_by"))
        query = (select(tickets, sessions.c.status.label("session_status"),
                        sessions.c.user_id, taken_by).join(sessions)
                 .order_by(tickets.c.created_at.desc()).limit(limit))
        if status is not None:
            query = query.where(tickets.c.status == status)
        with self.engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(query)]
        for row in rows:
            row["created_at"] = _utc(row["created_at"])
        return rows

    def take_ticket(self, ticket_id: str, operator: str) -> SessionState:
        """A colleague takes an open ticket: its session waits for them, not for the agents."""
        return self._move_ticket(ticket_id, operator, "taken", ("open",), "human", ("handed_off",))

    def hand_back(self, ticket_id: str, operator: str) -> SessionState:
        """The colleague returns the session to the agents; the customer's chat goes on."""
        return self._move_ticket(ticket_id, operator, "returned", ("taken",), "active", ("human",))

    def close_ticket(self, ticket_id: str, operator: str) -> SessionState:
        """The colleague is done: the ticket is closed and the session ended."""
        return self._move_ticket(ticket_id, operator, "closed", ("open", "taken"), "ended",
                                 ("handed_off", "human"))

    def _move_ticket(self, ticket_id: str, operator: str, event: str, ticket_from: tuple[str, ...],
                     status: str, session_from: tuple[str, ...]) -> SessionState:
        found = self.ticket(ticket_id)
        if found is None:
            raise SessionNotFound(f"no ticket {ticket_id!r}")
        state, version = self.load(found["session_id"])
        if found["status"] not in ticket_from or state.status not in session_from:
            raise TicketConflict(f"ticket {ticket_id} is {found['status']} (session "
                                 f"{state.status}); it cannot be {event}")
        state.status = status
        now = datetime.now(UTC)
        values = {"state": state.model_dump_json(), "status": status, "version": version + 1,
                  "updated_at": now}
        values.update({"ended_at": now, "ended_by": "human"} if status == "ended" else
                      {"ended_at": None, "ended_by": None} if status == "active" else {})
        with self.engine.begin() as conn:
            moved = conn.execute(update(tickets).values(status=event).where(
                tickets.c.ticket_id == ticket_id, tickets.c.status == found["status"]))
            done = conn.execute(update(sessions).values(**values).where(
                sessions.c.session_id == state.session_id, sessions.c.version == version))
            if moved.rowcount != 1 or done.rowcount != 1:  # the context rolls both back
                raise TicketConflict(f"ticket {ticket_id} changed meanwhile; try again")
            conn.execute(insert(ticket_events).values(ticket_id=ticket_id, event=event,
                                                      operator=operator, created_at=now))
        return state

    def human_turn(self, session_id: str, *, customer: str = "", reply: str = "",
                   operator: str | None = None, attachments: list[str] | None = None) -> TurnRecord:
        """Store the customer's message to the colleague, or the colleague's reply, as a turn
        of a session in ``human`` status (else ``TicketConflict``)."""
        state, version = self.load(session_id)
        if state.status != "human":
            raise TicketConflict(f"session {session_id} is {state.status}, not with a colleague")
        turn = TurnRecord(index=state.turns, customer=customer, reply=reply,
                          attachments=attachments or [], by="human", operator=operator)
        if customer:
            state.history.append(Line(role="customer", text=customer))
        if reply:
            state.history.append(Line(role="agent", text=reply))
        state.turns += 1
        now = datetime.now(UTC)
        with self.engine.begin() as conn:
            done = conn.execute(update(sessions).values(
                state=state.model_dump_json(), version=version + 1, updated_at=now).where(
                sessions.c.session_id == session_id, sessions.c.version == version,
                sessions.c.status == "human"))
            if done.rowcount != 1:
                raise SessionConflict(f"session {session_id} changed meanwhile; try again")
            conn.execute(insert(turns).values(
                session_id=session_id, idx=turn.index, created_at=now, customer=customer,
                reply=reply, record=turn.model_dump_json()))
        return turn

    def ticket_history(self, ticket_id: str) -> list[dict]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(ticket_events).where(ticket_events.c.ticket_id == ticket_id)
                                .order_by(ticket_events.c.event_id)).all()
        return [{**r._mapping, "created_at": _utc(r.created_at)} for r in rows]

    def labels(self, session_id: str) -> dict:
        """The metadata the session was created with (channel, simulated...)."""
        with self.engine.connect() as conn:
            found = conn.execute(select(sessions.c.metadata)
                                 .where(sessions.c.session_id == session_id)).scalar()
        if found is None:
            raise SessionNotFound(f"no session {session_id!r}")
        return json.loads(found)

    def version_of(self, session_id: str) -> tuple[int, datetime | None]:
        """The session's version and last change (what a live page polls for)."""
        with self.engine.connect() as conn:
            row = conn.execute(select(sessions.c.version, sessions.c.updated_at)
                               .where(sessions.c.session_id == session_id)).first()
        if row is None:
            raise SessionNotFound(f"no session {session_id!r}")
        return row.version, _utc(row.updated_at)

    def last_change(self) -> tuple[int, datetime | None]:
        """How many sessions there are and the latest change of any (the live list polls it)."""
        with self.engine.connect() as conn:
            row = conn.execute(select(func.count(), func.max(sessions.c.updated_at))).first()
        return row[0], _utc(row[1])
