"""The pack validator's ownership proof (wow_ray/scenario/ownership.py)."""

from __future__ import annotations

import pytest

from wow_ray.scenario import DialogueState, PackValidationError, ToolCall, load_pack


def _ownership_issues(path):
    with pytest.raises(PackValidationError) as info:
        load_pack(path)
    return [i for i in info.value.issues if "ownership" in i.message]


def test_uncovered_write_tool_fails_the_pack(shop, edit):
    edit("rules.yaml", "    tools: [cancel_order]\n    when:\n      - order.customer_id != dialogue.user_id",
         "    tools: [get_order]\n    when:\n      - order.customer_id != dialogue.user_id")
    [issue] = _ownership_issues(shop)
    assert issue.file == "rules.yaml"
    assert "'cancel_order' takes 'order_id'" in issue.message and "order.customer_id" in issue.message


def test_ownership_rule_with_extra_conditions_does_not_count(shop, edit):
    edit("rules.yaml", "      - order.customer_id != dialogue.user_id\n",
         "      - order.customer_id != dialogue.user_id\n      - order.status == 'pending'\n")
    assert "'cancel_order'" in _ownership_issues(shop)[0].message


def test_ownership_rule_outranked_by_an_allow_does_not_count(shop, edit):
    edit("rules.yaml", "      - order.hours_since_placed <= params.cancel_window_hours\n    priority: 50",
         "      - order.hours_since_placed <= params.cancel_window_hours\n    priority: 150")
    assert "'cancel_order'" in _ownership_issues(shop)[0].message


def test_a_declared_exemption_passes(shop, edit):
    edit("rules.yaml", "    tools: [cancel_order]\n    when:\n      - order.customer_id != dialogue.user_id",
         "    tools: [get_order]\n    when:\n      - order.customer_id != dialogue.user_id")
    edit("tools.yaml", "  - name: cancel_order\n    kind: write\n",
         "  - name: cancel_order\n    kind: write\n    ownership_exempt: the backend checks the owner itself\n")
    assert load_pack(shop).name == "shop"


def test_owner_column_must_exist(shop, edit):
    edit("pack.yaml", "    owner: customer_id\n    table: orders", "    owner: buyer\n    table: orders")
    with pytest.raises(PackValidationError) as info:
        load_pack(shop)
    assert any(i.field == "entities.order.owner" and "no column 'buyer'" in i.message
               for i in info.value.issues)


def test_coupon_on_another_customers_late_order_is_refused(food):
    """The hole an attack found: FD-LATE-003 grants a coupon for a late order, and the ownership
    rule did not cover coupons, so a caller could collect on a stranger's late order."""
    env = food.new_environment()
    try:
        stranger = env.backend.get("orders", "O10337")["user_id"]
        caller = next(r["user_id"] for r in env.backend.dump()["users"] if r["user_id"] != stranger)
        coupon = ToolCall(name="issue_coupon", arguments={
            "user_id": caller, "amount": 5, "reason": "late_delivery", "order_id": "O10337"})
        decision = env.check(coupon, DialogueState(user_id=caller, identity_verified=True))
        assert not decision.allowed and decision.rule_ids == ("FD-GEN-002",)
        own = coupon.model_copy(update={"arguments": {**coupon.arguments, "user_id": stranger}})
        assert env.check(own, DialogueState(user_id=stranger, identity_verified=True)).allowed
    finally:
        env.close()
