"""How the gateway runs a turn against replicas that may die, and streams its events.

A turn whose master replica died is started again (``retrying``), which is safe because nothing
of an unsaved turn persists: a session's backend is rebuilt from its saved action log. A
streamed turn that fails after its first event ends with an error event, never a broken stream.
A restarted turn's stream only ever extends what the customer was shown (:class:`ExtendOnly`):
nothing is withdrawn, and no ``reset`` is ever sent.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import HTTPException

from wow_ray.agents.events import (
    DeltaEvent,
    ErrorEvent,
    FinalEvent,
    ServiceEvent,
    StepEvent,
    to_sse,
)

# A child of Serve's logger: in a replica its records go through Serve's handlers (JSON lines
# with `logging_config: {encoding: JSON}`) and carry the session id (session_logs.py).
logger = logging.getLogger("ray.serve.wow_ray.gateway")


def _retryable(exc: BaseException | None) -> bool:
    """A replica died or is restarting (directly, or as the cause of a task error)."""
    from ray.exceptions import RayActorError, RayTaskError
    from ray.serve.exceptions import BackPressureError

    seen = 0
    while exc is not None and seen < 5:
        if isinstance(exc, RayActorError | BackPressureError):
            return True
        exc = exc.cause if isinstance(exc, RayTaskError) else exc.__cause__
        seen += 1
    return False


RESTART = object()  # what ``retrying`` yields before it starts an attempt again


async def retrying(attempt: Callable[[], AsyncIterator[Any]], retry_s: float) -> AsyncIterator[Any]:
    """What ``attempt()`` yields, started again (after ``RESTART``, with backoff) while a
    replica it needs is dead or restarting, for up to ``retry_s`` seconds. Safe for a turn:
    an unsaved turn left nothing behind (see the module docstring)."""
    deadline, delay = time.monotonic() + retry_s, 0.5
    while True:
        try:
            async for item in attempt():
                yield item
            return
        except Exception as exc:
            if time.monotonic() + delay > deadline or not _retryable(exc):
                raise
            yield RESTART
            await asyncio.sleep(delay)
            delay = min(delay * 2, 8.0)


class Diverged(Exception):
    """A restarted turn's reply does not begin with the text the customer was already shown."""


DIVERGED_DETAIL = ("the reply was interrupted (a service replica restarted) and could not be "
                   "finished as it began: the unfinished reply above was not carried out, and "
                   "nothing of this message was done or saved. Please send your message again.")


class ExtendOnly:
    """What the client of a streamed turn may be sent when the turn may restart mid-way.

    A restarted turn runs again from the saved state, so its reply is written anew. Its text
    is sent only where it extends what the customer already has: while the new attempt's
    deltas repeat text already shown, nothing is sent; once they go past it, only the rest.
    When the new attempt's reply departs from what was shown, or ends before all of it,
    :class:`Diverged` is raised, and the gateway ends the stream with an ``error`` event and
    saves nothing.

    Why not save the retried turn anyway, or withdraw the text: the transcript (what the
    agents said and did) and what the customer read must agree. The retried turn's actions
    and reply belong together; the first attempt's text belongs to actions that were never
    saved (the backend is rebuilt from the saved action log, so an unsaved turn did nothing).
    Saving the retry beside text it did not write would store a conversation the customer
    never saw; withdrawing shown text breaks the one promise of the stream. So on divergence
    nothing is stored, and the error says so: the shown text was not carried out, send the
    message again. When the retry does extend what was shown, the saved reply begins with it,
    and the turn is stored as usual.

    Steps (progress notes, not reply text) already sent are not repeated when the restarted
    attempt sends the same ones again at the same place; ones that differ are sent.
    """

    def __init__(self) -> None:
        self.shown = ""  # reply text sent so far, over all attempts
        self.steps: list[StepEvent] = []  # steps sent, by their place in the turn
        self._attempt_text = ""
        self._attempt_steps = 0

    def restart(self) -> None:
        """A new attempt of the turn begins (``retrying`` yielded ``RESTART``)."""
        self._attempt_text, self._attempt_steps = "", 0

    def admit(self, event: ServiceEvent) -> ServiceEvent | None:
        """The event to send for ``event`` of the current attempt (None: nothing to send)."""
        if isinstance(event, StepEvent):
            place, self._attempt_steps = self._attempt_steps, self._attempt_steps + 1
            if place < len(self.steps) and self.steps[place] == event:
                return None
            self.steps[place:place + 1] = [event]
            return event
        if not isinstance(event, DeltaEvent):
            return event
        self._attempt_text += event.text
        if self.shown.startswith(self._attempt_text):
            return None  # repeating what the customer has
        if not self._attempt_text.startswith(self.shown):
            raise Diverged(f"the restarted reply departs from the shown text after "
                           f"{len(os.path.commonprefix([self.shown, self._attempt_text]))} "
                           "characters")
        more, self.shown = self._attempt_text[len(self.shown):], self._attempt_text
        return DeltaEvent(text=more)

    def check_reply(self, reply: str) -> None:
        """Raise :class:`Diverged` unless the turn's final reply begins with what was shown."""
        if not reply.startswith(self.shown):
            raise Diverged(f"the final reply does not begin with the {len(self.shown)} "
                           "characters shown")


async def extended(events: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """What ``retrying`` yields for a streamed turn (``RESTART`` between attempts, the
    master's events, its ``final``) as the client may see it: through :class:`ExtendOnly`,
    the ``final`` passed on once its reply is checked. Raises :class:`Diverged`."""
    shown = ExtendOnly()
    async for event in events:
        if event is RESTART:
            shown.restart()
        elif isinstance(event, FinalEvent):
            shown.check_reply(event.outcome.turn.reply)
            yield event
        elif (sent := shown.admit(event)) is not None:
            yield sent


async def events_as_sse(first: ServiceEvent, events: AsyncIterator[ServiceEvent]) -> AsyncIterator[str]:
    """A turn's events (``first``, already read, then the rest) as server-sent events; a
    failure after the first ends the stream with an ``error`` event saying what to do."""
    item: ServiceEvent | None = first
    while item is not None:
        yield to_sse(item)
        try:
            item = await anext(events)
        except StopAsyncIteration:
            item = None
        except HTTPException as exc:
            yield to_sse(ErrorEvent(status=exc.status_code, detail=exc.detail))
            item = None
        except Exception as exc:  # a replica still down after the retries: say so
            logger.exception("streamed turn failed")
            yield to_sse(ErrorEvent(status=503, detail=f"the reply failed ("
                                    f"{type(exc).__name__}); nothing was saved, "
                                    "send the message again"))
            item = None


async def resumed(first: ServiceEvent, events: AsyncIterator[ServiceEvent]) -> AsyncIterator[ServiceEvent]:
    """``first`` (read ahead, so admission errors became HTTP errors) and then the rest."""
    yield first
    async for item in events:
        yield item
