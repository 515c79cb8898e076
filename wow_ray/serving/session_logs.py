"""Structured logs that carry the session id, so one customer's dialogue can be followed.

Inside Serve replicas logs go through the ``ray.serve`` logger; with the application's
``logging_config: {encoding: JSON}`` Ray writes each record as one JSON object holding every
attribute a record has beyond the standard ones (Serve adds the deployment, replica and
request id). :func:`install_session_logging` has every record made in the process carry
``session_id``, the session the current request serves (:func:`session_context`), so it
appears in those JSON lines with no change at the call sites. Processes outside Serve (jobs,
the CLI) format with :class:`JsonLogFormatter`, which writes the same keys
(:func:`json_logging`).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator, Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TypeVar

T = TypeVar("T")

_current_session: ContextVar[str | None] = ContextVar("wow_ray_session_id", default=None)

# Attributes every LogRecord has; anything else was added by `extra=` or a filter.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


@contextlib.contextmanager
def session_context(session_id: str | None) -> Iterator[None]:
    """Records logged inside (in this task or thread, across awaits) carry ``session_id``."""
    token = _current_session.set(session_id)
    try:
        yield
    finally:
        _current_session.reset(token)


async def in_session(session_id: str | None, events: AsyncIterator[T]) -> AsyncIterator[T]:
    """``events`` with each step run inside :func:`session_context`: a streamed turn's steps
    run in different tasks (the route handler takes the first, the response's task the rest),
    and a context variable set in one task cannot be reset in another, so the id is set and
    reset around each step instead of once around the whole stream."""
    iterator = aiter(events)
    try:
        while True:
            with session_context(session_id):
                try:
                    item = await anext(iterator)
                except StopAsyncIteration:
                    return
            yield item
    finally:  # a client gone mid-stream closes this; the turn's own cleanup must run too
        if hasattr(iterator, "aclose"):
            with session_context(session_id):
                await iterator.aclose()


class JsonLogFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, session id and any extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "levelname": record.levelname,
            "name": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value if isinstance(value, str | int | float | bool) else str(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def install_session_logging() -> None:
    """Put the session id on every record made in this process inside a session (idempotent).

    It wraps the process's log record factory (as Ray and vLLM wrap it) instead of filtering a
    logger's handlers: Serve clears a replica's handlers and makes new ones whenever it
    reconfigures the replica (a redeploy of its app), which silently dropped filters put on
    them. Inside a session a call's ``extra`` may not name ``session_id`` too (logging refuses
    to overwrite an attribute). Call it in a replica's constructor.
    """
    current = logging.getLogRecordFactory()
    if getattr(current, "adds_session_id", False):
        return

    def make_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = current(*args, **kwargs)
        session_id = _current_session.get()
        if session_id is not None:
            record.session_id = session_id
        return record

    make_record.adds_session_id = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(make_record)


def json_logging(level: int = logging.INFO, logger_name: str = "wow_ray") -> logging.Handler:
    """For processes outside Serve: JSON lines on stderr with the session id; returns the handler."""
    install_session_logging()
    handler = logging.StreamHandler()
    handler.setFormatter(JsonLogFormatter())
    logger = logging.getLogger(logger_name)
    logger.addHandler(handler)
    logger.setLevel(level)
    return handler
