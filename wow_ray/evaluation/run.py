"""Evaluate a split in this process: the loop a Ray actor runs for one (task, trial).

``evaluate_task`` plays one trial and scores it; ``evaluate_split`` does a whole split with a
bounded number of episodes in flight (asyncio), for scripts and tests. The Ray job in
``evaluators/`` runs the same ``evaluate_task`` inside a pool of actors.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Literal

from wow_ray.agents.config import DialogueConfig
from wow_ray.agents.local import local_master
from wow_ray.data.failures import EvaluatedDialogue
from wow_ray.evaluation.customer import Customer, ModelCustomer, ScriptedCustomer
from wow_ray.evaluation.episode import DialogueTarget, LocalTarget, run_episode
from wow_ray.evaluation.verdict import EpisodeScores, evaluate_episode, evaluated_dialogue
from wow_ray.llm.chat import ChatClient
from wow_ray.scenario import ScenarioPack, Task

CustomerMode = Literal["scripted", "model"]


def make_customer(mode: CustomerMode, task: Task, pack: ScenarioPack, client: ChatClient | None,
                  *, max_turns: int = 8, model: str | None = None) -> Customer:
    if mode == "model":
        if client is None:
            raise ValueError("a model-played customer needs a chat client")
        return ModelCustomer(task, client, model=model, max_turns=max_turns)
    return ScriptedCustomer(task, pack, max_turns=max_turns)


def local_target(pack: ScenarioPack, client: ChatClient | None,
                 config: DialogueConfig | None = None) -> LocalTarget:
    """The agents in this process; ``client=None`` is the deterministic floor (no model)."""
    return LocalTarget(pack, local_master(pack, client, config))


async def evaluate_task(pack: ScenarioPack, task: Task, target: DialogueTarget, *, trial: int = 0,
                        customer: CustomerMode = "scripted", client: ChatClient | None = None,
                        judge: bool = False, max_turns: int = 8,
                        metadata: dict | None = None) -> tuple[EpisodeScores, EvaluatedDialogue]:
    """One trial of ``task``: played, scored, and wrapped as an evaluated dialogue."""
    player = make_customer(customer, task, pack, client, max_turns=max_turns)
    episode = await run_episode(task, target, player, trial=trial, metadata=metadata,
                                max_turns=max_turns + 2)
    scores = await evaluate_episode(pack, task, episode, judge_client=client if judge else None)
    return scores, evaluated_dialogue(episode, scores)


async def evaluate_split(pack: ScenarioPack, tasks: list[Task], make_target: Callable[[], DialogueTarget],
                         *, trials: int = 1, concurrency: int = 4,
                         on_episode: Callable[[int, int], Any] | None = None,
                         **kwargs) -> list[tuple[EpisodeScores, EvaluatedDialogue]]:
    """Every task x trial, at most ``concurrency`` at a time, in task order; ``on_episode(done,
    total)`` after each episode (a progress bar)."""
    gate = asyncio.Semaphore(concurrency)
    done, total = 0, len(tasks) * trials

    async def one(task: Task, trial: int):
        nonlocal done
        async with gate:
            result = await evaluate_task(pack, task, make_target(), trial=trial, **kwargs)
        done += 1
        if on_episode is not None:
            on_episode(done, total)
        return result

    return list(await asyncio.gather(*(one(t, k) for t in tasks for k in range(trials))))
