"""The load script (benchmarks/bench_load.py) against a stand-in for the service on loopback:
a 429 with Retry-After is honoured and is not a failure, a 503's Retry-After on a session's
creation is honoured too, times to the first token and to the
end of the turn are measured, and a server that never finishes a reply cannot hold the run
past its deadline plus the grace period."""

from __future__ import annotations

import argparse
import asyncio
import itertools
import secrets
import socket
import threading
import time

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from benchmarks.bench_load import run

CREATE_RETRY_AFTER_S = 2  # longer than the 1 s a client waits when it reads none


def stand_in(hang: bool, creates: dict[str, list[float]]) -> FastAPI:
    """Answers each customer's first session creation with a 503 and its Retry-After (as the
    gateway does while its database is down), every fifth message with a 429."""
    app, calls = FastAPI(), itertools.count()

    @app.post("/v1/sessions", status_code=201)
    async def create(request: Request):
        tried = creates.setdefault(request.headers["x-customer-token"], [])
        tried.append(time.monotonic())
        if len(tried) == 1:
            return JSONResponse({"detail": "the sessions database is unavailable"}, 503,
                                headers={"Retry-After": str(CREATE_RETRY_AFTER_S)})
        return {"session_id": f"s{next(calls)}"}

    @app.post("/v1/sessions/{sid}/messages")
    async def message(sid: str):
        if next(calls) % 5 == 1:
            return JSONResponse({"detail": "slow down"}, 429, headers={"Retry-After": "0"})

        async def events():
            yield "event: step\ndata: {}\n\n"
            await asyncio.sleep(3600 if hang else 0.05)
            yield 'event: delta\ndata: {"text": "hi"}\n\n'
            await asyncio.sleep(0.05)
            yield 'event: done\ndata: {"reply": "hi"}\n\n'

        return StreamingResponse(events(), media_type="text/event-stream")

    return app


@pytest.fixture(params=[False, True], ids=["answering", "hanging"])
def service(request):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    creates: dict[str, list[float]] = {}
    server = uvicorn.Server(uvicorn.Config(stand_in(request.param, creates), port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", request.param, creates
    server.should_exit = True
    thread.join(10)


def test_throttling_is_honoured_and_the_run_is_bounded(service, tmp_path):
    url, hangs, creates = service
    secret = tmp_path / "secret"
    secret.write_text(secrets.token_urlsafe(48))
    # 6 s of load: long enough that every customer sends turns on a busy machine (at 1.8 s a
    # loaded run once sent none before its deadline). The bound proves the run stops by itself
    # against a server that would hold a reply for an hour; its slack is for a busy machine.
    args = argparse.Namespace(url=url, api_key="k", token_secret_file=str(secret), customers=4,
                              minutes=0.1, ramp_s=0.0, request_timeout_s=1.0, grace_s=3.0,
                              ray_address=None, sample_s=1.0, cooldown_s=0.0)
    started = time.monotonic()
    summary = asyncio.run(run(args))
    assert len(creates) == args.customers  # each customer created again only after the wait
    assert all(len(t) >= 2 and t[1] - t[0] >= CREATE_RETRY_AFTER_S for t in creates.values())
    assert time.monotonic() - started < args.minutes * 60 + args.grace_s + 60
    unavailable = summary["outcomes"].pop("unavailable")  # a 503 counts as a failure
    assert unavailable == args.customers
    if hangs:
        assert summary["turns"] == 0 and summary["failures"] > unavailable
        assert "ReadTimeout" in summary["failure_examples"][unavailable]
    else:
        assert summary["failures"] == unavailable, summary["failure_examples"]
        assert summary["throttled_429"] > 0 and summary["turns"] > 10
        assert summary["outcomes"] == {"done": summary["turns"],
                                       "throttled": summary["throttled_429"]}
        assert 0.04 < summary["ttft_s"]["p50"] < summary["turn_s"]["p50"]


def test_the_outage_harness_splits_answers_by_phase_and_finds_a_half_written_turn(tmp_path):
    """`load_store_outage.py`'s two judgements, on a store it did not write: answers counted
    before, during and after the outage; a session whose row version disagrees with its
    stored turns (a half-written turn) is reported, a consistent one is not."""
    from sqlalchemy import create_engine, text

    from benchmarks.load_store_outage import by_phase, stored_consistency
    from wow_ray.agents.local import new_session
    from wow_ray.agents.sessions import SessionStore
    from wow_ray.agents.transcript import TurnRecord

    phases = by_phase([(1, "done"), (11, "unavailable"), (12, "failed"), (19, "unavailable"),
                       (23, "done"), (24, "done")], down_at=10, up_at=20)
    assert phases == {"before": {"done": 1}, "during": {"unavailable": 2, "failed": 1},
                      "after": {"done": 2}, "first_answer_after_up_s": 3}

    url = f"sqlite:///{tmp_path / 'sessions.db'}"
    store = SessionStore(url)
    whole, torn = (new_session("food_delivery", user_id="U0214") for _ in range(2))
    for state in (whole, torn):
        store.create(state)
        for index in range(2):
            state, version = store.load(state.session_id)
            state.turns = index + 1
            store.save_turn(state, TurnRecord(index=index, customer="hi", reply="hello"), version)
    with create_engine(url).begin() as conn:  # a turn's row without its session's update
        conn.execute(text("INSERT INTO turns (session_id, idx, created_at, customer, reply, "
                          "record) SELECT session_id, 2, created_at, customer, reply, record "
                          "FROM turns WHERE session_id = :sid AND idx = 1"),
                     {"sid": torn.session_id})
    held = stored_consistency(url)
    assert (held["sessions"], held["turns"]) == (2, 5)
    assert held["inconsistent"] == {torn.session_id: {"version": 2, "indices": [0, 1, 2]}}
