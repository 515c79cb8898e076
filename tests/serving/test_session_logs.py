"""JSON log lines carry the session id: with our formatter and with Ray Serve's own JSON one."""

from __future__ import annotations

import asyncio
import io
import json
import logging

from wow_ray.serving.session_logs import (
    JsonLogFormatter,
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
    install_session_logging(logger_name)
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
