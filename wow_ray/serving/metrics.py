"""The service's own Prometheus metrics, computed from the record of each turn.

Every number comes from one place, a saved :class:`TurnRecord`, so the metrics say what the
transcripts say: the gateway calls :func:`record_turn` once per saved turn, and evaluation
calls :func:`record_evaluation` once per judged episode. They are exported through
``ray.util.metrics``, so every node's metrics agent serves them beside Ray's, Serve's and
vLLM's on its metrics export port (``ray start --metrics-export-port``), each name with Ray's
``ray_`` prefix: ``ray_wow_ray_turn_latency_seconds`` and so on.

:func:`turn_measurements` is the pure part (a turn in, measurements out), tested without Ray;
:func:`record_turn` hands them to the Ray metrics, created once per process.

Model share per agent (docs/design.md): of an agent's steps that asked the model, the share
whose output was used as produced: first call valid, no retry, not replaced by the fallback.
In PromQL: ``sum by (agent) (rate(ray_wow_ray_model_outputs_total{use="used"}[5m])) /
sum by (agent) (rate(ray_wow_ray_model_outputs_total[5m]))``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from wow_ray.agents.transcript import TurnRecord

MetricKind = Literal["counter", "histogram"]

# Seconds; a CPU turn with three model calls takes seconds, a GPU one a fraction of a second.
LATENCY_BOUNDARIES = [0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120]


@dataclass(frozen=True)
class MetricSpec:
    name: str
    kind: MetricKind
    description: str
    tag_keys: tuple[str, ...]


METRICS: dict[str, MetricSpec] = {
    spec.name: spec
    for spec in (
        MetricSpec("wow_ray_turns_total", "counter",
                   "Turns answered and saved.", ("scenario",)),
        MetricSpec("wow_ray_turn_latency_seconds", "histogram",
                   "Turn time inside the master agent.", ("scenario",)),
        MetricSpec("wow_ray_agent_latency_seconds", "histogram",
                   "Time of one agent's step within a turn.", ("scenario", "agent")),
        MetricSpec("wow_ray_model_outputs_total", "counter",
                   "Agent steps that asked the model, by what became of the output: used "
                   "(as produced), retried, fallback (replaced by the deterministic fallback).",
                   ("scenario", "agent", "model", "use")),
        MetricSpec("wow_ray_rule_denials_total", "counter",
                   "Proposed tool calls the rules refused, one count per rule that refused.",
                   ("scenario", "rule", "tool")),
        MetricSpec("wow_ray_handoffs_total", "counter",
                   "Hand-overs to a human.", ("scenario", "reason")),
        MetricSpec("wow_ray_tool_errors_total", "counter",
                   "Allowed tool calls that failed when run.", ("scenario", "tool")),
        MetricSpec("wow_ray_evaluation_episodes_total", "counter",
                   "Evaluated episodes, by model version and verdict.",
                   ("scenario", "model_version", "success")),
    )
}


@dataclass(frozen=True)
class Measurement:
    """One value for one metric: a counter increment or a histogram observation."""

    name: str
    value: float
    tags: dict[str, str]


_SHORT_LABEL = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


def _label(value: str | None) -> str:
    """A tag value safe for Prometheus and of bounded cardinality (free text becomes 'other')."""
    if not value:
        return "none"
    return value if _SHORT_LABEL.match(value) else "other"


def turn_measurements(turn: TurnRecord, scenario: str) -> list[Measurement]:
    """Everything one turn contributes to the metrics, in a fixed order."""
    out = [
        Measurement("wow_ray_turns_total", 1, {"scenario": scenario}),
        Measurement("wow_ray_turn_latency_seconds", turn.latency_s, {"scenario": scenario}),
    ]
    for step in turn.steps:
        out.append(Measurement("wow_ray_agent_latency_seconds", step.latency_s,
                               {"scenario": scenario, "agent": step.agent}))
        use = step.model_use
        if use is not None:
            out.append(Measurement("wow_ray_model_outputs_total", 1, {
                "scenario": scenario, "agent": step.agent,
                "model": _label(step.llm_calls[0].model), "use": use}))
        for call in step.tool_calls:
            if call.dry_run:
                continue  # only checked to explain a refusal already counted
            decision = call.decision
            if decision is not None and not decision.allowed:
                for rule in decision.rule_ids or [None]:
                    out.append(Measurement("wow_ray_rule_denials_total", 1, {
                        "scenario": scenario, "rule": _label(rule), "tool": _label(call.name)}))
            elif not call.ok and call.error is not None:
                out.append(Measurement("wow_ray_tool_errors_total", 1,
                                       {"scenario": scenario, "tool": _label(call.name)}))
    if turn.handoff is not None:
        out.append(Measurement("wow_ray_handoffs_total", 1,
                               {"scenario": scenario, "reason": _label(turn.handoff.reason)}))
    return out


def evaluation_measurement(scenario: str, model_version: str, success: bool) -> Measurement:
    return Measurement("wow_ray_evaluation_episodes_total", 1, {
        "scenario": scenario, "model_version": _label(model_version),
        "success": "true" if success else "false"})


_live: dict[str, Any] = {}


def _metric(name: str) -> Any:
    """The Ray metric called ``name``, created on first use in this process."""
    if name not in _live:
        from ray.util import metrics

        spec = METRICS[name]
        if spec.kind == "histogram":
            _live[name] = metrics.Histogram(spec.name, description=spec.description,
                                            boundaries=LATENCY_BOUNDARIES,
                                            tag_keys=spec.tag_keys)
        else:
            _live[name] = metrics.Counter(spec.name, description=spec.description,
                                          tag_keys=spec.tag_keys)
    return _live[name]


def _emit(measurements: list[Measurement]) -> None:
    for m in measurements:
        metric = _metric(m.name)
        if METRICS[m.name].kind == "histogram":
            metric.observe(m.value, tags=m.tags)
        else:
            metric.inc(m.value, tags=m.tags)


def record_turn(turn: TurnRecord, scenario: str) -> None:
    """Export one saved turn's metrics (call once per turn, after it is stored)."""
    _emit(turn_measurements(turn, scenario))


def record_evaluation(scenario: str, model_version: str, success: bool) -> None:
    """Export one evaluated episode's verdict against the model version it judged."""
    _emit([evaluation_measurement(scenario, model_version, success)])
