"""The session store on a real SQLite file and a real PostgreSQL server: atomic turns, conflicts, transcripts, tickets."""

from __future__ import annotations

import json
import threading

import pytest

from tests.agents.conftest import talk
from wow_ray.agents.sessions import SessionConflict, SessionNotFound, SessionStore
from wow_ray.agents.transcript import TRANSCRIPT_SCHEMA_VERSION, Transcript, TurnRecord


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    """The store on a SQLite file (the default) and on a real PostgreSQL server."""
    if request.param == "postgresql":
        return SessionStore(request.getfixturevalue("postgres_url"))
    return SessionStore(f"sqlite:///{tmp_path}/sessions.db")


def test_a_dialogue_is_stored_turn_by_turn_and_read_back_as_json(store, no_model_master, session):
    state = session("U0001")
    store.create(state)
    version = 0
    for message in ["please cancel order O10001", "I want to talk to a real person"]:
        state, version = store.load(state.session_id)
        state, (turn,) = talk(no_model_master, state, message)
        version = store.save_turn(state, turn, version)
    record = store.transcript(state.session_id)
    again = Transcript.model_validate(json.loads(json.dumps(record.model_dump(mode="json"))))
    assert again == record and again.schema_version == TRANSCRIPT_SCHEMA_VERSION
    assert [t.customer for t in record.turns] == ["please cancel order O10001",
                                                  "I want to talk to a real person"]
    assert record.outcome.status == "handed_off" and record.outcome.ticket_id
    assert record.actions[-1]["name"] == "transfer_to_human"
    ticket = store.ticket(record.outcome.ticket_id)
    assert ticket["session_id"] == state.session_id and "U0001" in ticket["summary"]
    denied = [c for c in record.turns[0].tool_calls if c.decision and not c.decision.allowed]
    assert denied and denied[0].decision.rule_ids


def test_a_stale_save_is_refused_and_changes_nothing(store, session):
    state = session()
    store.create(state)
    _, version = store.load(state.session_id)
    store.save_turn(state, TurnRecord(index=0, customer="a", reply="b"), version)
    with pytest.raises(SessionConflict):
        store.save_turn(state, TurnRecord(index=0, customer="racing", reply="c"), version)
    record = store.transcript(state.session_id)
    assert [t.customer for t in record.turns] == ["a"]


def test_concurrent_saves_of_one_session_let_exactly_one_win(store, session):
    state = session()
    store.create(state)
    _, version = store.load(state.session_id)
    results = []

    def save(i):
        try:
            store.save_turn(state, TurnRecord(index=0, customer=f"m{i}", reply="r"), version)
            results.append("ok")
        except SessionConflict:
            results.append("conflict")

    threads = [threading.Thread(target=save, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["conflict"] * 5 + ["ok"]
    assert len(store.transcript(state.session_id).turns) == 1


def test_closed_sessions_take_no_more_turns_and_unknown_ones_are_reported(store, session):
    state = session()
    store.create(state)
    assert store.end(state.session_id).status == "ended"
    assert store.end(state.session_id).status == "ended"  # idempotent
    with pytest.raises(SessionConflict):
        store.save_turn(state, TurnRecord(index=0, customer="late", reply="x"), 1)
    with pytest.raises(SessionNotFound):
        store.load("nope")


def test_the_database_survives_a_new_store_object(tmp_path, session):
    url = f"sqlite:///{tmp_path}/s.db"
    state = session()
    SessionStore(url).create(state)
    loaded, version = SessionStore(url).load(state.session_id)
    assert loaded == state and version == 0


def _handed_off(store, master, session):
    state = session("U0001")
    store.create(state)
    state, version = store.load(state.session_id)
    state, (turn,) = talk(master, state, "I want to talk to a real person")
    store.save_turn(state, turn, version)
    assert state.status == "handed_off"
    return state.session_id, state.ticket_id


def test_a_colleague_takes_a_ticket_talks_and_hands_back(store, no_model_master, session):
    from wow_ray.agents.sessions import TicketConflict

    sid, ticket_id = _handed_off(store, no_model_master, session)
    [listed] = store.tickets(status="open")
    assert listed["ticket_id"] == ticket_id and listed["taken_by"] is None
    with pytest.raises(TicketConflict):  # nobody holds it yet: no human turns
        store.human_turn(sid, customer="hello?")
    assert store.take_ticket(ticket_id, "ops-ana").status == "human"
    with pytest.raises(TicketConflict):  # a second colleague cannot take it too
        store.take_ticket(ticket_id, "ops-ben")
    assert [(t["ticket_id"], t["taken_by"]) for t in store.tickets()] == [(ticket_id, "ops-ana")]
    store.human_turn(sid, customer="are you a person?")
    store.human_turn(sid, reply="Yes, I'm Ana. Let me look at it.", operator="ops-ana")
    state = store.hand_back(ticket_id, "ops-ana")
    assert state.status == "active"
    record = store.transcript(sid)
    human = [t for t in record.turns if t.by == "human"]
    assert [(t.customer, t.reply, t.operator) for t in human] == [
        ("are you a person?", "", None), ("", "Yes, I'm Ana. Let me look at it.", "ops-ana")]
    assert [t.index for t in record.turns] == list(range(len(record.turns)))
    assert record.outcome.status == "active" and record.outcome.ended_by is None
    assert store.tickets()[0]["status"] == "returned"
    assert [e["event"] for e in store.ticket_history(ticket_id)] == ["taken", "returned"]
    # the agents answer again, seeing what the colleague said
    state, version = store.load(sid)
    assert state.history[-1].text == "Yes, I'm Ana. Let me look at it."
    state, (turn,) = talk(no_model_master, state, "thanks, where is order O10001?")
    store.save_turn(state, turn, version)
    assert store.transcript(sid).turns[-1].by == "agents"


def test_a_closed_ticket_ends_the_session(store, no_model_master, session):
    from wow_ray.agents.sessions import TicketConflict

    sid, ticket_id = _handed_off(store, no_model_master, session)
    store.take_ticket(ticket_id, "ops-ana")
    assert store.close_ticket(ticket_id, "ops-ana").status == "ended"
    record = store.transcript(sid)
    assert record.outcome.status == "ended" and record.outcome.ended_by == "human"
    with pytest.raises(TicketConflict):
        store.hand_back(ticket_id, "ops-ana")
    with pytest.raises(TicketConflict):
        store.human_turn(sid, reply="late", operator="ops-ana")
