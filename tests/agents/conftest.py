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


class PostgresServer:
    """A throw-away PostgreSQL server (the machine's own binaries) that a test may stop and
    start again, as an outage would."""

    def __init__(self, initdb: str, pg_ctl: str) -> None:
        import os
        import shutil
        import socket
        import subprocess
        import tempfile

        self.pg_ctl, self.as_user = pg_ctl, []
        self.root = tempfile.mkdtemp(prefix="wow-pg-")
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            self.as_user = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.root, "postgres")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.data = f"{self.root}/data"
        subprocess.run([*self.as_user, initdb, "-D", self.data, "-A", "trust", "-U", "postgres",
                        "--no-sync"], check=True, capture_output=True)
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}"

    def start(self) -> None:
        import subprocess

        subprocess.run([*self.as_user, self.pg_ctl, "-D", self.data, "-l", f"{self.root}/log", "-w",
                        "-o", f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                        "-c fsync=off", "start"], check=True, capture_output=True)

    def stop(self) -> None:
        import subprocess

        subprocess.run([*self.as_user, self.pg_ctl, "-D", self.data, "-m", "immediate", "stop"],
                       capture_output=True)


@pytest.fixture(scope="session")
def postgres():
    """The session's PostgreSQL server (see PostgresServer), or a skip if there is none.

    Started as the ``postgres`` user when the tests run as root, on a free loopback port,
    trusting local connections; stopped and deleted at the end.
    """
    import importlib.util
    import shutil
    import subprocess

    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if not (initdb and pg_ctl) or importlib.util.find_spec("psycopg") is None:
        pytest.skip("needs PostgreSQL's initdb/pg_ctl on PATH and psycopg (the postgres extra)")
    try:
        server = PostgresServer(initdb, pg_ctl)
        server.start()
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"could not start PostgreSQL: {exc.stderr.decode(errors='replace')[-300:]}")
    yield server
    server.stop()
    shutil.rmtree(server.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server(postgres) -> str:
    """The URL of the session's PostgreSQL server."""
    return postgres.url


@pytest.fixture
def postgres_url(postgres_server):
    """A new, empty database on the test server."""
    import uuid

    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server.replace("+psycopg", "") + "/postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return f"{postgres_server}/{name}"
