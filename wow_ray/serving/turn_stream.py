"""How the gateway runs a turn against replicas that may die, and streams its events.

A turn whose master replica died is started again (``retrying``), which is safe because nothing
of an unsaved turn persists: a session's backend is rebuilt from its saved action log. A
streamed turn that fails after its first event ends with an error event, never a broken stream.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import HTTPException

from wow_ray.agents.events import ErrorEvent, ServiceEvent, to_sse

logger = logging.getLogger("wow_ray.serving.gateway")  # where the gateway's failures are logged


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
