"""A turn restarted after a replica died only extends what the customer was shown (issue 18):
no ``reset``, ever. The retried reply's repeat of the shown text is not sent again; a retried
reply that departs from it ends the turn unsaved. No server needed."""

from __future__ import annotations

import asyncio

import pytest
from ray.serve.exceptions import BackPressureError

from wow_ray.agents.events import (
    DeltaEvent,
    FinalEvent,
    ResetEvent,
    StepEvent,
    TurnOutcome,
)
from wow_ray.agents.messages import SessionState
from wow_ray.agents.transcript import TurnRecord
from wow_ray.serving.turn_stream import Diverged, ExtendOnly, extended, retrying

UNDERSTOOD = StepEvent(agent="understanding", summary={"intent": "late_delivery"})
SOLVED = StepEvent(agent="solution", summary={"coupon": "5 CNY"})


def final(reply: str) -> FinalEvent:
    return FinalEvent(outcome=TurnOutcome(state=SessionState(session_id="s", scenario="x"),
                                          turn=TurnRecord(index=0, customer="hi", reply=reply)))


def attempt_of(*events, dies: bool = False):
    async def attempt():
        for event in events:
            yield event
        if dies:
            raise BackPressureError(1, 1)  # what a dead or restarting replica looks like
    return attempt


def run_turn(*attempts) -> list:
    """The client's view of a turn whose attempts are ``attempts``, in order."""
    pending = list(attempts)

    async def attempt():
        async for event in pending.pop(0)():
            yield event

    async def go():
        return [e async for e in extended(retrying(attempt, 60))]

    return asyncio.run(go())


@pytest.fixture(autouse=True)
def _no_backoff(monkeypatch):
    async def no_wait(_delay: float) -> None:
        return None
    monkeypatch.setattr(asyncio, "sleep", no_wait)


def _text(events) -> str:
    return "".join(e.text for e in events if isinstance(e, DeltaEvent))


def test_a_retry_that_repeats_the_shown_text_sends_only_the_rest():
    events = run_turn(
        attempt_of(UNDERSTOOD, DeltaEvent(text="Sorry about "), DeltaEvent(text="the delay."),
                   dies=True),
        attempt_of(UNDERSTOOD, SOLVED, DeltaEvent(text="Sorry"), DeltaEvent(text=" about the"),
                   DeltaEvent(text=" delay. A 5 CNY"), DeltaEvent(text=" coupon is yours."),
                   final("Sorry about the delay. A 5 CNY coupon is yours.")))
    assert not any(isinstance(e, ResetEvent) for e in events)
    assert [e for e in events if isinstance(e, StepEvent)] == [UNDERSTOOD, SOLVED], \
        "a step already sent is not repeated"
    assert _text(events) == "Sorry about the delay. A 5 CNY coupon is yours."
    assert [e.text for e in events if isinstance(e, DeltaEvent)][-2:] == [" A 5 CNY", " coupon is yours."]
    assert isinstance(events[-1], FinalEvent)


def test_a_retry_that_departs_from_the_shown_text_is_refused_not_withdrawn():
    def turn():
        return run_turn(
            attempt_of(DeltaEvent(text="Sorry about the delay. "), dies=True),
            attempt_of(DeltaEvent(text="Sorry about "), DeltaEvent(text="that order."),
                       final("Sorry about that order.")))

    with pytest.raises(Diverged, match="after 14 characters"):
        turn()


def test_a_retry_whose_reply_ends_before_the_shown_text_is_refused():
    with pytest.raises(Diverged, match="does not begin"):
        run_turn(attempt_of(DeltaEvent(text="Sorry about the delay."), dies=True),
                 attempt_of(DeltaEvent(text="Sorry"), final("Sorry")))


def test_a_retry_before_any_text_was_shown_streams_as_usual():
    events = run_turn(attempt_of(UNDERSTOOD, dies=True),
                      attempt_of(StepEvent(agent="understanding", summary={"intent": None}),
                                 DeltaEvent(text="Hello!"), final("Hello!")))
    steps = [e for e in events if isinstance(e, StepEvent)]
    assert len(steps) == 2 and steps[1].summary == {"intent": None}, "a step that differs is sent"
    assert _text(events) == "Hello!"


def test_extend_only_tracks_what_was_shown_over_attempts():
    shown = ExtendOnly()
    assert shown.admit(DeltaEvent(text="Hi ")) == DeltaEvent(text="Hi ")
    shown.restart()
    assert shown.admit(DeltaEvent(text="H")) is None
    assert shown.admit(DeltaEvent(text="i there")) == DeltaEvent(text="there")
    assert shown.shown == "Hi there"
    shown.check_reply("Hi there, how can I help?")
    with pytest.raises(Diverged):
        shown.check_reply("Hello")
