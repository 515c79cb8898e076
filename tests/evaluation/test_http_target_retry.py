"""The evaluation's HTTP client (GatewayTarget) when a turn's answer is lost, against a
stand-in gateway on loopback that loses answers on purpose (the real one loses them only when
a replica, a node or the sessions database dies: tests/serving, tests/cluster). A turn stored
before its answer was lost is read back from the transcript, never sent twice; a turn not
stored is sent again once; a second loss is an error naming the status. The same for streamed
turns, whose answer can also be lost mid-stream (an ``error`` event, a cut connection)."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time

import pytest
import uvicorn
from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse

from wow_ray.evaluation import http as target_http
from wow_ray.evaluation.http import GatewayTarget, TurnLost
from wow_ray.scenario import load_pack


async def _cut():
    raise ConnectionResetError("the replica died")
    yield b""  # an async generator that never yields


def _sse(event: str, data: dict) -> str:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"


async def _streamed(text: str, turn: int, how: str):
    """A streamed answer: 'stream-error' ends with a 503 ``error`` event (nothing stored),
    'stream-cut' is cut after its first delta (the turn stored), 'diverge' streams text its
    ``done`` reply does not begin with; else the reply's deltas, then ``done``."""
    yield _sse("delta", {"text": "sorry, " if how == "diverge" else "re: "})
    if how == "stream-error":
        yield _sse("error", {"status": 503, "detail": "the sessions database is unavailable"})
        return
    if how == "stream-cut":
        raise ConnectionResetError("the replica died")
    if how != "diverge":
        yield _sse("delta", {"text": text})
    yield _sse("done", {"session_id": "s1", "turn": turn, "reply": f"re: {text}",
                        "status": "active", "latency_s": 0.1})


def stand_in(lose: list[str], lose_calls: list[str]) -> tuple[FastAPI, list[str]]:
    """A gateway whose next answers are lost as ``lose`` says: 'after-store' (the turn is
    stored, then a 503), 'before-store' (a 503, nothing stored), 'drop' (the connection
    closed after storing), and for streamed turns the ways of ``_streamed``; then answered
    normally. ``lose_calls`` names other requests whose first answer is lost ('create': a
    session's creation, answered 500 as Serve's proxy does when the replica died under it;
    'transcript': a read, answered 502)."""
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
    async def message(request: Request, stream: bool = Query(False)):
        text = (await request.json())["content"]
        received.append(text)
        how = lose.pop(0) if lose else "answer"
        if how not in ("before-store", "stream-error"):
            turns.append({"customer": text, "reply": f"re: {text}"})
        if stream:
            return StreamingResponse(_streamed(text, len(turns) - 1, how),
                                     media_type="text/event-stream")
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


def talk(url: str, *texts: str, stream: bool = False) -> list[str]:
    return [reply.reply for reply in talk_replies(url, *texts, stream=stream)[0]]


def talk_replies(url: str, *texts: str, stream: bool = False) -> tuple[list, GatewayTarget]:
    async def go() -> tuple[list, GatewayTarget]:
        task = next(t for t in load_pack("food_delivery").tasks if t.id == "fd-009")
        target = GatewayTarget(url, "key", stream=stream)
        await target.open(task, "ignored", {})
        return [await target.send(text, []) for text in texts], target

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


@pytest.mark.parametrize(("loss", "sent", "read_back"), [
    ("stream-cut", ["my order is late", "thanks"], 1),  # stored: read back
    ("stream-error", ["my order is late", "my order is late", "thanks"], 0)])  # sent again
def test_a_streamed_turn_lost_mid_stream_is_read_back_or_sent_once_more(gateway, loss, sent,
                                                                          read_back):
    url, received = gateway([loss])
    replies, target = talk_replies(url, "my order is late", "thanks", stream=True)
    assert [r.reply for r in replies] == ["re: my order is late", "re: thanks"]
    assert received == sent
    assert (target.lost, target.from_transcript) == (1, read_back)
    assert [r.withdrawn for r in replies] == [0, 0]


def test_a_streamed_reply_that_departs_from_the_text_shown_counts_as_withdrawn(gateway):
    url, _ = gateway(["diverge"])
    replies, target = talk_replies(url, "my order is late", "thanks", stream=True)
    assert [(r.reply, r.withdrawn) for r in replies] == [("re: my order is late", 1),
                                                         ("re: thanks", 0)]
    assert target.lost == 0


def test_a_streamed_turn_lost_twice_is_an_error_naming_the_status(gateway):
    url, _ = gateway(["stream-error", "stream-error"])
    with pytest.raises(TurnLost, match="503 in the stream"):
        talk(url, "my order is late", stream=True)
