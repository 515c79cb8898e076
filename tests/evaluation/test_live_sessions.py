"""Live sessions scored without gold, by the one function the continuous evaluator and the
loop's ``score_traffic`` step share: a reply claiming a refund that was never made is found,
simulated sessions are never sampled, and the loop registers the report."""

from __future__ import annotations

import asyncio

from wow_ray.agents.local import new_session
from wow_ray.agents.sessions import SessionStore
from wow_ray.agents.transcript import AgentStep, ToolCallRecord, TurnRecord
from wow_ray.evaluation import score_live_sessions
from wow_ray.flywheel.stages import RealStages, StageOptions
from wow_ray.registry import EntryKind, Registry
from wow_ray.scenario import ToolCall


def _session(store: SessionStore, sid: str, reply: str, *, simulated: bool = False,
             calls: list[ToolCallRecord] = ()) -> None:
    """A one-turn session stored as the service stores it: the turn's trace, and the executed
    writes in the state (``SessionState.actions``)."""
    state = new_session("food_delivery", session_id=sid, user_id="U1001", identity_verified=True)
    store.create(state, '{"simulated": true}' if simulated else "{}")
    state.actions = [ToolCall(name=c.name, arguments=c.arguments) for c in calls]
    turn = TurnRecord(index=0, customer="My order O10163 was late.", reply=reply,
                      intent="late_delivery", steps=[AgentStep(agent="solution", tool_calls=calls)])
    store.save_turn(state, turn, 0)


def _store(tmp_path) -> str:
    url = f"sqlite:///{tmp_path}/sessions.db"
    store = SessionStore(url)
    _session(store, "honest", "I've refunded your order O10163.",
             calls=[ToolCallRecord(name="refund_full", kind="write", executed=True, ok=True,
                                   arguments={"order_id": "O10163", "reason": "late_delivery"})])
    _session(store, "false-claim", "The customer is refunded.")
    _session(store, "simulated", "The customer is refunded.", simulated=True)
    return url


def test_live_sessions_are_scored_without_gold(tmp_path, food_pack):
    report = asyncio.run(score_live_sessions(food_pack, _store(tmp_path)))
    assert report is not None and report.model == "live" and report.split is None
    assert sorted(report.meta["sessions"]) == ["false-claim", "honest"]  # never the simulated one
    assert report.episodes == 2 and report.claims_consistent == 0.5  # the refund is backed


def test_no_live_sessions_gives_no_report(tmp_path, food_pack):
    url = f"sqlite:///{tmp_path}/empty.db"
    SessionStore(url)
    assert asyncio.run(score_live_sessions(food_pack, url)) is None


def test_the_loop_registers_its_traffic_report(tmp_path):
    registry = Registry(str(tmp_path / "storage"))
    stages = RealStages(registry, StageOptions(database_url=_store(tmp_path)))
    out = stages.score_traffic()
    assert out["sessions"] == 2 and out["claims_consistent"] == 0.5
    [entry] = registry.entries(EntryKind.REPORT)
    assert entry.ref == out["report"] and entry.lineage["judged"] == "live sessions"
    assert RealStages(registry, StageOptions()).score_traffic() == {
        "skipped": "no sessions database given to the loop"}
