"""The policy agent's gate, session backends rebuilt from logs, and hot-reloaded rules."""

from __future__ import annotations

from collections import Counter

import yaml

from tests.agents.conftest import run
from wow_ray.agents.environment import SessionEnvironments
from wow_ray.agents.messages import ExecuteRequest
from wow_ray.agents.policy import PolicyAgent, policy_sections
from wow_ray.scenario import DialogueState, ToolCall, load_pack

COUPON = ToolCall(name="issue_coupon", arguments={"user_id": "U0214", "amount": 5,
                                                  "reason": "late_delivery", "order_id": "O10337"})


def execute(agent, call, actions=(), dry_run=False, user="U0214"):
    return run(agent.execute(ExecuteRequest(
        session_id="s1", dialogue=DialogueState(user_id=user, identity_verified=True),
        actions=list(actions), call=call, proposed_by="test", dry_run=dry_run)))


def test_an_allowed_write_runs_and_a_denied_one_does_not():
    agent = PolicyAgent(load_pack("food_delivery"))
    ok = execute(agent, COUPON)
    assert ok.record.executed and ok.action is not None and ok.record.decision.rule_ids == ["FD-LATE-003"]
    assert ok.dialogue.tools_called == ["issue_coupon"] and ok.dialogue.compensation_total == 5
    big = ToolCall(name="issue_coupon", arguments={**COUPON.arguments, "amount": 50})
    no = execute(agent, big, [ok.action])
    assert not no.record.executed and no.action is None and not no.record.decision.allowed
    assert no.record.error == no.record.decision.customer_reason


def counting(monkeypatch, counts, obj, name, label):
    """Count calls of ``obj.name`` under ``label`` (the original still runs)."""
    original = getattr(obj, name)

    def counted(*args, **kwargs):
        counts[label] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(obj, name, counted)


def test_a_call_passes_the_gate_once(monkeypatch):
    pack = load_pack("food_delivery")
    agent = PolicyAgent(pack)
    agent.envs.get("s1", [])  # the session's backend exists: what is counted below is the gate
    counts = Counter()
    counting(monkeypatch, counts, pack.tools, "validate", "validate")
    counting(monkeypatch, counts, pack.rules, "check", "rules")
    counting(monkeypatch, counts, pack.tools._tools["issue_coupon"], "fn", "tool")
    ok = execute(agent, COUPON)
    assert ok.record.executed and ok.record.decision.allowed
    assert counts == {"validate": 1, "rules": 1, "tool": 1}
    counts.clear()
    before = agent.envs.get("s1", [ok.action]).state_hash()
    big = ToolCall(name="issue_coupon", arguments={**COUPON.arguments, "amount": 50})
    no = execute(agent, big, [ok.action])
    assert counts == {"validate": 1, "rules": 1}, "a denied write runs no tool"
    assert not no.record.executed and not no.record.decision.allowed and no.record.decision.rule_ids
    assert agent.envs.get("s1", [ok.action]).state_hash() == before


def test_a_dry_run_only_asks_the_rules():
    pack = load_pack("food_delivery")
    agent = PolicyAgent(pack)
    out = execute(agent, COUPON, dry_run=True)
    assert out.record.decision.allowed and not out.record.executed and out.action is None
    assert agent.envs.get("s1", []).state_hash() == pack.new_environment().state_hash()


def test_a_session_backend_is_rebuilt_exactly_from_its_log():
    pack = load_pack("food_delivery")
    first = PolicyAgent(pack)
    done = execute(first, COUPON)
    other = SessionEnvironments(pack)  # another replica, never saw the call
    rebuilt = other.get("s1", [done.action])
    assert rebuilt.state_hash() == first.envs.get("s1", [done.action]).state_hash()
    assert other.rebuilds == 1


def test_rules_reloaded_in_place_change_the_next_decision():
    pack = load_pack("food_delivery")
    agent = PolicyAgent(pack)
    rules = yaml.safe_load((pack.path / "rules.yaml").read_text())
    rules["params"]["late_grace_minutes"] = 25
    rules["version"] = "grace-25"
    pack.rules.load_data(rules)
    denied = execute(agent, COUPON)
    assert not denied.record.executed and "FD-LATE-004" in denied.record.decision.rule_ids
    assert "25-minute" in denied.record.decision.customer_reason
    assert denied.record.decision.rules_version.startswith("grace-25")


def test_policy_sections_and_the_section_for_each_intent():
    pack = load_pack("food_delivery")
    sections = policy_sections(pack.policy)
    assert "Late deliveries" in sections
    agent = PolicyAgent(pack)
    assert agent.section_for("late_delivery").startswith("## Late deliveries")
    assert agent.section_for("cancel_order").startswith("## Cancellations")
    agent.set_policy("# Policy\n\n## Late deliveries\nNew text about lateness.\n")
    assert "New text" in agent.section_for("late_delivery")
