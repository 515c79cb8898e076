"""Every scorer on one episode, and the ``EvaluatedDialogue`` it becomes.

``evaluate_episode`` runs the deterministic scorers (and the judge, if given a client) and
returns :class:`EpisodeScores`; ``evaluated_dialogue`` wraps the transcript, the task and the
scores in the format ``wow-ray data from-failures`` reads. ``evaluate_session`` scores a live
session, which has no task: compliance, claims, model share, usage and the judge's tone.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from wow_ray.agents.transcript import Transcript
from wow_ray.data.failures import EVALUATED_DIALOGUE_VERSION, EvaluatedDialogue
from wow_ray.evaluation.episode import BackendView, Episode
from wow_ray.evaluation.judge import Judged, judge
from wow_ray.evaluation.scorers import (
    AgentShare,
    Backend,
    Claims,
    Compliance,
    Success,
    Usage,
    score_claims,
    score_compliance,
    score_model_share,
    score_success,
    score_usage,
)
from wow_ray.llm.chat import ChatClient
from wow_ray.scenario import DialogueState, ScenarioPack, Task, ToolCall


class EpisodeScores(BaseModel):
    """All scores of one dialogue; ``success`` is None for a live session (no gold)."""

    model_config = ConfigDict(extra="forbid")

    task_id: str | None = None
    trial: int | None = None
    intents: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    signal: str | None = None
    success: Success | None = None
    compliance: Compliance
    claims: Claims
    model_share: dict[str, AgentShare] = Field(default_factory=dict)
    usage: Usage
    withdrawn: int = 0
    customer_s: float = 0.0
    wall_s: float = 0.0
    judged: Judged | None = Field(None, description="Model-judged; reported apart.")


async def evaluate_episode(pack: ScenarioPack, task: Task, episode: Episode, *,
                           judge_client: ChatClient | None = None,
                           judge_model: str | None = None) -> EpisodeScores:
    """Every scorer on ``episode`` of ``task``."""
    backend = Backend(pack=pack, start=episode.start, view=episode.backend)
    t = episode.transcript
    scores = EpisodeScores(
        task_id=task.id, trial=episode.trial, intents=task.intents, tags=list(task.tags),
        signal=episode.signal, success=score_success(task, t, backend),
        compliance=score_compliance(task, t, backend), claims=score_claims(task, t, backend),
        model_share=score_model_share(task, t, backend), usage=score_usage(task, t, backend),
        withdrawn=episode.withdrawn, customer_s=episode.customer_s, wall_s=episode.wall_s)
    if judge_client is not None:
        scores.judged = await judge(task.evaluation_criteria.nl_assertions, t, judge_client, judge_model)
    return scores


async def evaluate_session(pack: ScenarioPack, transcript: Transcript, view: BackendView | None = None,
                           *, judge_client: ChatClient | None = None,
                           judge_model: str | None = None) -> EpisodeScores:
    """A live session's scores without gold: compliance, claims, model share, usage, tone."""
    from wow_ray.scenario import replay

    start = DialogueState(user_id=transcript.user_id, identity_verified=transcript.identity_verified)
    if view is None:
        actions = [ToolCall.model_validate(a) for a in transcript.actions]  # stored as dicts
        result = replay(pack, start, actions, check=False)
        view = BackendView(state_hash=result.state_hash, diff=result.diff)
    backend = Backend(pack=pack, start=start, view=view)
    intents = [i for i in dict.fromkeys(t.intent for t in transcript.turns) if i]
    scores = EpisodeScores(
        intents=intents, compliance=score_compliance(None, transcript, backend),
        claims=score_claims(None, transcript, backend),
        model_share=score_model_share(None, transcript, backend),
        usage=score_usage(None, transcript, backend))
    if judge_client is not None:
        scores.judged = await judge([], transcript, judge_client, judge_model)
    return scores


def evaluated_dialogue(episode: Episode, scores: EpisodeScores) -> EvaluatedDialogue:
    """The episode as ``wow-ray data from-failures`` reads it (version 2)."""
    notes = [*(scores.success.notes if scores.success else []), *scores.compliance.violations,
             *scores.compliance.hidden, *scores.claims.findings]
    return EvaluatedDialogue(
        schema_version=EVALUATED_DIALOGUE_VERSION, transcript=episode.transcript,
        task_id=episode.task_id, trial=episode.trial, simulated=True,
        success=bool(scores.success and scores.success.success),
        reward=scores.success.reward if scores.success else None, notes=notes,
        scores=scores.model_dump(mode="json"))
