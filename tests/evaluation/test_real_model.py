"""One episode end to end against the real served model (vLLM on CPU behind Ray Serve)."""

from __future__ import annotations

import asyncio

import pytest

from wow_ray.evaluation import evaluate_task, local_target
from wow_ray.llm.client import AsyncOpenAIChatClient
from wow_ray.registry import Registry, resolve_model


@pytest.mark.slow
def test_an_episode_against_the_served_model(served_llm, embedded_storage, food_pack):
    base = resolve_model(Registry(embedded_storage), "smollm2-135m").name
    client = AsyncOpenAIChatClient(served_llm, model=base)
    task = next(t for t in food_pack.tasks if t.id == "fd-009")  # one short late-delivery task
    scores, item = asyncio.run(evaluate_task(food_pack, task, local_target(food_pack, client), max_turns=3))
    calls = [c for turn in item.transcript.turns for s in turn.steps for c in s.llm_calls]
    assert calls and all(c.model.startswith(base) for c in calls)  # the model was really called
    assert scores.usage.llm_calls == len(calls) and scores.usage.completion_tokens > 0
    assert scores.compliance.compliant and scores.model_share
    assert item.scores["success"] is not None
