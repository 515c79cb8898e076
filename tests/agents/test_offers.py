"""A remedy the customer demands and the rules refuse: the allowed one is offered, and done
only once the customer accepts (wow_ray/agents/offers.py). Through the in-process agents with
no model, and through the scripted customer against them."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import ValidationError

from tests.agents.conftest import talk
from wow_ray.agents.claims import claims_in
from wow_ray.agents.offers import DemandReader, consent
from wow_ray.evaluation import ScriptedCustomer, evaluate_task, local_target
from wow_ray.evaluation.customer import plan_for
from wow_ray.scenario.spec import ToolSpec

LATE_45 = "My order O10185 was 45 minutes late. I want a full refund."  # U0078, 45 min late


def writes(turns):
    return [(c.name, c.arguments) for t in turns for c in t.tool_calls if c.executed and c.kind == "write"]


def test_a_refused_demand_is_offered_and_done_only_once_accepted_no_model(no_model_master, session):
    state, turns = talk(no_model_master, session("U0078"), LATE_45)
    assert writes(turns) == [], "nothing is done before the customer answers"
    assert "60 or more minutes late" in turns[0].reply  # the rule's reason for the refusal
    assert "10.2 CNY" in turns[0].reply and turns[0].reply.endswith("?")
    assert claims_in(turns[0].reply) == set(), "an offer never says it was done"
    assert state.active.offer.call.name == "refund_partial" and not state.active.resolved
    state, more = talk(no_model_master, state, "Yes, please do that.")
    assert writes(more) == [("refund_partial", {"order_id": "O10185", "amount": 10.2,
                                                "reason": "late_delivery"})]
    assert "10.2" in more[0].reply and state.active.offer is None and state.active.resolved
    assert more[0].steps[0].output["consent"] is True and not more[0].steps[0].llm_calls


def test_a_declined_offer_leaves_the_backend_untouched_no_model(no_model_master, session):
    state, turns = talk(no_model_master, session("U0078"), LATE_45,
                        "That is not good enough. I want a full refund.", "No, thank you.")
    assert writes(turns) == []
    assert "60 or more minutes late" in turns[1].reply and not turns[1].reply.endswith("me to do that?")
    assert state.active.offer is None and state.active.demand is None


def test_a_demand_the_rules_allow_is_done_at_once_no_model(no_model_master, session):
    state, turns = talk(no_model_master, session("U0078"), "My order O10185 was 45 minutes late. "
                        "I want 5 CNY back.")
    assert writes(turns) == [("refund_partial", {"order_id": "O10185", "amount": 5.0,
                                                 "reason": "late_delivery"})]
    assert state.active.offer is None


def test_writes_before_the_choice_are_not_repeated_when_the_offer_is_accepted_no_model(
        no_model_master, session):
    state, turns = talk(no_model_master, session("U0155"), "Seoul Kitchen overcharged me on order "
                        "O10276 and I want a 15 CNY coupon for the trouble.", "Yes, please.")
    assert [w[0] for w in writes(turns)] == ["create_ticket", "issue_coupon"]
    assert writes(turns)[1][1]["amount"] == 5


def test_demands_are_read_in_the_packs_words(pack):
    reader = DemandReader(pack)
    late = reader.tools_for("late_delivery")
    assert reader.read("it was late and I want 40 CNY back", late).model_dump() == \
        {"name": "refund_partial", "arguments": {"amount": 40.0}}
    assert reader.read("last time I got a 10 CNY coupon, same now", late).name == "issue_coupon"
    assert reader.read("I'd like a full refund, or a 5 CNY coupon", late).name == "refund_full"
    assert reader.read("where is my refund?", late) is None
    assert reader.read("I want a full refund", reader.tools_for("change_address")) is None


def test_yes_and_no_to_an_offer():
    assert consent("Yes, please do that.") is True
    assert consent("ok fine") is True
    assert consent("That is not good enough. I want a full refund.") is False
    assert consent("No, thank you.") is False
    assert consent("Here is the photo.") is None


def test_an_asked_for_placeholder_must_be_a_numeric_parameter():
    spec = {"name": "refund_partial", "kind": "write", "description": "d",
            "parameters": {"type": "object", "properties": {"order_id": {"type": "string"},
                                                            "amount": {"type": "number"}}}}
    assert ToolSpec.model_validate({**spec, "asked_for": ["{amount} back"]}).asked_for
    with pytest.raises(ValidationError, match=r"refund_partial.*\{order_id\}.*not a numeric"):
        ToolSpec.model_validate({**spec, "asked_for": ["refund {order_id}"]})


def test_the_scripted_customer_asks_for_its_demand_and_answers_offers(pack):
    task = next(t for t in pack.tasks if t.id == "fd-030")  # full refund, nothing else
    assert "I want a full refund of the order." in plan_for(task, pack).opening
    customer = ScriptedCustomer(task, pack)
    asyncio.run(customer.opening())
    offer = "I can't do that. What I can do instead is a refund of 39 CNY. Would you like me to do that?"
    assert asyncio.run(customer.react(offer, "active")).text.startswith("That is not good enough.")
    assert asyncio.run(customer.react(offer, "active")).text == "No, thank you."
    accepting = ScriptedCustomer(next(t for t in pack.tasks if t.id == "fd-031"), pack)
    asyncio.run(accepting.opening())
    assert asyncio.run(accepting.react(offer, "active")).text == "Yes, please do that."


@pytest.mark.parametrize("task_id", ["fd-018", "fd-019", "fd-030", "fd-031", "fd-094", "fd-095"])
def test_forbidden_demands_end_as_the_gold_says_with_the_scripted_customer(pack, task_id):
    task = next(t for t in pack.tasks if t.id == task_id)
    scores, item = asyncio.run(evaluate_task(pack, task, local_target(pack, None)))
    assert scores.success, (task_id, scores)


def test_an_offer_closed_with_anything_else_is_not_an_offer_and_is_completed(pack):
    from wow_ray.agents.messages import RespondRequest
    from wow_ray.agents.response import OFFER_QUESTION, ResponseAgent, asks_about_offer

    # What a trained candidate wrote (fd-019): the customer read it as the end of the talk.
    written = ("I understand, and I'm sorry. Full refunds are for orders 60 or more minutes late; "
               "yours was 45 minutes late. What I can do instead is a refund of 10.5 CNY for order "
               "O10186. Is there anything else I can help with?")
    assert not asks_about_offer(written)
    assert asks_about_offer("What I can do instead is a 5 CNY coupon. Shall I go ahead with that?")
    agent = ResponseAgent(pack, None)
    req = RespondRequest(session_id="s", kind="offer", message="I want a full refund.",
                         facts=["Full refunds are for orders 60 or more minutes late; yours was 45 "
                                "minutes late.",
                                "What I can do instead is a refund of 10.5 CNY for order O10186."])
    with pytest.raises(Exception, match="not whether there is anything else"):
        agent.validate(written, req)
    # Streamed, the offer is shown up to its "anything else", which is never shown; the
    # offer's question follows it.
    from wow_ray.agents.reply_gate import ReplyGate

    gate = ReplyGate(lambda prefix: agent.check_prefix(prefix, req), release=lambda piece: None)
    for word in written.split(" "):
        gate.feed(word + " ")
    gate.close("stop")
    assert gate.shown.endswith("for order O10186.")
    assert agent.complete(gate.shown, req, None) == OFFER_QUESTION


def test_a_question_for_what_is_missing_closed_with_anything_else_is_completed_with_the_question(pack):
    from wow_ray.agents.messages import RespondRequest
    from wow_ray.agents.reply_gate import ReplyGate
    from wow_ray.agents.response import ResponseAgent

    # What two full loops' candidates wrote on fd-152 (test): the customer, asked nothing but
    # "anything else?", moved on and the invoice was never issued.
    written = ("I'm sorry about that. Invoice title: a person or a company. "
               "Is there anything else I can help with?")
    agent = ResponseAgent(pack, None)
    req = RespondRequest(session_id="s", kind="clarify", message="I need an invoice for order O10336.",
                         ask_for=["title"])
    with pytest.raises(Exception, match="not whether there is anything else"):
        agent.validate(written, req)
    gate = ReplyGate(lambda prefix: agent.check_prefix(prefix, req), release=lambda piece: None)
    assert gate.settle(written, "stop") == "I'm sorry about that. Invoice title: a person or a company."
    added = agent.complete(gate.shown, req, agent_input(agent, req))
    assert added.endswith("?") and "anything else" not in added


def agent_input(agent, req):
    from wow_ray.agents.prompt_inputs import response_input

    return response_input(agent.pack, req, agent.brand, agent.tone)
