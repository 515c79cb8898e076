"""The service's metrics, computed from hand-made turn records; one slow test reads them back
from a real Ray's Prometheus endpoint."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time

import httpx
import pytest

from wow_ray.agents.transcript import (
    AgentStep,
    HandoffRecord,
    LLMCallRecord,
    RuleDecisionRecord,
    ToolCallRecord,
    TurnRecord,
)
from wow_ray.serving.metrics import (
    METRICS,
    evaluation_measurement,
    turn_measurements,
)

MODEL = "smollm2-135m:food_delivery-response:v3"


def call(valid=True, model=MODEL):
    return LLMCallRecord(model=model, valid=valid, output="x")


def denied(tool, *rules):
    return ToolCallRecord(name=tool, kind="write", decision=RuleDecisionRecord(
        tool=tool, allowed=False, effect="deny", rule_ids=list(rules)))


def a_turn() -> TurnRecord:
    return TurnRecord(index=0, customer="my order is late", latency_s=2.5, steps=[
        AgentStep(agent="understanding", latency_s=0.7, llm_calls=[call()]),
        AgentStep(agent="policy", latency_s=0.01),  # no model: not a model output
        AgentStep(agent="solution", latency_s=0.4, llm_calls=[call(valid=False), call()],
                  tool_calls=[
                      denied("refund_full", "R-LATE-01", "R-CAP-02"),
                      denied("refund_full", "R-LATE-01").model_copy(update={"dry_run": True}),
                      ToolCallRecord(name="get_order", kind="read", ok=False, error="timeout"),
                      ToolCallRecord(name="give_coupon", kind="write", ok=True, executed=True,
                                     decision=RuleDecisionRecord(tool="give_coupon",
                                                                 allowed=True, effect="allow")),
                  ]),
        AgentStep(agent="response", latency_s=1.2, llm_calls=[call(valid=False)], fallback=True),
    ], handoff=HandoffRecord(ticket_id="T1", reason="customer_request", summary="wants a human"))


def by_name(measurements, name):
    return [m for m in measurements if m.name == name]


def test_model_use_classifies_each_step_as_the_design_defines_model_share():
    assert AgentStep(agent="policy").model_use is None
    assert AgentStep(agent="a", llm_calls=[call()]).model_use == "used"
    assert AgentStep(agent="a", llm_calls=[call(False), call()]).model_use == "retried"
    assert AgentStep(agent="a", llm_calls=[call(False)]).model_use == "fallback"
    assert AgentStep(agent="a", llm_calls=[call()], fallback=True).model_use == "fallback"
    assert AgentStep(agent="a", llm_calls=[call(), call(False)]).model_use == "fallback"
    assert AgentStep(agent="a", llm_calls=[call(False)], completed=True).model_use == "completed"


def test_a_turn_gives_latency_per_agent_and_model_use_per_agent_and_model():
    ms = turn_measurements(a_turn(), "food_delivery")
    assert [(m.value, m.tags) for m in by_name(ms, "wow_ray_turns_total")] == [
        (1, {"scenario": "food_delivery"})]
    assert by_name(ms, "wow_ray_turn_latency_seconds")[0].value == 2.5
    assert {m.tags["agent"]: m.value for m in by_name(ms, "wow_ray_agent_latency_seconds")} == {
        "understanding": 0.7, "policy": 0.01, "solution": 0.4, "response": 1.2}
    uses = {(m.tags["agent"], m.tags["use"], m.tags["model"])
            for m in by_name(ms, "wow_ray_model_outputs_total")}
    assert uses == {("understanding", "used", MODEL), ("solution", "retried", MODEL),
                    ("response", "fallback", MODEL)}


def test_denials_count_once_per_rule_dry_runs_excluded_and_failed_tools_are_errors():
    ms = turn_measurements(a_turn(), "food_delivery")
    denials = sorted((m.tags["rule"], m.tags["tool"]) for m in by_name(ms, "wow_ray_rule_denials_total"))
    assert denials == [("R-CAP-02", "refund_full"), ("R-LATE-01", "refund_full")]
    assert [m.tags["tool"] for m in by_name(ms, "wow_ray_tool_errors_total")] == ["get_order"]
    assert [m.tags["reason"] for m in by_name(ms, "wow_ray_handoffs_total")] == ["customer_request"]


def test_free_text_never_becomes_a_label_and_every_tag_is_declared():
    turn = a_turn().model_copy(update={"handoff": HandoffRecord(
        ticket_id="T2", reason="the customer is upset about {everything}", summary="")})
    ms = turn_measurements(turn, "food_delivery") + [
        evaluation_measurement("food_delivery", "food_delivery-response:v3", True)]
    assert by_name(ms, "wow_ray_handoffs_total")[0].tags["reason"] == "other"
    for m in ms:
        assert set(m.tags) == set(METRICS[m.name].tag_keys), m.name


def test_a_quiet_turn_gives_only_the_turn_and_its_steps():
    turn = TurnRecord(index=1, customer="thanks", latency_s=0.1,
                      steps=[AgentStep(agent="master", latency_s=0.1)])
    names = [m.name for m in turn_measurements(turn, "hotel_booking")]
    assert names == ["wow_ray_turns_total", "wow_ray_turn_latency_seconds",
                     "wow_ray_agent_latency_seconds"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_recorded_turns_reach_rays_prometheus_endpoint(tmp_path):
    """record_turn in a Ray task; the node's metrics endpoint serves the project's metrics."""
    port = free_port()
    script = tmp_path / "emit.py"
    script.write_text(textwrap.dedent(f"""
        import ray
        from tests.serving.test_metrics import a_turn
        from wow_ray.serving.metrics import record_evaluation, record_turn

        @ray.remote
        def serve_a_turn():
            record_turn(a_turn(), "food_delivery")
            record_evaluation("food_delivery", "food_delivery-response:v3", True)

        ray.init(address="local", num_cpus=2, include_dashboard=False,
                 _metrics_export_port={port})
        ray.get(serve_a_turn.remote())
        import time; time.sleep(120)
    """))
    env = {**os.environ, "PYTHONPATH": os.getcwd(), "RAY_metrics_report_interval_ms": "500"}
    log = open(tmp_path / "emit.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([sys.executable, str(script)], env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    try:
        wanted = ['ray_wow_ray_model_outputs_total{', 'use="fallback"', 'rule="R-LATE-01"',
                  "ray_wow_ray_turn_latency_seconds_bucket", 'model_version="food_delivery-response:v3"']
        text, deadline = "", time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
            except httpx.HTTPError:
                text = ""
            if all(w in text for w in wanted):
                break
            time.sleep(1)
        missing = [w for w in wanted if w not in text]
        assert not missing, f"not exported: {missing}; " + (tmp_path / "emit.log").read_text()[-2000:]
    finally:
        proc.terminate()  # the driver's local Ray shuts down with it
        proc.wait(timeout=60)
        log.close()
