"""An evaluation episode over HTTP, through the served gateway (identity and access included):
the simulated customer's session is stored as simulated, judged by the backend's state as the
operator scope reads it, and never exported as traffic."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import DIALOGUE_OPERATOR_KEY, DIALOGUE_TEST_KEY, DIALOGUE_TOKEN_SECRET
from wow_ray.agents.sessions import SessionStore
from wow_ray.evaluation import evaluate_task
from wow_ray.evaluation.http import GatewayTarget
from wow_ray.serving.access import mint_customer_token


@pytest.mark.slow
def test_an_episode_through_the_gateway(dialogue_app, food_pack):
    target = GatewayTarget(
        dialogue_app.url, DIALOGUE_TEST_KEY, DIALOGUE_OPERATOR_KEY,
        customer_token=lambda user, verified: mint_customer_token(
            DIALOGUE_TOKEN_SECRET, user, verified=verified))
    task = next(t for t in food_pack.tasks if t.id == "fd-009")  # one short late-delivery task
    scores, item = asyncio.run(evaluate_task(food_pack, task, target, max_turns=3))
    assert item.transcript.turns and item.simulated
    assert scores.compliance.compliant
    store = SessionStore(dialogue_app.database_url)
    assert item.transcript.session_id in store.session_ids(simulated=True)
    assert item.transcript.session_id not in store.session_ids(simulated=False)
