"""The one pair of a turn's model calls that do not depend on each other, the hand-over summary
and the reply, run at once (issue 18); the trace keeps one hand-over step, as before."""

from __future__ import annotations

import asyncio
import time

from tests.agents.conftest import run
from wow_ray.agents.events import DeltaEvent, FinalEvent, StepEvent
from wow_ray.agents.local import local_master
from wow_ray.llm.chat import ScriptedChatClient, schema_name

SUMMARY = "Customer U0001 asked for a person; nothing done yet."
REPLY_WORDS = ["I", "am", "transferring", "you", "to", "a", "colleague", "now."]


class _SlowClient:
    """A scripted model that takes ``seconds`` per call, and notes when each call ran."""

    def __init__(self, scripted: ScriptedChatClient, seconds: float) -> None:
        self.scripted, self.seconds = scripted, seconds
        self.spans: dict[str, list[tuple[float, float]]] = {}

    def _note(self, route: str, started: float) -> None:
        self.spans.setdefault(route, []).append((started, time.perf_counter()))

    async def chat(self, messages, **options):
        started = time.perf_counter()
        await asyncio.sleep(self.seconds)
        result = await self.scripted.chat(messages, **options)
        self._note(schema_name(options.get("response_format")) or "response", started)
        return result

    async def stream(self, messages, **options):
        started = time.perf_counter()
        async for piece in self.scripted.stream(messages, **options):
            await asyncio.sleep(self.seconds / len(REPLY_WORDS))
            yield piece
        self._note("response", started)


def _client(seconds: float) -> _SlowClient:
    return _SlowClient(ScriptedChatClient(routes={
        "handoff": [{"summary": SUMMARY}],
        "response": [" ".join(REPLY_WORDS)],
        "understanding": [{"intent": "human_agent", "slots": {}}],
        "master": [{"next": "handoff"}],
    }), seconds)


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
    return min(a[1], b[1]) - max(a[0], b[0])


def _turn(master, session, stream: bool):
    async def go():
        return [e async for e in master.events(session("U0001"), "I want to talk to a real person",
                                              stream=stream)]
    return run(go())


def test_the_handover_summary_is_written_while_the_reply_is(pack, session):
    for stream in (True, False):
        client = _client(0.3)
        master = local_master(pack, client)
        events = _turn(master, session, stream)
        turn = events[-1].outcome.turn
        (summary_call,) = client.spans["handoff"]
        (reply_call,) = client.spans["response"]
        assert _overlap(summary_call, reply_call) > 0.2, (stream, summary_call, reply_call)
        # The record is what it was when the summary came first: one hand-over step, its
        # prompt and model call included, before the reply; the ticket holds the summary.
        agents = [s.agent for s in turn.steps]
        assert agents.count("handoff") == 1 and agents[-1] == "response"
        step = next(s for s in turn.steps if s.agent == "handoff")
        assert step.input["reason"] and step.input["prompt"]["user_id"] == "U0001"
        assert [c.valid for c in step.llm_calls] == [True] and not step.fallback
        assert step.tool_calls and step.output["summary"] == SUMMARY
        assert turn.handoff.summary == SUMMARY and turn.handoff.summary_source == "model"
        assert turn.handoff.ticket_id in turn.reply
        assert isinstance(events[-1], FinalEvent)
        if stream:
            assert "".join(e.text for e in events if isinstance(e, DeltaEvent)) == turn.reply
            shown = [e for e in events if isinstance(e, StepEvent) and e.agent == "handoff"]
            assert shown and "summary" not in shown[0].summary, "sent before it is written"


def test_a_summary_the_model_fails_falls_back_to_the_template_beside_the_reply(pack, session):
    client = _client(0.0)
    client.scripted.routes["handoff"] = ["not json"]
    turn = _turn(local_master(pack, client), session, False)[-1].outcome.turn
    step = next(s for s in turn.steps if s.agent == "handoff")
    assert step.fallback and [c.valid for c in step.llm_calls] == [False]
    assert turn.handoff.summary_source == "fallback" and "U0001" in turn.handoff.summary
