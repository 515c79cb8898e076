"""Whole dialogues through the in-process agents, with no model or a scripted one.

These test the control flow (routing, slots, the gate, hand-overs, fallbacks) in
milliseconds; the same dialogues against the real model on vLLM are in
tests/serving/test_dialogue_app.py.
"""

from __future__ import annotations

import pytest

from tests.agents.conftest import run, talk
from wow_ray.agents.base import InvalidOutput
from wow_ray.agents.events import DeltaEvent
from wow_ray.agents.local import local_master, new_session
from wow_ray.agents.messages import RespondRequest
from wow_ray.agents.response import ResponseAgent
from wow_ray.llm.chat import ScriptedChatClient
from wow_ray.scenario import DialogueState


def writes(turns):
    return [(c.name, c.arguments) for t in turns for c in t.tool_calls if c.executed and c.kind == "write"]


def test_late_delivery_gets_the_coupon_the_rules_allow_no_model(no_model_master, session):
    # O10337 (U0214) arrived about 20 minutes late: a 5 CNY coupon (FD-LATE-003).
    state, turns = talk(no_model_master, session("U0214"), "My order O10337 arrived 20 minutes late")
    assert writes(turns) == [("issue_coupon", {"user_id": "U0214", "amount": 5, "reason": "late_delivery",
                                               "order_id": "O10337"})]
    assert "5 CNY" in turns[0].reply
    coupon = next(c for c in turns[0].tool_calls if c.name == "issue_coupon")
    assert coupon.decision.allowed and coupon.decision.rule_ids == ["FD-LATE-003"]
    assert state.active.resolved and state.status == "active"


def test_missing_item_described_by_name_is_resolved_from_the_order_no_model(no_model_master, session):
    state, turns = talk(no_model_master, session("U0083"),
                        "The Korean Fried Chicken was missing from my Seoul Kitchen order")
    assert writes(turns) == [("refund_partial", {"order_id": "O10190", "amount": 58.0,
                                                 "reason": "missing_item", "item_id": "I1019001"})]
    assert "58" in turns[0].reply


def test_missing_order_id_is_asked_for_then_used_no_model(no_model_master, session):
    # U0061 has several orders, so "my order" is ambiguous: the agent asks, then acts.
    state, turns = talk(no_model_master, session("U0061"), "I need an invoice please, company LanternCorp")
    assert state.active.intent == "invoice" and "order_id" in state.active.missing
    assert "?" in turns[0].reply and "order" in turns[0].reply.lower()
    state, more = talk(no_model_master, state, "It is O10158")
    assert state.active.slots["order_id"] == "O10158"


def test_a_denial_is_explained_in_the_policys_words_no_model(no_model_master, session, pack):
    state, turns = talk(no_model_master, session("U0001"), "please cancel order O10001")
    cancel = next(c for c in turns[0].tool_calls if c.name == "cancel_order")
    assert not cancel.executed and not cancel.decision.allowed
    assert cancel.decision.customer_reason in turns[0].reply
    assert writes(turns) == []


def test_food_quality_needs_a_photo_sent_through_the_api_not_claimed_in_text(no_model_master, session):
    state, turns = talk(no_model_master, session("U0097"),
                        "My order O10216 arrived completely cold. I attached a photo.")
    assert writes(turns) == [], "a photo claimed in text is not evidence"
    assert "photo" in turns[0].reply.lower()
    state, more = talk(no_model_master, state, "Here is the photo", attachments=["photo"])
    assert "photo" in state.dialogue.evidence
    assert [w[0] for w in writes(more)] == ["refund_partial"]


def test_asking_for_a_human_hands_over_with_a_ticket_and_summary_no_model(no_model_master, session):
    state, turns = talk(no_model_master, session("U0001"), "I want to talk to a real person")
    assert state.status == "handed_off" and state.ticket_id
    assert turns[0].handoff.ticket_id == state.ticket_id
    assert turns[0].handoff.reason == "customer_request"
    assert "U0001" in turns[0].handoff.summary
    assert state.ticket_id in turns[0].reply
    state, after = talk(no_model_master, state, "hello?")
    assert after[0].steps == [] and "colleague" in after[0].reply


