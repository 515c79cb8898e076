"""Tools as agents use them: schemas, validated arguments, errors as observations, checks."""

from __future__ import annotations

import json

from wow_ray.scenario import DialogueState, ToolCall


def me(food, order_id: str, **kw) -> DialogueState:
    user = food.new_backend().get("orders", order_id)["user_id"]
    return DialogueState(user_id=user, identity_verified=True, **kw)


def test_openai_schemas(food):
    schemas = {s["function"]["name"]: s for s in food.tools.openai_schemas()}
    assert len(schemas) == 16
    refund = schemas["refund_partial"]["function"]
    assert refund["parameters"]["required"] == ["order_id", "amount", "reason"]
    assert refund["parameters"]["properties"]["reason"]["enum"][0] == "late_delivery"
    assert {s["function"]["name"] for s in food.tools.openai_schemas("read")} == {
        "get_order", "get_user", "list_orders", "list_coupons", "get_promotion"}
    json.dumps(schemas)  # plain JSON


def test_arguments_are_validated(food):
    env = food.new_environment()
    bad = env.call("get_order", {"order_id": 10001})
    assert not bad.ok and "order_id" in bad.error
    extra = env.call("get_order", {"order_id": "O10001", "verbose": True})
    assert not extra.ok and "verbose" in extra.error
    enum = env.call("create_ticket", {"user_id": "U0001", "category": "angry", "priority": "normal"}, enforce=False)
    assert not enum.ok and "category" in enum.error
    unknown = env.call("launch_rocket", {})
    assert not unknown.ok and "unknown tool" in unknown.error


def test_tool_errors_become_observations_and_roll_back(food, monkeypatch):
    env = food.new_environment()
    missing = env.call("get_order", {"order_id": "O99999"})
    assert not missing.ok and missing.error == "order 'O99999' not found"
    assert json.loads(missing.observation()) == {"error": "order 'O99999' not found"}
    before = env.state_hash()
    # issue_coupon inserts the coupon, then fails on an order of another user: nothing stays.
    theirs = next(o["order_id"] for o in env.backend.find("orders") if o["user_id"] != "U0001")
    result = env.call("issue_coupon", {"user_id": "U0001", "amount": 5, "reason": "goodwill", "order_id": theirs}, enforce=False)
    assert not result.ok and "does not belong" in result.error
    assert env.state_hash() == before


def test_unexpected_exception_is_an_observation(food, monkeypatch):
    env = food.new_environment()
    tool = env.tools._tools["get_user"]
    monkeypatch.setattr(tool, "fn", lambda db, user_id: 1 / 0)
    result = env.call("get_user", {"user_id": "U0001"})
    assert not result.ok and "ZeroDivisionError" in result.error


def test_write_is_checked_and_recorded(food):
    env = food.new_environment()
    order = next(t for t in food.tasks if t.id == "fd-006").situation.requests[0].slots["order_id"]  # 30 min late
    state = me(food, order)
    denied = env.call("refund_full", {"order_id": order, "reason": "late_delivery"}, state)
    assert not denied.ok and denied.decision.rule_ids == ("FD-LATE-006",)
    assert "30 minutes late" in denied.error
    ok = env.call("refund_partial", {"order_id": order, "amount": 7.5, "reason": "late_delivery"}, state)
    assert ok.ok and ok.content["amount"] == 7.5
    assert state.tools_called == ["refund_partial"] and state.compensation_total == 7.5 and state.claims_made == 1
    again = env.check(ToolCall(name="refund_partial", arguments={"order_id": order, "amount": 1, "reason": "late_delivery"}), state)
    assert again.allowed  # 7.5 + 1 is still within 30% of the total


def test_invalid_arguments_are_denied_by_check(food):
    decision = food.new_environment().check(ToolCall(name="refund_partial", arguments={"order_id": "O10001"}), DialogueState())
    assert not decision.allowed and decision.rule_ids == ("engine.invalid_arguments",)


def test_handover_ends_the_dialogue(food):
    env = food.new_environment()
    state = DialogueState(user_id="U0001", identity_verified=True)
    assert env.call("transfer_to_human", {"user_id": "U0001", "reason": "customer_request"}, state).ok
    assert state.ended
    assert not env.call("get_user", {"user_id": "U0001"}, state).ok


def test_kb_search_and_intent_schema(food):
    [(top, score)] = food.kb.search("how long does my refund take to arrive on my card", k=1)
    assert top.id == "refunds-timeline" and score > 0
    assert food.kb.search("fapiao company tax id")[0][0].id == "invoices"
    assert food.kb.search("zzzz") == []
    schema = food.intent_schema()
    variants = schema["properties"]["requests"]["items"]["anyOf"]
    assert {v["properties"]["intent"]["const"] for v in variants} == {i.name for i in food.intents}


def test_reads_of_other_customers_are_refused(food):
    env = food.new_environment()
    order = env.backend.find("orders")[0]
    stranger = DialogueState(user_id="U0002" if order["user_id"] != "U0002" else "U0003", identity_verified=True)
    refused = env.call("get_order", {"order_id": order["order_id"]}, stranger)
    assert not refused.ok and refused.decision.rule_ids == ("FD-GEN-002",)
    assert env.call("get_user", {"user_id": order["user_id"]}, stranger).decision.rule_ids == ("FD-GEN-003",)
    owner = DialogueState(user_id=order["user_id"], identity_verified=True)
    assert env.call("get_order", {"order_id": order["order_id"]}, owner).ok


def test_unknown_tool_check(food):
    decision = food.new_environment().check(ToolCall(name="drop_tables"), DialogueState())
    assert not decision.allowed and decision.rule_ids == ("engine.unknown_tool",)


def test_an_enforced_call_is_one_gate_verdict_then_a_run(food):
    env = food.new_environment()
    state = DialogueState(user_id="U0214", identity_verified=True)
    coupon = ToolCall(name="issue_coupon", arguments={"user_id": "U0214", "amount": 5,
                                                      "reason": "late_delivery", "order_id": "O10337"})
    verdict = env.gate(coupon, state)
    assert verdict.decision.allowed and verdict.invalid is None and verdict.call.arguments["amount"] == 5.0
    result = env.run(verdict, state)
    assert result.ok and result.decision is verdict.decision and state.tools_called == ["issue_coupon"]
    bad = env.gate(ToolCall(name="issue_coupon", arguments={"user_id": "U0214"}), state)
    assert bad.decision.rule_ids == ("engine.invalid_arguments",) and "amount" in bad.invalid
    refused = env.run(bad, state)
    assert not refused.ok and refused.error == bad.invalid and state.tools_called == ["issue_coupon"]
