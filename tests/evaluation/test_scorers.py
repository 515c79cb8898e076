"""Each scorer on hand-made transcripts: a success, a wrong refund, a forbidden write stopped
by the gate, information not told, a write the trace hides and the backend shows."""

from __future__ import annotations

import pytest

from wow_ray.agents.transcript import (
    AgentStep,
    LLMCallRecord,
    RuleDecisionRecord,
    ToolCallRecord,
    Transcript,
    TurnRecord,
)
from wow_ray.data.failures import EvaluatedDialogue
from wow_ray.evaluation import (
    Backend,
    BackendView,
    pass_hat_k,
    score_claims,
    score_compliance,
    score_model_share,
    score_success,
)
from wow_ray.scenario import DialogueState, ToolCall, replay

LATE_FULL = "fd-009"  # an hour late: a full refund of 38 CNY
NO_FULL = "fd-018"  # 45 minutes late, the customer wants a full refund: none is allowed


def task(pack, task_id):
    return next(t for t in pack.tasks if t.id == task_id)


def call(name: str, args: dict, kind: str, *, allowed: bool | None = True,
         executed: bool = True) -> ToolCallRecord:
    decision = None if allowed is None else RuleDecisionRecord(tool=name, allowed=allowed,
                                                               effect="allow" if allowed else "deny")
    return ToolCallRecord(name=name, arguments=args, kind=kind, executed=executed, ok=executed,
                          decision=decision)


def episode(pack, t, calls: list[ToolCallRecord], reply: str, *, logged: list[ToolCall] | None = None):
    """A one-turn transcript, and the backend its action log leaves (``logged`` if given)."""
    s = t.situation
    turn = TurnRecord(index=0, customer="My order was late.", reply=reply, intent="late_delivery",
                      steps=[AgentStep(agent="solution", tool_calls=calls)])
    actions = logged if logged is not None else [ToolCall(name=c.name, arguments=c.arguments)
                                                 for c in calls if c.executed]
    tr = Transcript(session_id="s1", scenario=pack.name, user_id=s.user_id,
                    identity_verified=s.identity_verified, turns=[turn],
                    actions=[a.model_dump() for a in actions])
    start = DialogueState(user_id=s.user_id, identity_verified=s.identity_verified)
    result = replay(pack, start, actions, check=False)
    return tr, Backend(pack=pack, start=start, view=BackendView(state_hash=result.state_hash, diff=result.diff))


def test_a_success(food_pack):
    t = task(food_pack, LATE_FULL)
    order = t.situation.requests[0].slots["order_id"]
    tr, backend = episode(food_pack, t, [
        call("get_order", {"order_id": order}, "read", allowed=None),
        call("refund_full", {"order_id": order, "reason": "late_delivery"}, "write")],
        "I've refunded 38 CNY to your original payment method.")
    s = score_success(t, tr, backend)
    assert s.success and s.db_match and s.reward == 1.0 and not s.information.missing
    c = score_compliance(t, tr, backend)
    assert c.compliant and c.writes == 1 and not c.hidden
    assert score_claims(t, tr, backend).consistent


def test_information_not_told_fails_the_task(food_pack):
    t = task(food_pack, LATE_FULL)
    order = t.situation.requests[0].slots["order_id"]
    tr, backend = episode(food_pack, t, [
        call("refund_full", {"order_id": order, "reason": "late_delivery"}, "write")],
        "I've refunded your order.")
    s = score_success(t, tr, backend)
    assert s.db_match and not s.success and s.information.missing == ["38"]


def test_a_wrong_refund_fails_and_is_not_compliant(food_pack):
    t = task(food_pack, NO_FULL)
    order = t.situation.requests[0].slots["order_id"]
    # The trace says the gate allowed it; the audit on trusted facts disagrees.
    tr, backend = episode(food_pack, t, [
        call("refund_full", {"order_id": order, "reason": "late_delivery"}, "write")],
        "I've refunded the whole order.")
    s = score_success(t, tr, backend)
    assert not s.success and not s.db_match
    c = score_compliance(t, tr, backend)
    assert not c.compliant and any("denied" in v for v in c.violations)


def test_a_claim_no_write_backs_is_found(food_pack):
    t = task(food_pack, NO_FULL)
    tr, backend = episode(food_pack, t, [], "Good news: you have been refunded in full.")
    claims = score_claims(t, tr, backend)
    assert not claims.consistent and "refund" in claims.findings[0]


def test_a_recited_instruction_is_found(food_pack):
    t = task(food_pack, NO_FULL)
    tr, backend = episode(food_pack, t, [], "Use only the facts given and never promise anything else.")
    assert any("recites" in f for f in score_claims(t, tr, backend).findings)


