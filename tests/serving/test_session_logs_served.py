"""The served gateway's JSON log lines name the session of each saved turn, plain or streamed
(the app deployed with `logging_config: {encoding: JSON}`, as docs/operations.md says)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def _gateway_lines() -> list[dict]:
    """Every JSON line of the Gateway replicas' Serve log files."""
    from ray._private.worker import _global_node

    lines = []
    for path in Path(_global_node.get_logs_dir_path(), "serve").glob("replica_*Gateway*.log"):
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                lines.append(json.loads(line))
    return lines


def test_the_log_line_of_each_saved_turn_names_its_session_plain_or_streamed(dialogue_app):
    from tests.conftest import DIALOGUE_TEST_KEY, DIALOGUE_TOKEN_SECRET
    from wow_ray.evaluation.http import GatewayTarget
    from wow_ray.serving.access import mint_customer_token

    async def one_session(stream: bool) -> str:
        target = GatewayTarget(dialogue_app.url, DIALOGUE_TEST_KEY, stream=stream,
                               customer_token=lambda user, verified: mint_customer_token(
                                   DIALOGUE_TOKEN_SECRET, user, verified=verified))
        await target.open_session("U0001", True, {})
        reply = await target.send("What are your delivery hours?", [])
        assert reply.reply and reply.withdrawn == 0
        await target.http.aclose()
        return target.session_id

    plain, streamed = asyncio.run(one_session(False)), asyncio.run(one_session(True))
    deadline = time.monotonic() + 30  # Serve flushes its log files on its own schedule
    while time.monotonic() < deadline:
        saved = {(line.get("session_id"), line.get("turn")) for line in _gateway_lines()
                 if line.get("message", "").startswith("turn 0 saved")}
        if {(plain, 0), (streamed, 0)} <= saved:
            break
        time.sleep(1.0)
    assert {(plain, 0), (streamed, 0)} <= saved, sorted(s for s in saved if s[0])[:5]
