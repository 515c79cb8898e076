"""Fixtures for the agent tests that run without Ray: packs, sessions, scripted models."""

from __future__ import annotations

import asyncio

import pytest

from benchmarks.postgres_server import PostgresServer, postgres_binaries
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


@pytest.fixture(scope="session")
def postgres():
    """The session's PostgreSQL server (see PostgresServer), or a skip if there is none.

    Started as the ``postgres`` user when the tests run as root, on a free loopback port,
    trusting local connections; stopped and deleted at the end.
    """
    import importlib.util
    import subprocess

    binaries = postgres_binaries()
    if binaries is None or importlib.util.find_spec("psycopg") is None:
        pytest.skip("needs PostgreSQL's initdb/pg_ctl (the postgresql package) and psycopg "
                    "(the postgres extra)")
    try:
        server = PostgresServer(*binaries)
        server.start()
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"could not start PostgreSQL: {exc.stderr.decode(errors='replace')[-300:]}")
    yield server
    server.remove()


@pytest.fixture(scope="session")
def postgres_server(postgres) -> str:
    """The URL of the session's PostgreSQL server."""
    return postgres.url


@pytest.fixture
def postgres_url(postgres):
    """A new, empty database on the test server."""
    import uuid

    return postgres.create_database(f"t_{uuid.uuid4().hex[:12]}")
