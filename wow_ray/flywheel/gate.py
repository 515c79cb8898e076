"""The gate: a candidate is promoted only if it is better by more than the noise, and no worse.

The loop's objective is success first, then model share. Both are compared per task, paired
(the same tasks, each run k trials, by production and by the candidate), with a one-sided sign
test: over the tasks whose per-task value differs, how likely is at least this many wins for the
candidate if it were no better (a fair coin)? With fewer than five differing tasks no result is
significant at 0.05, which is the honest answer on a small split. The hard rules come first: a
candidate less compliant than production, or with a lower success rate, is rejected whatever
else it does better. A rejected candidate that is as successful but uses the model less often
than production is said to be worse on model share, not within the noise: the decision is the
same, its ``rule`` tells a worse candidate from one that is merely not better.
"""

from __future__ import annotations

from collections import defaultdict
from math import comb
from typing import Literal

from pydantic import BaseModel, Field

from wow_ray.evaluation import EpisodeScores


class TaskNumbers(BaseModel):
    """One task's numbers over its trials."""

    success: float
    compliance: float
    model_share: float | None  # used / model outputs, over every agent that called the model


GateRule = Literal["no_tasks", "less_compliant", "worse_success", "better_success",
                   "better_model_share", "worse_model_share", "noise"]
WORSE_RULES: frozenset[str] = frozenset({"less_compliant", "worse_success", "worse_model_share"})


class GateDecision(BaseModel):
    promote: bool
    reason: str
    rule: GateRule = Field(description="Which rule decided; one of WORSE_RULES when the "
                           "candidate was rejected for being worse than production.")
    test: str = "one-sided sign test over tasks (per-task mean over k trials), ties dropped"
    alpha: float
    tasks: int
    success: dict[str, float | int | None] = Field(default_factory=dict)
    model_share: dict[str, float | int | None] = Field(default_factory=dict)
    compliance: dict[str, float] = Field(default_factory=dict)


def per_task(scores: list[EpisodeScores]) -> dict[str, TaskNumbers]:
    """Each task's success rate, compliance rate and pooled model share over its trials."""
    grouped: dict[str, list[EpisodeScores]] = defaultdict(list)
    for s in scores:
        grouped[s.task_id or "?"].append(s)
    out = {}
    for task, runs in grouped.items():
        used = sum(a.used for s in runs for a in s.model_share.values())
        outputs = sum(a.model_outputs for s in runs for a in s.model_share.values())
        out[task] = TaskNumbers(
            success=sum(bool(s.success and s.success.success) for s in runs) / len(runs),
            compliance=sum(s.compliance.compliant for s in runs) / len(runs),
            model_share=used / outputs if outputs else None)
    return out


def sign_test(wins: int, losses: int) -> float:
    """One-sided p-value of at least ``wins`` successes in ``wins + losses`` fair coin flips."""
    n = wins + losses
    if n == 0:
        return 1.0
    return sum(comb(n, i) for i in range(wins, n + 1)) / 2**n


def _mean(xs: list[float]) -> float | None:
    return round(sum(xs) / len(xs), 4) if xs else None


def _paired(prod: dict[str, TaskNumbers], cand: dict[str, TaskNumbers], field: str
            ) -> dict[str, float | int | None]:
    pairs = [(getattr(prod[t], field), getattr(cand[t], field)) for t in prod if t in cand]
    pairs = [(a, b) for a, b in pairs if a is not None and b is not None]
    wins = sum(b > a for a, b in pairs)
    losses = sum(b < a for a, b in pairs)
    # p to two significant digits: 30 tasks up reads 9.3e-10, not 0.0.
    return {"production": _mean([a for a, _ in pairs]), "candidate": _mean([b for _, b in pairs]),
            "wins": wins, "losses": losses, "p": float(f"{sign_test(wins, losses):.2g}")}


def decide(production: list[EpisodeScores], candidate: list[EpisodeScores], *,
           alpha: float = 0.05) -> GateDecision:
    """Promote or reject ``candidate`` against ``production`` on the same tasks and trials."""
    prod, cand = per_task(production), per_task(candidate)
    tasks = sorted(set(prod) & set(cand))
    if not tasks:
        return GateDecision(promote=False, reason="no task was evaluated for both",
                            rule="no_tasks", alpha=alpha, tasks=0)
    prod = {t: prod[t] for t in tasks}
    cand = {t: cand[t] for t in tasks}
    success, share = _paired(prod, cand, "success"), _paired(prod, cand, "model_share")
    compliance = {"production": sum(p.compliance for p in prod.values()) / len(tasks),
                  "candidate": sum(c.compliance for c in cand.values()) / len(tasks)}
    made = dict(alpha=alpha, tasks=len(tasks), success=success, model_share=share,
                compliance=compliance)

    def decision(promote: bool, rule: str, reason: str) -> GateDecision:
        return GateDecision(promote=promote, rule=rule, reason=reason, **made)

    if compliance["candidate"] < compliance["production"]:
        return decision(False, "less_compliant", f"less compliant: {compliance['candidate']:.3f}"
                        f" < {compliance['production']:.3f}")
    if (success["candidate"] or 0) < (success["production"] or 0):
        return decision(False, "worse_success", f"worse on success: {success['candidate']} < "
                        f"{success['production']}")
    if success["p"] < alpha:
        return decision(True, "better_success", f"better on success ({success['wins']} tasks up,"
                        f" {success['losses']} down, p={success['p']})")
    if share["p"] < alpha:
        return decision(True, "better_model_share", "as successful and better on model share "
                        f"({share['wins']} tasks up, {share['losses']} down, p={share['p']})")
    if (share["candidate"] or 0) < (share["production"] or 0):
        return decision(False, "worse_model_share", "as successful but worse on model share: "
                        f"{share['candidate']} < {share['production']} ({share['wins']} tasks "
                        f"up, {share['losses']} down)")
    return decision(False, "noise", "not better by more than the noise (success "
                    f"p={success['p']}, model share p={share['p']}, alpha={alpha})")
