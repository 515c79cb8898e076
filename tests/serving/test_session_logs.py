"""JSON log lines carry the session id: with our formatter and with Ray Serve's own JSON one."""

from __future__ import annotations

import asyncio
import io
import json
import logging

from wow_ray.serving.session_logs import (
    JsonLogFormatter,
    in_session,
    install_session_logging,
    session_context,
)


def capture(logger_name: str, formatter: logging.Formatter) -> io.StringIO:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    logger = logging.getLogger(logger_name)
    logger.handlers = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    install_session_logging()
    return stream


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_records_inside_a_session_carry_its_id_and_others_do_not():
    stream = capture("test.sessions", JsonLogFormatter())
    log = logging.getLogger("test.sessions")
    with session_context("s-123"):
        log.info("turn %d saved", 4, extra={"turn": 4})
        logging.getLogger("test.sessions.child").warning("from a child logger")
    log.info("between sessions")
    first, child, outside = lines(stream)
    assert first["message"] == "turn 4 saved" and first["session_id"] == "s-123"
    assert first["turn"] == 4 and first["levelname"] == "INFO"
    assert child["session_id"] == "s-123" and child["name"] == "test.sessions.child"
    assert "session_id" not in outside


def test_concurrent_requests_keep_their_own_session_ids():
    stream = capture("test.concurrent", JsonLogFormatter())
    log = logging.getLogger("test.concurrent")

    async def serve(session_id: str) -> None:
        with session_context(session_id):
            await asyncio.sleep(0.01)  # the other request runs meanwhile
            log.info("reply for %s", session_id)

    async def both() -> None:
        await asyncio.gather(serve("a"), serve("b"))

    asyncio.run(both())
    assert {(r["message"], r["session_id"]) for r in lines(stream)} == {
        ("reply for a", "a"), ("reply for b", "b")}


def test_serves_own_json_encoding_writes_the_session_id():
    """What `logging_config: {encoding: JSON}` uses in replicas: Ray's JSON formatter."""
    from ray._common.formatters import JSONFormatter

    stream = capture("test.serve_json", JSONFormatter())
    with session_context("s-9"):
        logging.getLogger("test.serve_json").info("hello")
    (record,) = lines(stream)
    assert record["session_id"] == "s-9" and record["message"] == "hello"


def test_a_streamed_turns_steps_carry_the_session_id_across_tasks():
    """As a streamed turn runs in Starlette: the route handler takes the first event, the
    response's own task the rest; every record logged while an event is made carries the id,
    and the turn's cleanup runs when the client leaves early."""
    stream = capture("test.streamed", JsonLogFormatter())
    log = logging.getLogger("test.streamed")
    cleaned = []

    async def turn_events():
        try:
            for step in range(3):
                log.info("step %d", step)
                await asyncio.sleep(0)
                yield step
        finally:
            log.info("cleanup")
            cleaned.append(True)

    async def serve() -> list[int]:
        events = in_session("s-77", turn_events())
        first = await anext(events)  # the handler's task

        async def rest() -> list[int]:
            out = [first]
            async for event in events:
                out.append(event)
                if len(out) == 2:
                    break  # the client went away
            await events.aclose()
            log.info("after the stream")
            return out

        return await asyncio.create_task(rest())  # the response's task

    assert asyncio.run(serve()) == [0, 1]
    records = lines(stream)
    assert [(r["message"], r.get("session_id")) for r in records] == [
        ("step 0", "s-77"), ("step 1", "s-77"), ("cleanup", "s-77"), ("after the stream", None)]
    assert cleaned == [True]


def test_the_id_survives_serve_replacing_a_replicas_handlers():
    """Serve clears a replica's handlers and makes new ones when it reconfigures the replica
    (a redeploy); records made after that still carry the session id."""
    install_session_logging()
    logger = logging.getLogger("test.replaced")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.handlers.clear()  # what Serve's configure_component_logger does
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLogFormatter())
    logger.addHandler(handler)
    with session_context("s-5"):
        logging.getLogger("test.replaced.child").info("turn 0 saved", extra={"turn": 0})
    (record,) = lines(stream)
    assert (record["session_id"], record["turn"]) == ("s-5", 0)
