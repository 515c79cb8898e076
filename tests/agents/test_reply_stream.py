"""A streamed reply shows only text that stands: nothing a customer read is ever withdrawn."""

from __future__ import annotations

import pytest

from tests.agents.conftest import run
from wow_ray.agents.base import InvalidOutput
from wow_ray.agents.events import DeltaEvent, ResetEvent
from wow_ray.agents.local import local_master
from wow_ray.agents.reply_gate import ReplyGate
from wow_ray.llm.chat import ScriptedChatClient

LATE = "My order O10337 arrived 20 minutes late"  # U0214: the rules grant a 5 CNY coupon


def streamed_turn(pack, state, draft: str, message: str = LATE):
    master = local_master(pack, ScriptedChatClient({"response": [draft]}))

    async def go():
        return [e async for e in master.events(state, message)]

    events = run(go())
    return events, events[-1].outcome.turn


def assert_stands(events, reply: str) -> list[str]:
    """No reset, and every streamed piece extends text the final reply begins with."""
    assert not any(isinstance(e, ResetEvent) for e in events)
    pieces = [e.text for e in events if isinstance(e, DeltaEvent)]
    shown = ""
    for piece in pieces:
        shown += piece
        assert reply.startswith(shown), f"{shown!r} is not how the reply begins"
    assert shown == reply
    return pieces


def test_a_draft_failing_after_its_first_sentence_is_completed_never_withdrawn(pack, session):
    draft = "Sorry for the wait! I've refunded you 99 CNY. Anything else?"
    events, turn = streamed_turn(pack, session("U0214"), draft)
    pieces = assert_stands(events, turn.reply)
    assert pieces[0] == "Sorry for the wait!"
    assert "refunded" not in turn.reply and "99" not in turn.reply
    assert "5 CNY" in turn.reply, "the fact the draft failed to state is added after it"
    step = turn.steps[-1]
    assert step.completed and not step.fallback and step.model_use == "completed"
    assert "refund" in step.llm_calls[0].error and not step.llm_calls[0].valid


def test_a_draft_whose_first_sentence_fails_shows_only_the_fallback(pack, session):
    events, turn = streamed_turn(pack, session("U0214"), "I refunded 999 CNY. Sorry for the wait.")
    pieces = assert_stands(events, turn.reply)
    assert len(pieces) == 1 and "999" not in turn.reply and "5 CNY" in turn.reply
    assert turn.steps[-1].fallback and turn.steps[-1].model_use == "fallback"


def test_a_prompt_placeholder_echoed_as_the_first_line_is_never_shown(pack, session):
    """The base model often begins with the prompt's "(none yet)" (an empty conversation)."""
    events, turn = streamed_turn(pack, session("U0214"), "(None yet)\nCustomer: Sorry for the wait!")
    assert_stands(events, turn.reply)
    assert "none" not in turn.reply.lower() and "Customer:" not in turn.reply
    assert turn.steps[-1].model_use == "fallback"


def test_a_draft_that_forgets_a_value_it_must_quote_gets_it_appended(pack, session):
    events, turn = streamed_turn(pack, session("U0214"), "Sorry for the wait!")
    assert assert_stands(events, turn.reply)[0] == "Sorry for the wait!"
    assert turn.reply.startswith("Sorry for the wait! ") and "5 CNY" in turn.reply
    assert turn.steps[-1].model_use == "completed"


def test_a_clarification_without_a_question_gets_the_question_appended(pack, session):
    # U0061 has several orders: an invoice needs the order number, which the agent asks for.
    events, turn = streamed_turn(pack, session("U0061"), "Happy to help with the invoice.",
                                 "I need an invoice please, company LanternCorp")
    assert turn.moves == ["clarify"]
    assert assert_stands(events, turn.reply)[0] == "Happy to help with the invoice."
    assert turn.reply.endswith("?") and "order" in turn.reply.lower()


@pytest.mark.parametrize("stream", [True, False])
def test_streamed_and_whole_turns_settle_a_failing_draft_the_same_way(pack, session, stream):
    master = local_master(pack, ScriptedChatClient(
        {"response": ["Sorry for the wait! I've refunded you 99 CNY."]}))

    async def go():
        return [e async for e in master.events(session("U0214"), LATE, stream=stream)]

    reply = run(go())[-1].outcome.turn.reply
    assert reply == "Sorry for the wait! I've added a 5 CNY coupon (CP00045) to your account."


def check_no_nine(text: str) -> None:
    if "9" in text:
        raise InvalidOutput("mentions 9")


def test_the_gate_releases_each_sentence_once_it_is_complete_and_checked():
    released: list[str] = []
    gate = ReplyGate(check_no_nine, released.append)
    for piece in ["Your total", " is 12.5", " CNY.", " Thanks", "!  More", " soon."]:
        gate.feed(piece)
        if piece == " CNY.":
            assert released == [], "a sentence is held until what follows shows it ended"
    assert released == ["Your total is 12.5 CNY.", " Thanks!"]
    gate.close("stop")
    assert released[-1] == " More soon." and gate.whole
    assert gate.shown == "Your total is 12.5 CNY. Thanks! More soon."


def test_the_gate_stops_at_the_first_failing_sentence_and_drops_a_cut_off_tail():
    released: list[str] = []
    gate = ReplyGate(check_no_nine, released.append)
    assert gate.settle("Fine. You get 9 CNY. Also fine.") == "Fine."
    assert released == ["Fine."] and gate.rejected == "mentions 9"
    cut = ReplyGate(check_no_nine)
    assert cut.settle("Fine. And then the", "length") == "Fine." and cut.cut and not cut.whole
    assert ReplyGate(check_no_nine).settle("Fine. All done.", "length") == "Fine. All done."


def test_a_streamed_reply_call_records_its_first_token_and_first_shown_text(pack, session):
    events, turn = streamed_turn(pack, session("U0214"), "Sorry for the wait! I've added a 5 CNY coupon.")
    call = turn.steps[-1].llm_calls[0]
    assert call.valid and 0 <= call.first_token_s <= call.first_shown_s
