"""A pool of simulator actors: a split's tasks x k trials in parallel against one service.

Each :class:`SimulatorActor` holds a pack, a dialogue target (the agents in-process with a
chat client to the served LLM, or the gateway over HTTP) and plays one episode per call with
``wow_ray.evaluation.evaluate_task``. :func:`run_pool` keeps at most ``actors x in_flight``
episodes outstanding (back-pressure: the service sees a bounded load, whatever the split's
size) and shows a progress bar.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import ray
from pydantic import BaseModel, Field

from wow_ray.data.failures import EvaluatedDialogue
from wow_ray.evaluation import EpisodeScores, evaluate_task, local_target
from wow_ray.evaluation.http import GatewayTarget
from wow_ray.llm.client import AsyncOpenAIChatClient
from wow_ray.scenario import load_pack

ACTOR_RETRIES = 3  # restarts of each simulator actor, and retries of an episode it was playing


class PoolConfig(BaseModel):
    """What every simulator actor of a pool needs."""

    scenario: str = "food_delivery"
    model: str | None = Field(None, description="Model id to judge; None or 'none': no model (the floor).")
    llm_url: str = Field("http://127.0.0.1:8000", description="OpenAI-compatible URL of the served LLM.")
    customer: str = Field("scripted", description="scripted, or model (the LLM plays the customer).")
    judge: bool = Field(False, description="Also run the model judge (reported apart).")
    max_turns: int = 8
    gateway: dict[str, Any] | None = Field(
        None, description="Talk to the gateway over HTTP instead: {url, api_key, operator_key, jwt_secret}.")


@ray.remote(num_cpus=0.25)
class SimulatorActor:
    """Plays episodes against one service; several may run at once inside it (async actor)."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = PoolConfig.model_validate(config)
        self.pack = load_pack(self.config.scenario)
        self.tasks = {t.id: t for t in self.pack.tasks}
        model = self.config.model
        self.client = None if model in (None, "none") else AsyncOpenAIChatClient(self.config.llm_url, model=model)

    def _target(self):
        if self.config.gateway is not None:
            gateway = dict(self.config.gateway)
            secret = gateway.pop("jwt_secret", None)
            if secret is not None:
                from wow_ray.serving.access import mint_customer_token  # issue 14's contract

                gateway["customer_token"] = lambda user, verified: mint_customer_token(
                    secret, user, verified=verified)
            return GatewayTarget(**gateway)
        return local_target(self.pack, self.client)

    async def play(self, task_id: str, trial: int) -> tuple[dict, dict]:
        scores, item = await evaluate_task(
            self.pack, self.tasks[task_id], self._target(), trial=trial, customer=self.config.customer,
            client=self.client, judge=self.config.judge, max_turns=self.config.max_turns,
            metadata={"model": self.config.model or "none"})
        return scores.model_dump(mode="json"), item.model_dump(mode="json")


def run_pool(config: PoolConfig, jobs: list[tuple[str, int]], *, actors: int = 2, in_flight: int = 1,
             progress: bool = True, on_done: Callable[[int, int], None] | None = None
             ) -> list[tuple[EpisodeScores, EvaluatedDialogue]]:
    """Every (task id, trial) of ``jobs`` played by ``actors`` actors; results in ``jobs`` order."""
    # An actor that dies (its node lost, its process killed) is restarted by Ray and its
    # episodes are played again from the start: an episode is a fresh session, so a retry
    # replaces the lost one and the report still holds every (task, trial).
    pool = [SimulatorActor.options(max_concurrency=max(in_flight, 1), max_restarts=ACTOR_RETRIES,
                                   max_task_retries=ACTOR_RETRIES).remote(config.model_dump())
            for _ in range(actors)]
    limit = actors * max(in_flight, 1)
    results: dict[int, tuple[dict, dict]] = {}
    pending: dict[Any, int] = {}
    bar = _bar(len(jobs), config) if progress else None
    queue = list(enumerate(jobs))
    try:
        while queue or pending:
            while queue and len(pending) < limit:  # back-pressure: a bounded number outstanding
                i, (task_id, trial) = queue.pop(0)
                pending[pool[i % actors].play.remote(task_id, trial)] = i
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                results[pending.pop(ref)] = ray.get(ref)
                if bar is not None:
                    bar.update(1)
                if on_done is not None:
                    on_done(len(results), len(jobs))
    finally:
        if bar is not None:
            bar.close()
        for actor in pool:
            ray.kill(actor)
    return [(EpisodeScores.model_validate(results[i][0]), EvaluatedDialogue.model_validate(results[i][1]))
            for i in range(len(jobs))]


def _bar(total: int, config: PoolConfig):
    from tqdm import tqdm

    return tqdm(total=total, desc=f"eval {config.scenario} model={config.model or 'none'}", unit="episode")


async def run_pool_async(config: PoolConfig, jobs: list[tuple[str, int]], **kwargs: Any):
    """``run_pool`` from async code (the continuous evaluator), off the event loop."""
    return await asyncio.to_thread(run_pool, config, jobs, **kwargs)
