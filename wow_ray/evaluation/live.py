"""Scoring a sample of live sessions: no task, so no gold; what can be judged from the trace
and the backend alone (compliance, claim consistency, model share, usage; tone with a judge).

One function for both callers that need it: the continuous evaluator's schedule and the loop's
``score_traffic`` step. Simulated sessions are never sampled.
"""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

from wow_ray.agents.sessions import SessionStore
from wow_ray.evaluation.report import EvalReport, build_report
from wow_ray.evaluation.verdict import evaluate_session
from wow_ray.llm.chat import ChatClient
from wow_ray.scenario import ScenarioPack


async def score_live_sessions(pack: ScenarioPack, database_url: str, *, sample: int = 20,
                              window_h: float = 24.0, judge_client: ChatClient | None = None,
                              meta: dict[str, Any] | None = None) -> EvalReport | None:
    """A report over up to ``sample`` live sessions of the last ``window_h`` hours, or None
    when there are none. The sample is seeded by the candidates' count, so a rerun over the
    same sessions scores the same ones."""
    store = SessionStore(database_url)
    try:
        ids = store.session_ids(since=timedelta(hours=window_h), limit=500, simulated=False)
        chosen = random.Random(len(ids)).sample(ids, min(sample, len(ids)))
        if not chosen:
            return None
        scores = [await evaluate_session(pack, store.transcript(i), judge_client=judge_client)
                  for i in chosen]
    finally:
        store.engine.dispose()
    return build_report(scores, scenario=pack.name, split=None, model="live",
                        meta={"sessions": chosen, **(meta or {})})
