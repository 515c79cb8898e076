"""Fixtures for the agent tests that run without Ray: packs, sessions, scripted models."""

from __future__ import annotations

import asyncio

import pytest

from wow_ray.agents.local import local_master, new_session
from wow_ray.scenario import load_pack


@pytest.fixture(scope="module")
def pack():
    """The food_delivery pack (read-only: tests that change rules load their own)."""
    return load_pack("food_delivery")


def run(coro):
    return asyncio.run(coro)


def talk(master, state, *messages, attachments=()):
    """Send ``messages`` in turn; return the final state and every turn record."""
    turns = []
    for message in messages:
        outcome = run(master.turn(state, message, list(attachments)))
        state = outcome.state
        turns.append(outcome.turn)
    return state, turns


@pytest.fixture
def session():
    def make(user_id="U0061", verified=True, evidence=()):
        return new_session("food_delivery", user_id=user_id, identity_verified=verified,
                           evidence=list(evidence))
    return make


@pytest.fixture
def no_model_master(pack):
    """The master with no model at all: every agent on its deterministic path."""
    return local_master(pack, None)
