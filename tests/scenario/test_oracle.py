"""Every task's gold actions are what the oracle computes, and pass the rule engine when
replayed in order; the oracle follows the rules in force, not hard-coded answers."""

from __future__ import annotations

import json

import pytest

from wow_ray.scenario import (
    IntentRequest,
    Oracle,
    Situation,
    builtin_packs,
    check_gold,
    load_pack,
    replay,
)

PACKS = {name: load_pack(name) for name in builtin_packs()}
ORACLES = {name: Oracle(pack) for name, pack in PACKS.items()}
CASES = [(name, i) for name, pack in PACKS.items() for i in range(len(pack.tasks))]


def test_both_packs_are_built_in():
    assert {"food_delivery", "hotel_booking"} <= set(PACKS)


@pytest.mark.parametrize(("pack_name", "index"), CASES, ids=[f"{n}:{PACKS[n].tasks[i].id}" for n, i in CASES])
def test_gold_actions_are_the_oracles_and_pass_the_rules(pack_name, index):
    pack, task = PACKS[pack_name], PACKS[pack_name].tasks[index]
    criteria = task.evaluation_criteria
    result = ORACLES[pack_name].solve(task)
    assert [a.as_call().key() for a in criteria.actions] == [a.key() for a in result.actions]
    assert criteria.communicate_info == result.communicate_info
    check = replay(pack, task.situation, criteria.actions)
    for action, decision, outcome in zip(criteria.actions, check.decisions, check.results, strict=True):
        assert decision.allowed, (action.action_id, decision)
        assert outcome.ok, (action.action_id, outcome.error)
    assert check.state_hash == result.state_hash


def test_check_gold_reports_tampered_tasks(shop):
    path = shop / "tasks.json"
    tasks = json.loads(path.read_text())
    tasks[1]["evaluation_criteria"]["actions"].append(
        {"action_id": "x", "name": "cancel_order", "arguments": {"order_id": "A1002"}})
    tasks[0]["evaluation_criteria"]["communicate_info"] = ["41.00"]
    path.write_text(json.dumps(tasks))
    messages = [i.message for i in check_gold(load_pack(shop))]
    assert any("differ from the oracle's" in m for m in messages)
    assert any("denied by CAN-002" in m for m in messages)
    assert any("communicate_info ['41.00']" in m for m in messages)


def test_oracle_follows_the_rules_in_force():
    pack = load_pack("food_delivery")  # its own copy: the rules are changed below
    task = next(t for t in pack.tasks if t.description.purpose == "Exactly 60 minutes late: full refund.")
    oracle = Oracle(pack)
    assert oracle.solve(task).writes == ["refund_full"]
    text = (pack.path / "rules.yaml").read_text().replace("late_full_minutes: 60", "late_full_minutes: 90")
    pack.rules.load_text(text)
    result = oracle.solve(task)
    assert result.writes == ["refund_partial"]  # playbook and rules both read the new threshold


def test_oracle_on_a_sampled_situation(food):
    order = food.new_backend().find("orders", status="placed")[0]
    situation = Situation(user_id=order["user_id"], requests=[IntentRequest(intent="cancel_order", slots={"order_id": order["order_id"]})])
    result = Oracle(food).solve(situation)
    assert [a.name for a in result.actions] == ["get_order", "cancel_order"]
    assert result.communicate_info == [f"{order['total']:.2f}".rstrip("0").rstrip(".")]
    assert result.state.tools_called == ["get_order", "cancel_order"]
