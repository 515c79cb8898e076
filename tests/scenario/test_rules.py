"""The rule engine: how a check decides, obligations, effective dates, and hot reload."""

from __future__ import annotations

import threading
from datetime import datetime

import pytest

from wow_ray.scenario import RulesError, ToolCall, load_pack

NOW = datetime(2025, 6, 1, 12, 0)


@pytest.fixture
def pack(shop):
    return load_pack(shop)


def ctx(status="pending", owner="C001", user="C001", hours=2.0, now=NOW, done=(), human=0, **args):
    return {
        "now": now,
        "args": args,
        "order": {"status": status, "customer_id": owner, "hours_since_placed": hours},
        "dialogue": {"user_id": user, "tools_called": list(done), "human_requests": human, "identity_verified": True},
    }


CANCEL = ToolCall(name="cancel_order", arguments={"order_id": "A1"})


def test_allow_forbid_and_default(pack):
    engine = pack.rules
    allowed = engine.check(CANCEL, ctx())
    assert (allowed.allowed, allowed.effect, allowed.rule_ids) == (True, "allow", ("CAN-001",))
    shipped = engine.check(CANCEL, ctx(status="shipped"))
    assert (shipped.allowed, shipped.rule_ids) == (False, ("CAN-002",))
    assert shipped.customer_reason == "Your order has already shipped, so it can no longer be cancelled."
    stale = engine.check(CANCEL, ctx(hours=30))  # pending but outside the window: no rule matches
    assert (stale.allowed, stale.effect, stale.rule_ids) == (False, "default", ())
    assert stale.customer_reason == "I'm sorry, I can't do that under our policy."
    read = engine.check(ToolCall(name="get_order", arguments={"order_id": "A1"}), ctx())
    assert read.allowed and read.effect == "default"
    unknown = engine.check(ToolCall(name="delete_everything"), ctx())
    assert (unknown.allowed, unknown.rule_ids) == (False, ("engine.unknown_tool",))


def test_higher_priority_wins_and_forbid_wins_ties(pack):
    engine = pack.rules
    assert engine.check(CANCEL, ctx(owner="C002")).rule_ids == ("GEN-OWN-001",)  # 100 beats allow at 50
    text = (pack.path / "rules.yaml").read_text().replace("priority: 100", "priority: 50")
    engine.load_text(text)
    decision = engine.check(CANCEL, ctx(owner="C002"))  # allow and forbid both at 50
    assert not decision.allowed and decision.rule_ids == ("GEN-OWN-001",)


def test_boundary_is_inclusive_as_written(pack):
    assert pack.rules.check(CANCEL, ctx(hours=24.0)).allowed
    assert not pack.rules.check(CANCEL, ctx(hours=24.01)).allowed


def test_effective_dates_use_the_context_clock(pack):
    text = (pack.path / "rules.yaml").read_text().replace(
        "    priority: 50\n    customer_reason: Your order is still pending",
        "    priority: 50\n    effective_from: 2025-06-02\n    effective_until: 2025-06-30\n    customer_reason: Your order is still pending")
    pack.rules.load_text(text)
    assert not pack.rules.check(CANCEL, ctx(now=datetime(2025, 6, 1, 23, 59))).allowed
    assert pack.rules.check(CANCEL, ctx(now=datetime(2025, 6, 2, 0, 0))).allowed
    assert pack.rules.check(CANCEL, ctx(now=datetime(2025, 6, 30, 23, 0))).allowed
    assert not pack.rules.check(CANCEL, ctx(now=datetime(2025, 7, 1, 0, 0))).allowed


