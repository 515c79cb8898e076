"""A pool of simulator actors: a split's tasks x k trials in parallel against one service.

Each :class:`SimulatorActor` holds a pack, a dialogue target (the agents in-process with a
chat client to the served LLM, or the gateway over HTTP) and plays one episode per call with
``wow_ray.evaluation.evaluate_task``. :func:`run_pool` keeps at most ``actors x in_flight``
episodes outstanding (back-pressure: the service sees a bounded load, whatever the split's
size), gives each to the least busy actor, and shows a progress bar.

The actors are spread over the nodes that fit them (``actor_resources`` narrows those), so a
lost node takes a share of them; Ray restarts each one that dies and hands it again the
episode it held. Such an episode is reported through ``on_replayed``: it was played by an
incarnation that started after the episode was handed out (both read on the wall clock; a skew
between two nodes' clocks larger than an actor's restart, seconds, would blur that). One handed
to an actor in the moment between its death and Ray noticing it counts too.
"""

from __future__ import annotations

import asyncio
import time
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
    actor_resources: dict[str, float] = Field(
        default_factory=dict, description="Custom resources each simulator actor needs: it runs only on "
        "nodes offering them (e.g. {'eval_host': 0.01}).")


@ray.remote(num_cpus=0.25)
class SimulatorActor:
    """Plays episodes against one service; several may run at once inside it (async actor)."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = PoolConfig.model_validate(config)
        self.pack = load_pack(self.config.scenario)
        self.tasks = {t.id: t for t in self.pack.tasks}
        model = self.config.model
        self.client = None if model in (None, "none") else AsyncOpenAIChatClient(self.config.llm_url, model=model)
        # This incarnation: Ray runs __init__ again when it restarts an actor that died.
        self.born = time.time()
        self.restarted = ray.get_runtime_context().was_current_actor_reconstructed

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

    async def play(self, task_id: str, trial: int, handed_out_at: float = 0.0) -> tuple[dict, dict, dict]:
        """The episode's scores and evaluated dialogue, and where it was played: the node, and
        whether this is a replay (this incarnation began after the episode was handed out)."""
        node = ray.util.get_node_ip_address()
        scores, item = await evaluate_task(
            self.pack, self.tasks[task_id], self._target(), trial=trial, customer=self.config.customer,
            client=self.client, judge=self.config.judge, max_turns=self.config.max_turns,
            metadata={"model": self.config.model or "none", "simulator_node": node})
        played = {"node": node,
                  "replayed": bool(self.restarted and handed_out_at and self.born > handed_out_at)}
        return scores.model_dump(mode="json"), item.model_dump(mode="json"), played


def run_pool(config: PoolConfig, jobs: list[tuple[str, int]], *, actors: int = 2, in_flight: int = 1,
             progress: bool = True, on_done: Callable[[int, int], None] | None = None,
             on_replayed: Callable[[str, int, str], None] | None = None
             ) -> list[tuple[EpisodeScores, EvaluatedDialogue]]:
    """Every (task id, trial) of ``jobs`` played by ``actors`` actors; results in ``jobs`` order.
    ``on_replayed(task_id, trial, node)`` is called for each episode played again because
    its actor died (``node``: where the replay ran)."""
    # An actor that dies (its node lost, its process killed) is restarted by Ray and its
    # episodes are played again from the start: an episode is a fresh session, so a retry
    # replaces the lost one and the report still holds every (task, trial).
    options = {"max_concurrency": max(in_flight, 1), "max_restarts": ACTOR_RETRIES,
               "max_task_retries": ACTOR_RETRIES, "scheduling_strategy": "SPREAD"}
    if config.actor_resources:
        options["resources"] = config.actor_resources
    pool = [SimulatorActor.options(**options).remote(config.model_dump()) for _ in range(actors)]
    limit = actors * max(in_flight, 1)
    results: dict[int, tuple[dict, dict]] = {}
    pending: dict[Any, tuple[int, int]] = {}  # episode ref -> (job index, actor index)
    bar = _bar(len(jobs), config) if progress else None
    queue = list(enumerate(jobs))
    try:
        while queue or pending:
            while queue and len(pending) < limit:  # back-pressure: a bounded number outstanding
                i, (task_id, trial) = queue.pop(0)
                busy = [sum(a == k for _, a in pending.values()) for k in range(actors)]
                k = busy.index(min(busy))  # the least busy actor
                pending[pool[k].play.remote(task_id, trial, time.time())] = (i, k)
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                i, _ = pending.pop(ref)
                scores, item, played = ray.get(ref)
                results[i] = (scores, item)
                if played["replayed"] and on_replayed is not None:
                    on_replayed(*jobs[i], played["node"])
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
