"""Evaluation: simulated customers, outcome scorers, reports. Ray-free, like the agents.

A simulated customer (scripted, or written by a model) plays a task's ``user_scenario``
against the dialogue service; the episode's transcript and backend are scored by stateless
functions; each episode becomes an ``EvaluatedDialogue`` (the input of ``wow-ray data
from-failures``); many episodes become a report. The Ray actors that run this at scale and
continuously are in ``evaluators/``::

    from wow_ray.evaluation import evaluate_split, local_target, build_report
    results = asyncio.run(evaluate_split(pack, pack.tasks_in("dev"), lambda: local_target(pack, None), trials=4))
    report = build_report([s for s, _ in results], scenario=pack.name, split="dev", trials=4, model="none")
"""

from wow_ray.evaluation.customer import Customer, CustomerTurn, ModelCustomer, ScriptedCustomer
from wow_ray.evaluation.episode import (
    BackendView,
    DialogueTarget,
    Episode,
    LocalTarget,
    run_episode,
)
from wow_ray.evaluation.judge import Judged, judge
from wow_ray.evaluation.live import score_live_sessions
from wow_ray.evaluation.report import (
    EvalReport,
    build_report,
    compare,
    compare_markdown,
    pass_hat_k,
    to_markdown,
    write_report,
)
from wow_ray.evaluation.run import evaluate_split, evaluate_task, local_target, make_customer
from wow_ray.evaluation.scorers import (
    AgentShare,
    Backend,
    gold_hash,
    score_claims,
    score_compliance,
    score_information,
    score_model_share,
    score_success,
    score_usage,
)
from wow_ray.evaluation.verdict import (
    EpisodeScores,
    evaluate_episode,
    evaluate_session,
    evaluated_dialogue,
)

__all__ = [
    "AgentShare",
    "Backend",
    "BackendView",
    "Customer",
    "CustomerTurn",
    "DialogueTarget",
    "Episode",
    "EpisodeScores",
    "EvalReport",
    "Judged",
    "LocalTarget",
    "ModelCustomer",
    "ScriptedCustomer",
    "build_report",
    "compare",
    "compare_markdown",
    "evaluate_episode",
    "evaluate_session",
    "evaluate_split",
    "evaluate_task",
    "evaluated_dialogue",
    "gold_hash",
    "judge",
    "local_target",
    "make_customer",
    "pass_hat_k",
    "run_episode",
    "score_claims",
    "score_compliance",
    "score_information",
    "score_live_sessions",
    "score_model_share",
    "score_success",
    "score_usage",
    "to_markdown",
    "write_report",
]
