"""Reply hygiene: a reply claims only what was done, and never recites its instructions."""

from __future__ import annotations

import pytest

from tests.agents.conftest import talk
from wow_ray.agents.claims import Recital, claims_in, unsupported_claims
from wow_ray.agents.local import local_master
from wow_ray.llm.chat import ScriptedChatClient


@pytest.mark.parametrize(("text", "kinds"), [
    ("The customer is refunded.", {"refund"}),
    ("I've refunded 37 CNY for order O10163.", {"refund"}),
    ("Your refund of 37 CNY has been processed.", {"refund"}),
    ("I've added a 5 CNY coupon (CP00012) to your account.", {"coupon"}),
    ("Your coupon was reissued as CP00020.", {"coupon"}),
    ("Order O10158 is cancelled and 42 CNY will be refunded.", {"cancellation"}),
    ("Order O10349 will now be delivered to 997 Dagu Road.", {"address_change"}),
    ("I've opened ticket T0042 for our team.", {"ticket"}),
    ("I have transferred you to a colleague.", {"ticket"}),
    # statements that claim nothing was done
    ("I'm sorry, this order can't be cancelled any more.", set()),
    ("Your order has not been refunded yet; refunds take 3 days.", set()),
    ("I can't issue a coupon for this order.", set()),
    ("Could you tell me the order number (like O12345)?", set()),
])
def test_claims_in_replies(text, kinds):
    assert claims_in(text) == kinds


def test_unsupported_claims_are_those_no_write_did():
    assert unsupported_claims("I've refunded you and added a coupon.", ["coupon"]) == ["refund"]
    assert unsupported_claims("I've refunded you.", ["refund", "cancellation"]) == []


def test_recital_finds_a_run_of_instruction_words():
    recital = Recital(["Use only the facts given and never promise anything else."])
    assert recital.recited("Sure! I use only the facts given and never promise more.") == \
        "use only the facts given and"
    assert recital.recited("Here are the facts: your coupon is ready.") is None


def test_a_reply_claiming_an_unexecuted_refund_is_replaced_scripted_model(pack, session):
    """The attack's reply: a refund claimed while the rules granted only a coupon."""
    client = ScriptedChatClient({"response": ["The customer is refunded 5 CNY."]})
    state, turns = talk(local_master(pack, client), session("U0214"),
                        "My order O10337 arrived 20 minutes late")
    step = turns[0].steps[-1]
    assert [c.name for c in turns[0].tool_calls if c.executed and c.kind == "write"] == ["issue_coupon"]
    assert step.fallback and "refund" in step.llm_calls[0].error
    assert "refunded" not in turns[0].reply and "5 CNY" in turns[0].reply


def test_a_reply_claiming_what_was_done_is_kept_scripted_model(pack, session):
    client = ScriptedChatClient({"response": ["Sorry for the wait! I've added a 5 CNY coupon."]})
    state, turns = talk(local_master(pack, client), session("U0214"),
                        "My order O10337 arrived 20 minutes late")
    assert turns[0].reply == "Sorry for the wait! I've added a 5 CNY coupon."
    assert not turns[0].steps[-1].fallback


def test_a_reply_reciting_its_instructions_is_replaced_scripted_model(pack, session):
    client = ScriptedChatClient({"response": [
        "Write the reply to the customer in at most three short sentences. 5 CNY coupon added."]})
    state, turns = talk(local_master(pack, client), session("U0214"),
                        "My order O10337 arrived 20 minutes late")
    step = turns[0].steps[-1]
    assert step.fallback and "recites its instructions" in step.llm_calls[0].error
    assert "three short sentences" not in turns[0].reply