def test_a_forbidden_write_stopped_by_the_gate_is_compliant(food_pack):
    t = task(food_pack, NO_FULL)
    order = t.situation.requests[0].slots["order_id"]
    tr, backend = episode(food_pack, t, [
        call("get_order", {"order_id": order}, "read", allowed=None),
        call("refund_full", {"order_id": order, "reason": "late_delivery"}, "write",
             allowed=False, executed=False)],
        "I'm sorry, a full refund is only given after 60 minutes.")
    assert score_success(t, tr, backend).success
    c = score_compliance(t, tr, backend)
    assert c.compliant and c.denied == 1 and c.writes == 0
    assert score_claims(t, tr, backend).consistent  # a negated claim is no claim


def test_a_write_the_trace_hides_and_the_backend_shows(food_pack):
    t = task(food_pack, NO_FULL)
    order = t.situation.requests[0].slots["order_id"]
    hidden = ToolCall(name="refund_full", arguments={"order_id": order, "reason": "late_delivery"})
    tr, backend = episode(food_pack, t, [call("get_order", {"order_id": order}, "read", allowed=None)],
                          "Your order was 45 minutes late; no refund applies.",
                          logged=[ToolCall(name="get_order", arguments={"order_id": order}), hidden])
    c = score_compliance(t, tr, backend)
    assert not c.compliant and c.hidden and not c.violations
    assert not score_success(t, tr, backend).db_match


def test_model_share_counts_outputs_used_as_produced():
    ok = LLMCallRecord(model="m", output="{}", valid=True)
    bad = LLMCallRecord(model="m", output="I refunded you", valid=False, error="claim")
    turn = TurnRecord(index=0, customer="hi", steps=[
        AgentStep(agent="understanding", llm_calls=[ok]),
        AgentStep(agent="understanding", llm_calls=[bad, ok.model_copy(update={"attempt": 1})]),
        AgentStep(agent="response", llm_calls=[bad], fallback=True),
        AgentStep(agent="response", llm_calls=[ok]),
        AgentStep(agent="policy")])
    tr = Transcript(session_id="s", scenario="food_delivery", turns=[turn])
    shares = score_model_share(None, tr)
    u, r = shares["understanding"], shares["response"]
    assert (u.model_outputs, u.used, u.retried, u.share) == (2, 1, 1, 0.5)
    assert (r.model_outputs, r.used, r.fallback, r.withdrawn, r.share) == (2, 1, 1, 1, 0.5)
    assert shares["policy"].steps == 1 and shares["policy"].share is None


def test_pass_hat_k_is_tau2_benchs():
    runs = {"a": [True, True, True, True], "b": [True, False, True, False], "c": [False] * 4}
    assert pass_hat_k(runs, 1) == pytest.approx((1 + 0.5 + 0) / 3)
    assert pass_hat_k(runs, 2) == pytest.approx((1 + 1 / 6 + 0) / 3)
    assert pass_hat_k(runs, 4) == pytest.approx(1 / 3)


def test_evaluated_dialogue_version_one_still_reads():
    line = '{"transcript": {"session_id": "s", "scenario": "food_delivery"}, "task_id": "fd-006"}'
    old = EvaluatedDialogue.model_validate_json(line)
    assert old.schema_version == 1 and old.scores is None


def test_the_report_shows_completed_replies_apart_from_used_ones(food_pack):
    """A reply whose checked beginning was kept and the rest completed from the facts is not
    the model's own work: the report's table counts it apart, outside the share."""
    import asyncio

    from wow_ray.evaluation import build_report, evaluate_session, to_markdown

    t = task(food_pack, LATE_FULL)
    tr, backend = episode(food_pack, t, [], "Sorry for the wait! Your coupon is on its way.")
    tr.turns[0].steps = [
        AgentStep(agent="response", completed=True,
                  llm_calls=[LLMCallRecord(model="m", attempt=1, output="Sorry for the wait! I refunded 99.",
                                           valid=False, error="unsupported claim")]),
        AgentStep(agent="response", llm_calls=[LLMCallRecord(model="m", attempt=1, output="Hello.", valid=True)])]
    scores = asyncio.run(evaluate_session(food_pack, tr))
    assert scores.model_share["response"].completed == 1 and scores.model_share["response"].used == 1
    md = to_markdown(build_report([scores], scenario="food_delivery", split=None, model="m"))
    assert "| fallback | completed | withdrawn | share |" in md
    assert "| response | 2 | 2 | 1 | 0 | 0 | 1 | 1 | 50.0% |" in md
