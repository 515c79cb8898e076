"""The built-in food_delivery pack: what the issue asks of it, and its rules on real records."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest

from wow_ray.scenario import DialogueState, ToolCall

INTENTS = {"late_delivery", "missing_item", "wrong_item", "food_quality", "cancel_order", "refund_status", "change_address",
           "invoice", "coupon_promotion", "rider_complaint", "merchant_complaint", "payment_account", "ask_for_human"}
TOOLS = {"get_order", "get_user", "list_orders", "refund_full", "refund_partial", "issue_coupon", "cancel_order",
         "update_address", "create_ticket", "transfer_to_human", "contact_party"}


def test_contents(food):
    assert {i.name for i in food.intents} >= INTENTS
    assert all(len(i.examples) >= 1 for i in food.intents)
    assert set(food.tools.names) >= TOOLS
    assert len(food.rules.rules.by_id) >= 25
    assert sum(len(rows) for rows in food.fixtures.values()) >= 300
    assert all(len(food.fixtures[t]) >= 20 for t in ("users", "orders", "order_items", "riders", "merchants"))
    assert len(food.kb.articles) >= 10 and "Late deliveries" in food.policy


def test_rules_have_real_conditions(food):
    rules = food.rules.rules.by_id.values()
    read = {path[0] + "." + path[1] for r in rules for path in r.fields if len(path) > 1}
    for field in ("order.minutes_late", "order.status", "args.amount", "user.tier", "user.claims_30d",
                  "dialogue.evidence", "order.minutes_since_delivery", "order.refunded_total", "dialogue.human_requests"):
        assert field in read, field
    assert {r.effect for r in rules} == {"allow", "forbid", "require"}
    assert any(r.effective_from for r in rules) and any(r.effective_until for r in rules)


def test_tasks_cover_the_issue(food):
    tasks = food.tasks
    assert len(tasks) >= 150
    splits = Counter(t.split for t in tasks)
    assert splits["train"] > splits["dev"] > 0 and splits["test"] > 0
    covered = {i for t in tasks for i in t.intents}
    assert covered >= INTENTS
    tags = Counter(tag for t in tasks for tag in t.tags)
    for tag in ("multi_intent", "edge_case", "forbidden_request", "injection", "hidden_injection", "boundary"):
        assert tags[tag] >= 5, tag
    for intent in INTENTS:  # every intent appears in training and held-out tasks
        assert any(intent in t.intents and t.split == "train" for t in tasks), intent


def _late_order(food, minutes: float, total: float = 50.0) -> tuple:
    env = food.new_environment()
    db = env.backend
    order = db.get("orders", "O10001")
    promised = food.now - timedelta(minutes=minutes + 30)
    db.update("orders", "O10001", status="delivered", promised_at=promised, delivered_at=promised + timedelta(minutes=minutes),
              total=total, subtotal=total)
    db.commit()
    state = DialogueState(user_id=order["user_id"], identity_verified=True)
    return env, state


@pytest.mark.parametrize(
    ("minutes", "tool", "amount", "allowed"),
    [(14.9, "issue_coupon", 5, False), (15, "issue_coupon", 5, True), (29.9, "refund_partial", 15, False),
     (30, "refund_partial", 15, True), (30, "refund_partial", 15.01, False), (59.9, "refund_full", None, False),
     (60, "refund_full", None, True)],
)
def test_lateness_boundaries(food, minutes, tool, amount, allowed):
    env, state = _late_order(food, minutes)
    args = {"order_id": "O10001", "reason": "late_delivery"}
    if tool == "issue_coupon":
        args |= {"user_id": state.user_id, "amount": amount}
    elif amount is not None:
        args |= {"amount": amount}
    assert env.check(ToolCall(name=tool, arguments=args), state).allowed is allowed


def test_identity_ownership_and_evidence(food):
    env, state = _late_order(food, 65)
    full = ToolCall(name="refund_full", arguments={"order_id": "O10001", "reason": "late_delivery"})
    assert env.check(full, state).allowed
    assert env.check(full, state.model_copy(update={"identity_verified": False})).rule_ids == ("FD-GEN-001",)
    assert env.check(full, state.model_copy(update={"user_id": "U0002"})).rule_ids == ("FD-GEN-002",)
    item = env.backend.find("order_items", order_id="O10001")[0]
    wrong = ToolCall(name="refund_partial", arguments={"order_id": "O10001", "amount": item["unit_price"], "reason": "wrong_item",
                                                       "item_id": item["item_id"]})
    assert env.check(wrong, state).rule_ids == ("FD-EVID-001",)
    assert env.check(wrong, state.model_copy(update={"evidence": ["photo"]})).allowed


def test_food_safety_obligation(food):
    env, state = _late_order(food, 65)
    state.flags.append("food_safety")
    state.slots["order_id"] = "O10001"
    [obligation] = env.obligations(state)
    assert obligation.rule_id == "FD-HUM-003" and obligation.arguments["reason"] == "food_safety"
    assert obligation.arguments["order_id"] == "O10001"
    blocked = env.check(ToolCall(name="refund_full", arguments={"order_id": "O10001", "reason": "late_delivery"}), state)
    assert (blocked.allowed, blocked.rule_ids) == (False, ("FD-HUM-003",))


def test_claims_limit_counts_the_last_30_days_only(food):
    env, state = _late_order(food, 40)
    db = env.backend
    user = state.user_id
    db.update("users", user, tier="regular")
    for n, days in enumerate([1, 2, 45]):
        db.insert("compensations", {"comp_id": f"CX{n}", "user_id": user, "order_id": "O10001", "item_id": None, "kind": "coupon",
                                    "amount": 1.0, "reason": "goodwill", "status": "completed", "created_at": food.now - timedelta(days=days)})
    db.commit()
    coupon = ToolCall(name="refund_partial", arguments={"order_id": "O10001", "amount": 10, "reason": "late_delivery"})
    base = db.aggregate("compensations", "count", None, {"user_id": user}, ("created_at", food.now - timedelta(days=30)))
    decision = env.check(coupon, state)
    assert decision.allowed is (base < 3), (base, decision)