def test_food_safety_rule_forces_a_handover_before_anything_else_no_model(no_model_master, session):
    state, turns = talk(no_model_master, session("U0001"), "There was glass in my food, order O10001!")
    assert turns[0].moves == ["handoff"]
    assert writes(turns) == [("transfer_to_human", {"user_id": "U0001", "reason": "food_safety"})]
    assert state.status == "handed_off"


def test_unverified_customer_cannot_change_anything_no_model(no_model_master, session):
    state, turns = talk(no_model_master, session("U0214", verified=False),
                        "My order O10337 arrived 20 minutes late")
    assert writes(turns) == []
    assert "sign in" in turns[0].reply.lower()


def test_goodbye_ends_the_session_no_model(no_model_master, session):
    state, turns = talk(no_model_master, session(), "thanks, bye")
    assert state.status == "ended" and turns[0].moves == ["end"]


def test_the_trace_names_every_agent_and_the_rule_decisions_no_model(no_model_master, session):
    _, turns = talk(no_model_master, session("U0214"), "My order O10337 arrived 20 minutes late")
    agents = [s.agent for s in turns[0].steps]
    assert agents == ["understanding", "policy", "solution", "response"]
    decided = [c for c in turns[0].tool_calls if c.decision is not None]
    assert decided and all(c.decision.rules_version for c in decided)
    assert turns[0].rules_version and turns[0].dialogue["tools_called"] == ["get_order", "issue_coupon"]


# -- a scripted model: the model's answers are used when valid, ignored when not ---------


def test_model_intent_and_slots_are_used_when_valid_scripted_model(pack, session):
    client = ScriptedChatClient({
        "understanding": [{"intent": "change_address", "order_id": "O10349",
                           "new_address": "997 Dagu Road, Pudong District"}],
        "response": ["Done: order O10349 will go to 997 Dagu Road."],
    })
    master = local_master(pack, client)
    state, turns = talk(master, session("U0226"),
                        "Please deliver O10349 to 997 Dagu Road, Pudong District instead, I moved")
    assert turns[0].intent == "change_address"
    assert writes(turns) == [("update_address", {"order_id": "O10349",
                                                 "new_address": "997 Dagu Road, Pudong District"})]
    assert turns[0].reply == "Done: order O10349 will go to 997 Dagu Road."


def test_invalid_model_output_is_retried_then_falls_back_never_crashes_scripted_model(pack, session):
    client = ScriptedChatClient({
        "understanding": ["this is not json", {"intent": "wizardry"}],
        "response": ["I refunded you 999 CNY!"],  # ungrounded amount: rejected
        "master": [{"next": "fly"}],
    })
    master = local_master(pack, client)
    state, turns = talk(master, session("U0214"), "My order was late, I want money back")
    step = turns[0].steps[0]
    assert len(client.routed("understanding")) == 2, "one retry, then the fallback"
    assert [c.valid for c in step.llm_calls] == [False, False] and step.fallback
    assert turns[0].intent == "late_delivery", "the lexical fallback decided"
    assert "999" not in turns[0].reply
    assert turns[0].steps[-1].fallback


def test_invented_ids_from_the_model_are_dropped_scripted_model(pack, session):
    client = ScriptedChatClient({"understanding": [{"intent": "cancel_order", "order_id": "O10001",
                                                    "reason": "changed_mind"}],
                                 "response": ["ok"]})
    master = local_master(pack, client)
    state, turns = talk(master, session("U0226"), "cancel my order please")
    assert turns[0].steps[0].output["slots"].get("order_id") != "O10001"
    assert all(c.arguments.get("order_id") != "O10001" for c in turns[0].tool_calls)


