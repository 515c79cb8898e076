"""List pages read the newest sessions in a fixed number of queries, not one (or three) per
session, and see exactly what reading each session alone shows."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import event

from tests.agents.conftest import talk
from wow_ray.agents.sessions import SessionStore
from wow_ray.serving.console.views import session_row


@pytest.fixture
def store(tmp_path):
    return SessionStore(f"sqlite:///{tmp_path}/sessions.db")


@pytest.fixture
def stored(store, no_model_master, session):
    """Five sessions: with and without turns, handed off, simulated or live."""
    scripts = [[], ["where is my order O10001"], ["please cancel order O10001",
                                                  "I want to talk to a real person"],
               ["hello"], []]
    for n, messages in enumerate(scripts):
        state = session("U0001")
        store.create(state, json.dumps({"simulated": n % 2 == 0, "channel": "test"}))
        version = 0
        for message in messages:
            state, version = store.load(state.session_id)
            state, (turn,) = talk(no_model_master, state, message)
            version = store.save_turn(state, turn, version)
    return store


class QueryCount:
    """Statements the engine sends while counting (a SQLAlchemy event listener)."""

    def __init__(self, engine) -> None:
        self.engine, self.n = engine, 0

    def _count(self, *_args) -> None:
        self.n += 1

    def __enter__(self) -> QueryCount:
        event.listen(self.engine, "before_cursor_execute", self._count)
        return self

    def __exit__(self, *_exc) -> None:
        event.remove(self.engine, "before_cursor_execute", self._count)


@pytest.mark.parametrize("limit", [3, 50])
def test_recent_transcripts_are_the_sessions_read_one_by_one_in_two_queries(stored, limit):
    one_by_one = [(stored.transcript(sid), stored.labels(sid))
                  for sid in stored.session_ids(limit=limit)]
    with QueryCount(stored.engine) as queries:
        listed = stored.recent_transcripts(limit)
    assert listed == one_by_one and len(listed) == min(limit, 5)
    assert queries.n == 2
    rows = [session_row(t, bool(labels.get("simulated"))) for t, labels in listed]
    assert [r.turns for r in rows] == [len(t.turns) for t, _ in one_by_one]
    assert [r.simulated for r in rows] == [n % 2 == 0 for n in range(5)][::-1][:limit]


@pytest.mark.parametrize("limit", [2, 50])
def test_recent_states_are_the_sessions_loaded_one_by_one_in_one_query(stored, limit):
    one_by_one = [stored.load(sid)[0] for sid in stored.session_ids(limit=limit)]
    with QueryCount(stored.engine) as queries:
        listed = stored.recent_states(limit)
    assert listed == one_by_one and len(listed) == min(limit, 5)
    assert queries.n == 1
    if limit > 3:  # the third oldest was handed over
        assert [s.status for s in listed][2] == "handed_off"


def test_an_empty_store_lists_nothing(store):
    assert store.recent_transcripts(10) == [] and store.recent_states(10) == []
