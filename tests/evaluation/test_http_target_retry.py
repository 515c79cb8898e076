"""The evaluation's HTTP client (GatewayTarget) when a turn's answer is lost, against a
stand-in gateway on loopback that loses answers on purpose (the real one loses them only when
a replica, a node or the sessions database dies: tests/serving, tests/cluster). A turn stored
before its answer was lost is read back from the transcript, never sent twice; a turn not
stored is sent again once; a second loss is an error naming the status."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from wow_ray.evaluation import http as target_http
from wow_ray.evaluation.http import GatewayTarget, TurnLost
from wow_ray.scenario import load_pack


async def _cut():
    raise ConnectionResetError("the replica died")
    yield b""  # an async generator that never yields


def stand_in(lose: list[str], lose_calls: list[str]) -> tuple[FastAPI, list[str]]:
    """A gateway whose next answers are lost as ``lose`` says: 'after-store' (the turn is
    stored, then a 503), 'before-store' (a 503, nothing stored), 'drop' (the connection
    closed after storing); then answered normally. ``lose_calls`` names other requests
    whose first answer is lost ('create': a session's creation, answered 500 as Serve's proxy
    does when the replica died under it; 'transcript': a read, answered 502)."""
    app, received, turns = FastAPI(), [], []

    def lost(call: str) -> JSONResponse | None:
        if call in lose_calls:
            lose_calls.remove(call)
            return JSONResponse({"detail": "lost"}, 500 if call == "create" else 502)
        return None

    @app.post("/v1/sessions", status_code=201)
    async def create():
        return lost("create") or {"session_id": "s1"}

    @app.post("/v1/sessions/s1/messages")
    async def message(request: Request):
        text = (await request.json())["content"]
        received.append(text)
        how = lose.pop(0) if lose else "answer"
        if how != "before-store":
            turns.append({"customer": text, "reply": f"re: {text}"})
        if how in ("after-store", "before-store"):
            return JSONResponse({"detail": "unavailable"}, 503, headers={"Retry-After": "0"})
        if how == "drop":
            return StreamingResponse(_cut())  # the answer starts, then the connection is cut
        return {"reply": f"re: {text}", "status": "active"}

    @app.get("/v1/sessions/s1/transcript")
    async def transcript():
        return lost("transcript") or {"turns": turns, "outcome": {"status": "active"}}

    return app, received


@pytest.fixture
def gateway(monkeypatch):
    monkeypatch.setattr(target_http, "RETRY_AFTER_S", 0.05)
    servers = []

    def start(lose: list[str], lose_calls: list[str] | None = None) -> tuple[str, list[str]]:
        app, received = stand_in(lose, lose_calls or [])
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="critical"))
        threading.Thread(target=server.run, daemon=True).start()
        while not server.started:
            time.sleep(0.05)
        servers.append(server)
        return f"http://127.0.0.1:{port}", received

    yield start
    for server in servers:
        server.should_exit = True


def talk(url: str, *texts: str) -> list[str]:
    async def go() -> list[str]:
        task = next(t for t in load_pack("food_delivery").tasks if t.id == "fd-009")
        target = GatewayTarget(url, "key")
        await target.open(task, "ignored", {})
        return [(await target.send(text, [])).reply for text in texts]

    return asyncio.run(go())


@pytest.mark.parametrize("loss", ["after-store", "drop"])
def test_a_turn_stored_before_its_answer_was_lost_is_read_back_not_sent_twice(gateway, loss):
    url, received = gateway([loss])
    assert talk(url, "my order is late", "thanks") == ["re: my order is late", "re: thanks"]
    assert received == ["my order is late", "thanks"]


def test_a_turn_lost_before_it_was_stored_is_sent_once_more(gateway):
    url, received = gateway(["before-store"])
    assert talk(url, "my order is late") == ["re: my order is late"]
    assert received == ["my order is late", "my order is late"]


def test_a_session_create_or_a_read_whose_answer_was_lost_is_sent_once_more(gateway):
    """As when the gateway replica answering them died with its node: the episode goes on."""
    url, received = gateway(["after-store"], ["create", "transcript"])
    assert talk(url, "my order is late", "thanks") == ["re: my order is late", "re: thanks"]
    assert received == ["my order is late", "thanks"]  # read back, not sent twice


def test_a_second_loss_is_an_error_naming_the_status(gateway):
    url, _ = gateway(["before-store", "before-store"])
    with pytest.raises(TurnLost, match="503"):
        talk(url, "my order is late")
