"""Replaying an action log: decisions, results, the state hash, and the diff against the start."""

from __future__ import annotations

from wow_ray.scenario import DialogueState, Replay, ToolCall, replay

CANCEL = ToolCall(name="cancel_order", arguments={"order_id": "O10228", "reason": "changed_mind"})
READ = ToolCall(name="get_order", arguments={"order_id": "O10228"})
OWNER = DialogueState(user_id="U0106", identity_verified=True)


def test_a_write_shows_up_in_the_diff_with_the_fields_it_changed(food):
    out = replay(food, OWNER, [READ, CANCEL])
    assert [s.decision.allowed for s in out.steps] == [True, True] and all(r.ok for r in out.results)
    assert out.diff["orders"]["changed"] == {"O10228": {"status": ["placed", "cancelled"],
                                                        "cancel_reason": [None, "changed_mind"]}}
    assert [r["order_id"] for r in out.diff["orders"]["added"]] == ["O10228"]
    assert [r["status"] for r in out.diff["orders"]["removed"]] == ["placed"]
    # The refund the tool made on the payment is in the diff though the call names no payment.
    assert out.diff["payments"]["changed"] == {"P00228": {"status": ["captured", "refunded"]}}
    assert out.state_hash != food.new_backend().state_hash()
    assert out.state.tools_called == ["get_order", "cancel_order"]


def test_a_new_row_is_added_and_nothing_is_changed(food):
    coupon = ToolCall(name="issue_coupon", arguments={"user_id": "U0214", "amount": 5,
                                                      "reason": "late_delivery", "order_id": "O10337"})
    out = replay(food, DialogueState(user_id="U0214", identity_verified=True), [coupon])
    assert out.all_allowed and set(out.diff) == {"coupons", "compensations"}  # the coupon, its record
    for table in out.diff.values():
        assert len(table["added"]) == 1 and table["removed"] == [] and table["changed"] == {}
    assert [(r["user_id"], r["value"]) for r in out.diff["coupons"]["added"]] == [("U0214", 5.0)]


def test_a_read_leaves_no_diff_and_the_starting_hash(food):
    out = replay(food, OWNER, [READ])
    assert out.diff == {} and out.state_hash == food.new_backend().state_hash()
    assert out.steps[0].result.content["order"]["order_id"] == "O10228"


def test_a_hidden_write_on_the_backend_shows_up(food):
    with Replay(food, OWNER) as rerun:
        rerun.run([READ])
        rerun.env.backend.update("users", "U0106", phone="000")  # no action in the log did this
        rerun.env.backend.commit()
        out = rerun.result()
    assert [s.call.name for s in out.steps] == ["get_order"]
    assert list(out.diff) == ["users"] and list(out.diff["users"]["changed"]["U0106"]) == ["phone"]
    assert out.state_hash != food.new_backend().state_hash()


def test_a_denied_action_is_still_replayed_and_its_decision_kept(food):
    stranger = DialogueState(user_id="U0001", identity_verified=True)
    out = replay(food, stranger, [CANCEL])
    assert not out.all_allowed and out.decisions[0].rule_ids  # the rules say no now
    assert out.results[0].ok and "orders" in out.diff  # the log is what ran, and it is replayed


def test_unchecked_replays_record_no_decisions_and_equal_logs_equal_hashes(food):
    checked = replay(food, OWNER, [READ, CANCEL], diff=False)
    unchecked = replay(food, None, [READ, CANCEL], check=False)
    assert checked.diff is None and unchecked.decisions == [None, None]
    assert checked.state_hash == unchecked.state_hash
    assert unchecked.to_dict()["changes"] == unchecked.diff
    assert [a["name"] for a in unchecked.to_dict()["actions"]] == ["get_order", "cancel_order"]


def test_a_kept_environment_is_the_replayed_backend(food):
    env = Replay(food, check=False).run([CANCEL]).keep()
    try:
        assert env.backend.get("orders", "O10228")["status"] == "cancelled"
        assert env.state_hash() == replay(food, None, [CANCEL], check=False, diff=False).state_hash
    finally:
        env.close()
