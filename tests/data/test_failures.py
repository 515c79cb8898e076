"""From failures: the divergent turn is found, and the correction fixes it."""

from __future__ import annotations

import pytest

from wow_ray.agents.transcript import AgentStep, ToolCallRecord, Transcript, TurnRecord
from wow_ray.data.failures import EvaluatedDialogue, FailureConverter, FailureError
from wow_ray.scenario import Oracle, ToolCall, replay

TASK = "fd-006"  # train split: 30+ minutes late, a partial refund of 7.5 CNY


def call(name: str, args: dict, kind: str) -> ToolCallRecord:
    return ToolCallRecord(name=name, arguments=args, kind=kind, executed=True, ok=True)


def transcript(calls: list[ToolCallRecord], reply: str, intent: str = "late_delivery") -> Transcript:
    steps = [AgentStep(agent="understanding", output={"intent": intent, "slots": {"order_id": "O10163"}})]
    steps.append(AgentStep(agent="solution", tool_calls=calls))
    turn = TurnRecord(index=0, customer="My order O10163 was really late.", reply=reply, intent=intent,
                      steps=steps)
    return Transcript(session_id="sess-1", scenario="food_delivery", user_id="U0064",
                      identity_verified=True, turns=[turn],
                      actions=[{"name": c.name, "arguments": c.arguments} for c in calls])


@pytest.fixture(scope="module")
def converter(food_pack):
    return FailureConverter(food_pack)


@pytest.fixture(scope="module")
def gold(food_pack):
    task = next(t for t in food_pack.tasks if t.id == TASK)
    return task, Oracle(food_pack).solve(task)


def test_a_refund_the_rules_deny_is_corrected(food_pack, converter, gold):
    task, oracle = gold
    order = task.situation.requests[0].slots["order_id"]
    wrong = call("refund_full", {"order_id": order, "reason": "late_delivery"}, "write")
    env = food_pack.new_environment()
    state = task.situation.initial_state()
    env.call("get_order", {"order_id": order}, state)
    assert not env.check(ToolCall(name=wrong.name, arguments=wrong.arguments), state).allowed
    item = EvaluatedDialogue(task_id=TASK, transcript=transcript(
        [call("get_order", {"order_id": order}, "read"), wrong], "Refunded in full."))
    samples, pairs, div = converter.convert(item)
    assert div.kind == "wrong_action" and div.turn == 0
    fix = next(s for s in samples if s.meta.agent == "solution")
    correct = oracle.actions[1]
    assert fix.meta.check.actions == [correct.model_dump()]  # the oracle's action at that turn
    calls = [ToolCall(**a) for a in [*fix.meta.check.prior, *fix.meta.check.actions]]
    assert replay(food_pack, task.situation, calls).all_allowed
    reply = next(s for s in samples if s.meta.agent == "response")
    assert oracle.communicate_info[0] in reply.target  # 7.5 told
    pair = next(p for p in pairs if p.meta.agent == "solution")
    assert '"refund_full"' in pair.rejected and '"refund_partial"' in pair.chosen
    assert pair.prompt == fix.prompt
    assert all(s.meta.source == "failure" and s.meta.outcome["divergence"] == "wrong_action" for s in samples)


def test_a_skipped_refund_is_corrected(converter, gold):
    task, oracle = gold
    order = task.situation.requests[0].slots["order_id"]
    item = EvaluatedDialogue(task_id=TASK, transcript=transcript(
        [call("get_order", {"order_id": order}, "read")], f"Order {order} was delivered."))
    samples, pairs, div = converter.convert(item)
    assert div.kind == "skipped_action"
    first = next(s for s in samples if s.meta.agent == "solution")
    assert first.meta.kind == "refund_partial"
    pair = next(p for p in pairs if p.meta.agent == "solution")
    assert pair.rejected == '{"tool":"done"}'
    assert any(p.meta.agent == "response" and p.rejected == f"Order {order} was delivered." for p in pairs)


def test_a_reply_that_leaves_out_the_amount(converter, gold):
    task, oracle = gold
    writes = [call(a.name, a.arguments, "write" if a.name != "get_order" else "read") for a in oracle.actions]
    item = EvaluatedDialogue(task_id=TASK, transcript=transcript(writes, "Done, refunded."))
    samples, pairs, div = converter.convert(item)
    assert div.kind == "missing_info"
    reply = next(s for s in samples if s.meta.agent == "response")
    assert "7.5" in reply.target
    assert [p.meta.agent for p in pairs] == ["response"]


def test_a_correct_dialogue_gives_nothing_and_held_out_tasks_are_refused(food_pack, converter, gold):
    task, oracle = gold
    calls = [call(a.name, a.arguments, "write" if a.name != "get_order" else "read") for a in oracle.actions]
    ok = EvaluatedDialogue(task_id=TASK, success=True, transcript=transcript(calls, "I've refunded 7.5 CNY."))
    assert converter.convert(ok) == ([], [], None)
    test_task = next(t for t in food_pack.tasks if t.split == "test")
    with pytest.raises(FailureError, match="held-out"):
        converter.convert(EvaluatedDialogue(task_id=test_task.id, transcript=transcript(calls, "x")))


def test_a_misread_intent_is_corrected(converter, gold):
    item = EvaluatedDialogue(task_id=TASK, transcript=transcript([], "Which order should I cancel?",
                                                                 intent="cancel_order"))
    samples, pairs, div = converter.convert(item)
    assert div.kind == "wrong_intent"
    fix = next(s for s in samples if s.meta.agent == "understanding")
    assert fix.target.startswith('{"intent":"late_delivery"') and '"O10163"' in fix.target
    assert any(p.meta.agent == "understanding" and '"cancel_order"' in p.rejected for p in pairs)


def test_cli_registers_corrections_and_pairs(gold, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from wow_ray.cli import app
    from wow_ray.data.store import load_dataset
    from wow_ray.registry import Registry

    task, _ = gold
    order = task.situation.requests[0].slots["order_id"]
    item = EvaluatedDialogue(task_id=TASK, transcript=transcript(
        [call("get_order", {"order_id": order}, "read")], f"Order {order} was delivered."))
    held = EvaluatedDialogue(task_id="fd-005", transcript=item.transcript)
    path = tmp_path / "evaluated.jsonl"
    path.write_text(item.model_dump_json() + "\n" + held.model_dump_json() + "\n")
    monkeypatch.setenv("WOW_RAY_STORAGE_PATH", str(tmp_path / "storage"))
    result = CliRunner().invoke(app, ["data", "from-failures", str(path)])
    assert result.exit_code == 0, result.output
    assert "skipped_action at turn 0" in result.output and "skipped" in result.output
    registry = Registry(str(tmp_path / "storage"))
    pref = load_dataset(registry, "food_delivery-failures-pref")
    assert pref.manifest.kind == "preference" and pref.manifest.counts.total >= 1
    sft = load_dataset(registry, "food_delivery-failures")
    assert set(sft.manifest.counts.by_source) == {"failure"} and sft.manifest.counts.total >= 2
