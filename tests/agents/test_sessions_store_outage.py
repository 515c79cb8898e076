"""The sessions database stops for a while (a real PostgreSQL, stopped and started again):
requests fail clearly, no turn is half-written, and the same store recovers by itself."""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy.exc import DBAPIError

from wow_ray.agents.local import new_session
from wow_ray.agents.sessions import SessionStore
from wow_ray.agents.transcript import TurnRecord


def test_an_outage_fails_clearly_writes_nothing_and_recovers(postgres, postgres_url):
    store = SessionStore(postgres_url)
    state = new_session("food_delivery", user_id="U0214", identity_verified=True)
    store.create(state)
    state, version = store.load(state.session_id)
    postgres.stop()
    try:
        with pytest.raises(DBAPIError):
            store.load(state.session_id)
        state.turns = 1
        with pytest.raises(DBAPIError):
            store.save_turn(state, TurnRecord(index=0, customer="hi", reply="hello"), version)
    finally:
        postgres.start()
    deadline = time.monotonic() + 30
    while True:  # the same store object, no restart of anything: the pool reconnects
        try:
            again, again_version = store.load(state.session_id)
            break
        except DBAPIError:
            assert time.monotonic() < deadline, "the store did not recover"
            time.sleep(0.5)
    assert (again.turns, again_version) == (0, version), "nothing of the failed turn was stored"
    assert store.transcript(state.session_id).turns == []
    store.save_turn(state, TurnRecord(index=0, customer="hi", reply="hello"), again_version)
    assert [t.reply for t in store.transcript(state.session_id).turns] == ["hello"]


def test_the_gateway_answers_a_store_outage_with_503_and_retry_after():
    from sqlalchemy.exc import OperationalError

    from wow_ray.serving.gateway import _store_unavailable

    response = asyncio.run(_store_unavailable(None, OperationalError("SELECT 1", {}, Exception("down"))))
    assert response.status_code == 503 and response.headers["retry-after"]
    assert b"sessions database is unavailable" in response.body
