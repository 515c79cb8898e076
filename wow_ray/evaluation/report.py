"""A report over many episodes: success, compliance, pass^k, breakdowns, model share per agent.

``build_report`` aggregates :class:`EpisodeScores`; the report is JSON (``EvalReport``),
markdown (``to_markdown``) and PNG charts (``write_charts``). ``compare`` lists, task by task,
where two reports differ. pass^k is tau2-bench's: for a task with ``c`` successes in ``n``
trials, ``C(c, k) / C(n, k)``, averaged over tasks (the chance that k fresh trials all succeed).
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from wow_ray.evaluation.scorers import AgentShare
from wow_ray.evaluation.verdict import EpisodeScores

REPORT_SCHEMA_VERSION = 1


def pass_hat_k(successes: dict[str, list[bool]], k: int) -> float | None:
    """tau2-bench's pass^k over tasks with at least ``k`` trials (None if none has)."""
    values = [math.comb(sum(v), k) / math.comb(len(v), k) for v in successes.values() if len(v) >= k]
    return sum(values) / len(values) if values else None


class TaskRow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task_id: str
    intents: list[str]
    trials: int
    successes: int
    compliant: int
    claims_consistent: int


class EvalReport(BaseModel):
    """One evaluation run, aggregated; ``episodes`` keeps every episode's scores."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = REPORT_SCHEMA_VERSION
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    scenario: str
    split: str | None = None
    trials: int = 1
    model: str | None = Field(None, description="What was judged: 'none' for the deterministic floor.")
    customer: str = Field("scripted", description="scripted or model")
    kind: str = Field("tasks", description="'tasks' (simulated, with gold) or 'sessions' (live, no gold).")
    load_average: list[float] = Field(default_factory=list)
    episodes: int = 0
    success: float | None = None
    compliance: float = 1.0
    claims_consistent: float = 1.0
    information: float | None = None
    pass_k: dict[int, float | None] = Field(default_factory=dict)
    per_intent: dict[str, dict[str, float]] = Field(default_factory=dict)
    per_task: list[TaskRow] = Field(default_factory=list)
    model_share: dict[str, AgentShare] = Field(default_factory=dict)
    signals: dict[str, int] = Field(default_factory=dict)
    turns_mean: float = 0.0
    latency_s_mean: float = Field(0.0, description="Mean turn time in the master agent.")
    llm_latency_by_agent_s: dict[str, float] = Field(default_factory=dict, description="Mean per episode.")
    customer_s_mean: float = 0.0
    tokens_mean: float = 0.0
    withdrawn: int = 0
    judged: dict[str, float | None] | None = Field(None, description="Model-judged; apart from the verdict.")
    details: list[EpisodeScores] = Field(default_factory=list)
    meta: dict[str, Any] = Field(default_factory=dict)


def _mean(xs: Iterable[float]) -> float:
    xs = list(xs)
    return round(sum(xs) / len(xs), 4) if xs else 0.0


def build_report(scores: list[EpisodeScores], *, scenario: str, split: str | None = None,
                 trials: int = 1, model: str | None = None, customer: str = "scripted",
                 meta: dict[str, Any] | None = None) -> EvalReport:
    """Aggregate episodes' scores into one report."""
    gold = [s for s in scores if s.success is not None]
    by_task: dict[str, list[EpisodeScores]] = defaultdict(list)
    for s in gold:
        by_task[s.task_id or "?"].append(s)
    successes = {t: [bool(x.success and x.success.success) for x in v] for t, v in by_task.items()}
    shares: dict[str, AgentShare] = {}
    agent_llm: dict[str, float] = defaultdict(float)
    for s in scores:
        for agent, share in s.model_share.items():
            shares[agent] = shares.get(agent, AgentShare()).add(share)
        for agent, secs in s.usage.llm_latency_by_agent.items():
            agent_llm[agent] += secs
    intents: dict[str, list[EpisodeScores]] = defaultdict(list)
    for s in scores:
        for intent in s.intents or ["(none)"]:
            intents[intent].append(s)
    signals: dict[str, int] = defaultdict(int)
    for s in scores:
        signals[s.signal or "live"] += 1
    report = EvalReport(
        scenario=scenario, split=split, trials=trials, model=model, customer=customer,
        kind="tasks" if gold else "sessions",
        load_average=[round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else [],
        episodes=len(scores),
        success=_mean(float(x.success.success) for x in gold) if gold else None,
        compliance=_mean(float(x.compliance.compliant) for x in scores) if scores else 1.0,
        claims_consistent=_mean(float(x.claims.consistent) for x in scores) if scores else 1.0,
        information=_mean(x.success.information.fraction for x in gold) if gold else None,
        pass_k={k: pass_hat_k(successes, k) for k in range(1, trials + 1)} if gold else {},
        per_intent={i: {"episodes": len(v),
                        "success": _mean(float(bool(x.success and x.success.success)) for x in v),
                        "compliance": _mean(float(x.compliance.compliant) for x in v)}
                    for i, v in sorted(intents.items())},
        per_task=[TaskRow(task_id=t, intents=v[0].intents, trials=len(v),
                          successes=sum(successes[t]), compliant=sum(x.compliance.compliant for x in v),
                          claims_consistent=sum(x.claims.consistent for x in v))
                  for t, v in sorted(by_task.items())],
        model_share=dict(sorted(shares.items())), signals=dict(signals),
        turns_mean=_mean(x.usage.turns for x in scores),
        latency_s_mean=_mean(x.usage.latency_s / max(x.usage.turns, 1) for x in scores),
        llm_latency_by_agent_s={a: round(v / max(len(scores), 1), 4) for a, v in sorted(agent_llm.items())},
        customer_s_mean=_mean(x.customer_s for x in scores),
        tokens_mean=_mean(x.usage.prompt_tokens + x.usage.completion_tokens for x in scores),
        withdrawn=sum(x.withdrawn for x in scores), details=scores, meta=meta or {})
    judged = [s.judged for s in scores if s.judged is not None]
    if judged:
        met = [j.assertions_met for j in judged if j.assertions_met is not None]
        tones = [j.tone for j in judged if j.tone is not None]
        report.judged = {"assertions_met": _mean(met) if met else None,
                         "tone": _mean(tones) if tones else None, "episodes": float(len(judged))}
    return report


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def to_markdown(r: EvalReport) -> str:
    """The report as a page a person reads."""
    lines = [f"# Evaluation: {r.scenario} {r.split or ''} ({r.kind})", "",
             f"model: `{r.model}`, customer: {r.customer}, trials: {r.trials}, episodes: {r.episodes}, "
             f"load average: {r.load_average}, at {r.created_at:%Y-%m-%d %H:%M} UTC", "",
             "| measure | value |", "| --- | --- |",
             f"| success | {_pct(r.success)} |", f"| compliance | {_pct(r.compliance)} |",
             f"| claims consistent | {_pct(r.claims_consistent)} |",
             f"| information communicated | {_pct(r.information)} |",
             *(f"| pass^{k} | {_pct(v)} |" for k, v in r.pass_k.items()),
             f"| turns per episode | {r.turns_mean} |", f"| turn latency (s) | {r.latency_s_mean} |",
             f"| customer time per episode (s) | {r.customer_s_mean} |",
             f"| tokens per episode | {r.tokens_mean} |", f"| reply drafts withdrawn | {r.withdrawn} |",
             f"| end signals | {', '.join(f'{k}: {v}' for k, v in sorted(r.signals.items()))} |", "",
             "## Model share per agent", "",
             "Model outputs used as produced (not retried, not replaced by the fallback, not withdrawn "
             "after the check, not completed: a checked beginning kept and the rest deterministic), "
             "of the steps in which the model was called.", "",
             "| agent | steps | model outputs | used | retried | fallback | completed | withdrawn | share "
             "| model s/episode |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for agent, s in r.model_share.items():
        lines.append(f"| {agent} | {s.steps} | {s.model_outputs} | {s.used} | {s.retried} | {s.fallback} "
                     f"| {s.completed} | {s.withdrawn} | {_pct(s.share)} "
                     f"| {r.llm_latency_by_agent_s.get(agent, 0.0)} |")
    lines += ["", "## Per intent", "", "| intent | episodes | success | compliance |", "| --- | --- | --- | --- |"]
    lines += [f"| {i} | {int(v['episodes'])} | {_pct(v['success'])} | {_pct(v['compliance'])} |"
              for i, v in r.per_intent.items()]
    if r.judged:
        lines += ["", "## Model-judged (apart from the verdict)", "",
                  f"assertions met: {_pct(r.judged.get('assertions_met'))}, tone: {r.judged.get('tone')} / 5"]
    failed = [t for t in r.per_task if t.successes < t.trials]
    if failed:
        lines += ["", "## Tasks not always solved", "", "| task | intents | successes | compliant |",
                  "| --- | --- | --- | --- |"]
        lines += [f"| {t.task_id} | {', '.join(t.intents)} | {t.successes}/{t.trials} | {t.compliant}/{t.trials} |"
                  for t in failed]
    return "\n".join(lines) + "\n"


def write_charts(r: EvalReport, folder: Path) -> list[Path]:
    """PNG charts: headline rates, the pass^k curve, success per intent, model share per agent."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    heads = {"success": r.success, "compliance": r.compliance, "claims": r.claims_consistent,
             "information": r.information}
    axes[0, 0].bar(list(heads), [v or 0.0 for v in heads.values()], color="#4c72b0")
    axes[0, 0].set_ylim(0, 1)
    axes[0, 0].set_title("headline rates")
    ks = [k for k, v in r.pass_k.items() if v is not None]
    axes[0, 1].plot(ks, [r.pass_k[k] for k in ks], marker="o")
    axes[0, 1].set_ylim(0, 1)
    axes[0, 1].set_xlabel("k")
    axes[0, 1].set_title("pass^k")
    names = list(r.per_intent)
    axes[1, 0].barh(names, [r.per_intent[n]["success"] for n in names], color="#55a868")
    axes[1, 0].set_xlim(0, 1)
    axes[1, 0].set_title("success per intent")
    agents = list(r.model_share)
    axes[1, 1].bar(agents, [r.model_share[a].share or 0.0 for a in agents], color="#c44e52")
    axes[1, 1].set_ylim(0, 1)
    axes[1, 1].set_title("model share per agent")
    fig.suptitle(f"{r.scenario} {r.split or ''} model={r.model}")
    fig.tight_layout()
    path = folder / "report.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return [path]


def write_report(r: EvalReport, folder: Path, *, charts: bool = True) -> list[Path]:
    """report.json, REPORT.md and the charts, in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.json").write_text(r.model_dump_json(indent=1))
    (folder / "REPORT.md").write_text(to_markdown(r))
    out = [folder / "report.json", folder / "REPORT.md"]
    return out + (write_charts(r, folder) if charts else [])


def compare(a: EvalReport, b: EvalReport) -> dict[str, Any]:
    """Where ``b`` differs from ``a``: headline deltas and every task whose results changed."""
    rows_a, rows_b = {t.task_id: t for t in a.per_task}, {t.task_id: t for t in b.per_task}
    tasks = []
    for task_id in sorted(set(rows_a) | set(rows_b)):
        x, y = rows_a.get(task_id), rows_b.get(task_id)
        rate = [None if t is None else round(t.successes / t.trials, 4) for t in (x, y)]
        comp = [None if t is None else round(t.compliant / t.trials, 4) for t in (x, y)]
        if rate[0] != rate[1] or comp[0] != comp[1]:
            tasks.append({"task_id": task_id, "success": rate, "compliance": comp})
    heads = {}
    for name in ("success", "compliance", "claims_consistent", "information"):
        va, vb = getattr(a, name), getattr(b, name)
        heads[name] = [va, vb, None if va is None or vb is None else round(vb - va, 4)]
    share = {agent: [a.model_share.get(agent, AgentShare()).share, b.model_share.get(agent, AgentShare()).share]
             for agent in sorted(set(a.model_share) | set(b.model_share))}
    return {"a": a.model, "b": b.model, "headline": heads, "model_share": share, "tasks": tasks}


def compare_markdown(diff: dict[str, Any]) -> str:
    lines = [f"# {diff['a']} -> {diff['b']}", "", "| measure | A | B | delta |", "| --- | --- | --- | --- |"]
    lines += [f"| {k} | {v[0]} | {v[1]} | {v[2]} |" for k, v in diff["headline"].items()]
    lines += ["", "| agent | share A | share B |", "| --- | --- | --- |"]
    lines += [f"| {k} | {_pct(v[0])} | {_pct(v[1])} |" for k, v in diff["model_share"].items()]
    lines += ["", "| task | success A -> B | compliance A -> B |", "| --- | --- | --- |"]
    lines += [f"| {t['task_id']} | {t['success'][0]} -> {t['success'][1]} | "
              f"{t['compliance'][0]} -> {t['compliance'][1]} |" for t in diff["tasks"]]
    return "\n".join(lines) + "\n"