def test_an_unreachable_model_falls_back_scripted_model(pack, session):
    def down(messages, options):
        raise ConnectionError("LLM down")

    client = ScriptedChatClient({"understanding": down, "response": down, "master": down})
    master = local_master(pack, client)
    state, turns = talk(master, session("U0214"), "My order O10337 arrived 20 minutes late", "thanks bye")
    assert writes(turns) == [("issue_coupon", {"user_id": "U0214", "amount": 5,
                                               "reason": "late_delivery", "order_id": "O10337"})]
    assert state.status == "ended"
    assert all("ConnectionError" in c.error for t in turns for s in t.steps for c in s.llm_calls)


@pytest.mark.parametrize("stream", [True, False])
def test_streamed_and_whole_turns_give_the_same_reply_scripted_model(pack, session, stream):
    client = ScriptedChatClient({"response": ["I've added a 5 CNY coupon to your account."]})
    master = local_master(pack, client)

    async def go():
        events = [e async for e in master.events(session("U0214"), "My order O10337 arrived 20 minutes late",
                                                 stream=stream)]
        return events

    events = run(go())
    final = events[-1].outcome.turn
    deltas = "".join(e.text for e in events if isinstance(e, DeltaEvent))
    assert final.reply == "I've added a 5 CNY coupon to your account."
    assert deltas == (final.reply if stream else "")
    assert {e.type for e in events} >= {"step", "final"}


def test_state_roundtrips_through_json_between_turns(no_model_master, session):
    from wow_ray.agents.messages import SessionState

    state, _ = talk(no_model_master, session("U0214"), "My order O10337 arrived 20 minutes late")
    again = SessionState.model_validate_json(state.model_dump_json())
    assert again == state
    assert isinstance(again.dialogue, DialogueState)


def test_the_same_agents_serve_another_pack_no_model():
    from wow_ray.scenario import load_pack

    pack = load_pack("hotel_booking")
    master = local_master(pack, None)
    state = new_session("hotel_booking", user_id="G001", identity_verified=True)
    state, turns = talk(master, state, "Please cancel booking HB2041", "sorry, it is HB2001")
    assert "not found" in turns[0].reply and "?" in turns[0].reply, "a wrong id is asked for again"
    assert writes(turns) == [("cancel_booking", {"booking_id": "HB2001"})]
    assert "360" in turns[1].reply
    state, turns = talk(master, new_session("hotel_booking", user_id="G001", identity_verified=True),
                        "Let me speak to the front desk")
    assert state.status == "handed_off" and "can't do that" not in turns[0].reply


def test_a_clarifying_reply_may_repeat_the_example_ids_of_its_ask_labels_scripted_model(pack, session):
    """The validator accepts what the prompt itself suggests: 'the order number (like O12345)'."""
    def echo_the_ask(messages, options):
        asks = messages[-1]["content"].split("Ask for: ")[1].split("\n")[0]
        return f"Sorry for the trouble! Could you tell me {asks}?"

    client = ScriptedChatClient({"response": echo_the_ask})
    master = local_master(pack, client)
    state, turns = talk(master, session("U0061"), "I need an invoice please, company LanternCorp")
    label = ResponseAgent(pack, None).ask_label("order_id")
    assert "(like O" in label, label
    reply_step = turns[0].steps[-1]
    assert label in turns[0].reply and not reply_step.fallback, reply_step.llm_calls
    # The example id is grounded only as an ask label: the same id in a 'done' reply is not.
    req = RespondRequest(session_id="s", kind="resolve", message="hi", facts=["Invoice sent."])
    with pytest.raises(InvalidOutput):
        ResponseAgent(pack, None).validate(f"Invoice sent for {label.split('like ')[1][:-1]}.", req)


def test_a_hand_over_the_rules_require_names_the_order_the_customer_gave_no_model(
        no_model_master, session):
    # A food-safety flag makes the rules require a hand-over at once (no solve first): its
    # arguments are built from the dialogue's slots, which must already hold the order.
    state, turns = talk(no_model_master, session("U0104"),
                        "My order O10226 arrived cold and there was a piece of plastic in the food; "
                        "I feel sick.")
    assert state.status == "handed_off" and turns[0].moves == ["handoff"]
    assert state.actions[-1].model_dump() == {"name": "transfer_to_human", "arguments": {
        "user_id": "U0104", "reason": "food_safety", "order_id": "O10226"}}