def test_require_blocks_other_writes_until_done(pack):
    engine = pack.rules
    insisting = ctx(human=2)
    blocked = engine.check(CANCEL, insisting)
    assert (blocked.allowed, blocked.effect, blocked.rule_ids) == (False, "require", ("HUM-002",))
    assert blocked.customer_reason == "I'll connect you with a colleague right away."
    [obligation] = engine.obligations(insisting)
    assert obligation.as_call() == ToolCall(name="transfer_to_human", arguments={"customer_id": "C001", "reason": "customer_insists"})
    assert engine.check(obligation.as_call(), insisting).allowed
    assert engine.check(ToolCall(name="get_order", arguments={"order_id": "A1"}), insisting).allowed  # reads are fine
    after = ctx(human=2, done=["transfer_to_human"])
    assert engine.obligations(after) == [] and engine.check(CANCEL, after).allowed


def test_fail_closed_on_errors(pack):
    class Exploding(dict):
        def __getitem__(self, key):
            if key == "customer_id":
                raise RuntimeError("backend down")
            return super().__getitem__(key)

    context = ctx()
    context["order"] = Exploding(context["order"])
    decision = pack.rules.check(CANCEL, context)
    assert not decision.allowed and "GEN-OWN-001" in decision.rule_ids


def test_deterministic(pack):
    decisions = {pack.rules.check(CANCEL, ctx(hours=h)) for h in [3.0] * 50}
    assert len(decisions) == 1


def test_hot_reload_bad_text_keeps_rules_in_force(pack):
    engine = pack.rules
    before = engine.version
    good = (pack.path / "rules.yaml").read_text()
    bad = good.replace("- order.status == 'shipped'", "- order.statis == 'shipped'")
    with pytest.raises(RulesError) as info:
        engine.load_text(bad, "rules-v2.yaml")
    issue = info.value.issues[0]
    assert issue.file == "rules-v2.yaml" and issue.field == "rules[2].when[0]" and issue.line is not None
    assert engine.version == before
    assert not engine.check(CANCEL, ctx(status="shipped")).allowed  # old rules still answer


def test_hot_reload_from_data_and_file(pack, tmp_path):
    engine = pack.rules
    rules = {"version": "9", "rules": [{"id": "ALL", "title": "anything goes", "effect": "allow", "tools": ["@write"]}]}
    version = engine.load_data(rules)
    assert version.startswith("9@") and engine.check(CANCEL, ctx(status="shipped")).rule_ids == ("ALL",)
    with pytest.raises(RulesError) as info:
        engine.load_data({"rules": [{"id": "X", "title": "t", "effect": "permit", "tools": ["cancel_order"]}]})
    assert info.value.issues[0].file == "<user_config>" and info.value.issues[0].field == "rules[0].effect"
    assert engine.version == version
    path = tmp_path / "rules.yaml"
    path.write_text((pack.path / "rules.yaml").read_text())
    engine.load_file(path)
    assert not engine.reload_if_changed()
    path.write_text(path.read_text().replace("cancel_window_hours: 24", "cancel_window_hours: 48"))
    assert engine.reload_if_changed()
    assert engine.check(CANCEL, ctx(hours=30)).allowed
    path.write_text("rules: [")
    with pytest.raises(RulesError):
        engine.reload()
    assert engine.check(CANCEL, ctx(hours=30)).allowed


def test_checks_during_reloads_see_one_rule_set(pack):
    engine = pack.rules
    strict = (pack.path / "rules.yaml").read_text()
    lenient = strict.replace("cancel_window_hours: 24", "cancel_window_hours: 48")
    seen: set[tuple[bool, str]] = set()
    stop = threading.Event()

    def reload_forever():
        while not stop.is_set():
            engine.load_text(lenient)
            engine.load_text(strict)

    worker = threading.Thread(target=reload_forever)
    worker.start()
    try:
        for _ in range(3000):
            d = engine.check(CANCEL, ctx(hours=30))
            seen.add((d.allowed, d.rules_version.split("@")[1]))
    finally:
        stop.set()
        worker.join()
    # Every answer is consistent with the version that gave it.
    versions = {v for _, v in seen}
    assert len(seen) == len(versions)
