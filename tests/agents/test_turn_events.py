"""Server-sent events and typed turn events: written and read in one place each."""

from __future__ import annotations

import json

import pytest

from wow_ray.agents.events import (
    DeltaEvent,
    DoneEvent,
    ErrorEvent,
    ResetEvent,
    StepEvent,
    from_sse,
    to_sse,
)
from wow_ray.llm.wire import (
    LLMRequestError,
    ServerSentEvent,
    completion_chunks,
    format_sse,
    sse_events,
)


def test_events_end_at_blank_lines_and_join_their_data_lines():
    lines = [": keep-alive", "event: step", "data: {\"a\":", "data: 1}", "", "data: [DONE]", "",
             "event: tail", "data: x"]
    assert list(sse_events(lines)) == [ServerSentEvent('{"a":\n1}', "step"),
                                       ServerSentEvent("[DONE]"), ServerSentEvent("x", "tail")]
    assert list(sse_events(format_sse("{}", "reset").splitlines())) == [ServerSentEvent("{}", "reset")]


def test_completion_chunks_read_vllm_stream_text_and_raise_its_errors():
    chunk = {"model": "m", "choices": [{"delta": {"content": "Hi"}}]}
    text = format_sse(json.dumps(chunk)) + format_sse(json.dumps({**chunk, "choices": []}))
    assert completion_chunks(text + format_sse("[DONE]")) == [chunk, {**chunk, "choices": []}]
    error = format_sse(json.dumps({"error": {"code": 400, "message": "prompt too long"}}))
    with pytest.raises(LLMRequestError, match="prompt too long") as err:
        completion_chunks(text + error)
    assert err.value.status_code == 400


SERVICE_EVENTS = [
    StepEvent(agent="understanding", summary={"intent": "late_delivery", "slots": {"order_id": "O1"}}),
    DeltaEvent(text="Hello, "),
    ResetEvent(),
    DoneEvent(session_id="s1", turn=0, reply="Hello.", status="active", latency_s=0.5),
    ErrorEvent(status=409, detail="busy"),
]


@pytest.mark.parametrize("event", SERVICE_EVENTS, ids=lambda e: e.type)
def test_a_service_event_reads_back_as_the_same_typed_event(event):
    (read,) = [from_sse(e) for e in sse_events(to_sse(event).splitlines())]
    assert read == event and type(read) is type(event)


def test_the_wire_format_names_the_event_and_sends_its_fields_as_json():
    # What the gateway's clients rely on (tests/serving/test_dialogue_app.py reads it raw).
    step, delta, reset, done, error = (to_sse(e) for e in SERVICE_EVENTS)
    assert step.startswith("event: step\ndata: ") and step.endswith("\n\n")
    assert json.loads(step.split("data: ", 1)[1]) == {
        "agent": "understanding", "summary": {"intent": "late_delivery", "slots": {"order_id": "O1"}}}
    assert json.loads(delta.split("data: ", 1)[1]) == {"text": "Hello, "}
    assert reset == "event: reset\ndata: {}\n\n"
    assert json.loads(done.split("data: ", 1)[1]) == {
        "session_id": "s1", "turn": 0, "reply": "Hello.", "status": "active", "ticket_id": None,
        "intent": None, "latency_s": 0.5}
    assert json.loads(error.split("data: ", 1)[1]) == {"status": 409, "detail": "busy"}


def test_a_step_summary_that_is_not_json_is_sent_as_text():
    from datetime import date

    text = to_sse(StepEvent(agent="solution", summary={"day": date(2026, 1, 2), "ids": {"O1"}}))
    assert json.loads(text.split("data: ", 1)[1])["summary"] == {"day": "2026-01-02", "ids": ["O1"]}
