"""The gateway's one retry loop (``retrying``): both the plain and the streamed turn use it."""

from __future__ import annotations

import asyncio

import pytest
from ray.serve.exceptions import BackPressureError

from wow_ray.serving.turn_stream import RESTART, retrying


def flaky(failures: list[BaseException]):
    """An attempt that yields 'a', then fails with the next of ``failures``, or yields 'b'."""
    calls = []

    async def attempt():
        calls.append(1)
        yield "a"
        if failures:
            raise failures.pop(0)
        yield "b"

    return attempt, calls


async def collect(attempt, retry_s: float) -> list:
    return [item async for item in retrying(attempt, retry_s)]


def test_a_dead_replica_is_retried_and_the_restart_marked(monkeypatch):
    monkeypatch.setattr(asyncio, "sleep", _no_wait)  # the backoff, without the waiting
    attempt, calls = flaky([BackPressureError(1, 1), BackPressureError(1, 1)])
    assert asyncio.run(collect(attempt, 60)) == ["a", RESTART, "a", RESTART, "a", "b"]
    assert len(calls) == 3


def test_other_errors_and_an_exhausted_budget_are_raised():
    attempt, calls = flaky([ValueError("bad request")])
    with pytest.raises(ValueError):
        asyncio.run(collect(attempt, 60))
    assert len(calls) == 1
    attempt, calls = flaky([BackPressureError(1, 1)])
    with pytest.raises(BackPressureError):
        asyncio.run(collect(attempt, 0))  # no time left to wait for a restart
    assert len(calls) == 1


async def _no_wait(_delay: float) -> None:
    return None
