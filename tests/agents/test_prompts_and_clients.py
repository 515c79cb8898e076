"""Prompts as pure functions (the contract data construction renders from), and the clients."""

from __future__ import annotations

import json

import httpx
import jsonschema
import pytest

from tests.agents.conftest import run
from wow_ray.agents.prompts import (
    PROMPTS,
    HandoffInput,
    HandoffSummary,
    MasterDecision,
    MasterInput,
    MoveOption,
    ResponseInput,
    SolutionInput,
    ToolProposal,
    UnderstandingInput,
    UnderstandingOutput,
    intent_options,
    parse_understanding,
)
from wow_ray.llm.chat import ChatResult, ScriptedChatClient
from wow_ray.llm.client import AsyncOpenAIChatClient, LLMRequestError, OpenAIChatClient
from wow_ray.llm.serve_handle import ServeHandleChatClient


def examples(pack):
    return {
        "understanding": (UnderstandingInput(scenario_title="T", candidates=intent_options(pack, ["late_delivery"]),
                                             message="O10158 was late"),
                          UnderstandingOutput(intent="late_delivery", slots={"order_id": "O10158"})),
        "master": (MasterInput(scenario_title="T", message="bye", state="none",
                               moves=[MoveOption(name="end", description="e"), MoveOption(name="answer", description="a")]),
                   MasterDecision(next="end")),
        "solution": (SolutionInput(scenario_title="T", user_id="U1", intent="late_delivery", slots={},
                                   policy="p", tools=pack.tools.openai_schemas()[:6]),
                     ToolProposal(tool="get_order", arguments={"order_id": "O10158"})),
        "handoff": (HandoffInput(scenario_title="T", user_id="U1", identity_verified=True, reason="r",
                                 intent=None), HandoffSummary(summary="Customer U1 wants a person.")),
        "response": (ResponseInput(brand="B", tone="t", kind="resolve", message="m"), "Done."),
    }


@pytest.mark.parametrize("name", sorted(PROMPTS))
def test_every_prompt_renders_and_its_training_target_fits_its_schema(pack, name):
    spec = PROMPTS[name]
    inp, out = examples(pack)[name]
    messages = spec.messages(inp)
    assert [m["role"] for m in messages] == ["system", "user"]
    assert messages == spec.messages(spec.input_model.model_validate(inp.model_dump())), "pure"
    target = spec.render(out, inp)
    fmt = spec.response_format(inp)
    if fmt is None:
        assert target == "Done."
        return
    assert fmt["json_schema"]["name"] == name
    jsonschema.validate(json.loads(target), fmt["json_schema"]["schema"])


def test_understanding_schema_rejects_invented_intents_and_unshaped_ids(pack):
    inp = UnderstandingInput(scenario_title="T", candidates=intent_options(pack, ["late_delivery"]),
                             message="x", offer_none=False)
    schema = PROMPTS["understanding"].response_format(inp)["json_schema"]["schema"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"intent": "none"}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"intent": "late_delivery", "order_id": "O1015800000000"}, schema)
    assert parse_understanding({"intent": "late_delivery", "order_id": None}).slots == {"order_id": None}


def test_scripted_client_routes_by_schema_name():
    client = ScriptedChatClient({"master": [{"next": "end"}], "response": ["hi", "again"]})
    fmt = {"type": "json_schema", "json_schema": {"name": "master", "schema": {}}}
    assert json.loads(run(client.chat([], response_format=fmt)).content) == {"next": "end"}
    assert [run(client.chat([])).content for _ in range(3)] == ["hi", "again", "again"]
    with pytest.raises(KeyError):
        run(client.chat([], response_format={"type": "json_schema", "json_schema": {"name": "x"}}))


def _fake_openai(request: httpx.Request) -> httpx.Response:
    body = json.loads(request.content)
    if body.get("max_tokens") == 0:
        return httpx.Response(400, json={"error": {"message": "'max_tokens' must be positive"}})
    if body.get("stream"):
        chunks = [{"model": "m", "choices": [{"delta": {"content": p}}]} for p in ("Hel", "lo")]
        chunks.append({"model": "m", "choices": [{"delta": {}, "finish_reason": "stop"}],
                       "usage": {"prompt_tokens": 3, "completion_tokens": 2}})
        text = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
        return httpx.Response(200, text=text, headers={"content-type": "text/event-stream"})
    return httpx.Response(200, json={"model": "m", "choices": [{"message": {"content": "Hello"},
                                                                "finish_reason": "stop"}],
                                     "usage": {"prompt_tokens": 3, "completion_tokens": 2}})


def test_async_http_client_chat_and_stream_speak_openai():
    client = AsyncOpenAIChatClient("http://llm.test")
    client._http = httpx.AsyncClient(base_url=client.base_url, transport=httpx.MockTransport(_fake_openai))

    async def go():
        whole = await client.chat([{"role": "user", "content": "hi"}], max_tokens=4)
        pieces = [p async for p in client.stream([{"role": "user", "content": "hi"}], max_tokens=4)]
        with pytest.raises(LLMRequestError, match="max_tokens") as err:
            await client.chat([{"role": "user", "content": "hi"}], max_tokens=0)
        return whole, pieces, err.value.status_code

    whole, pieces, status = run(go())
    assert (whole.content, whole.completion_tokens, whole.model) == ("Hello", 2, "m")
    assert pieces[:2] == ["Hel", "lo"] and isinstance(pieces[-1], ChatResult)
    assert pieces[-1].content == "Hello" and pieces[-1].completion_tokens == 2
    assert status == 400


def test_blocking_and_async_faces_send_the_same_request_and_read_the_same_stream():
    sent = []

    def record(request: httpx.Request) -> httpx.Response:
        sent.append((request.headers.get("authorization"), json.loads(request.content)))
        return _fake_openai(request)

    options = {"model": "m", "api_key": "k", "extra_body": {"top_k": 5}}
    blocking = OpenAIChatClient("http://llm.test/v1/", **options)
    blocking._http = httpx.Client(base_url=blocking.base_url, headers=blocking._http.headers,
                                  transport=httpx.MockTransport(record))
    asynchronous = AsyncOpenAIChatClient("http://llm.test", **options)
    asynchronous._http = httpx.AsyncClient(base_url=asynchronous.base_url,
                                           headers=asynchronous._http.headers,
                                           transport=httpx.MockTransport(record))
    hi = [{"role": "user", "content": "hi"}]
    assert blocking.base_url == asynchronous.base_url == "http://llm.test/v1"

    assert list(blocking.stream(hi, max_tokens=4, temperature=0.0)) == ["Hel", "lo"]
    pieces = run(_collect(asynchronous.stream(hi, max_tokens=4)))
    assert pieces[:-1] == ["Hel", "lo"] and pieces[-1].content == "Hello"
    assert sent[0] == sent[1], "one request builder behind both faces"
    assert sent[0] == ("Bearer k", {"messages": hi, "max_tokens": 4, "temperature": 0.0,
                                    "stream": True, "stream_options": {"include_usage": True},
                                    "top_k": 5, "model": "m"})
    assert blocking.reply(hi, max_tokens=4) == run(asynchronous.chat(hi, max_tokens=4)).content
    with pytest.raises(LLMRequestError, match="max_tokens") as err:
        list(blocking.stream(hi, max_tokens=0))
    assert err.value.status_code == 400


async def _collect(stream):
    return [p async for p in stream]


class _FakeLLMDeployment:
    """What ``RegistryLLMServer.chat_plain`` yields through a handle: structured items."""

    def __init__(self, items):
        self.items, self.calls = items, []
        self.chat_plain = self

    def options(self, **options):
        self.calls.append(options)
        return self

    async def _stream(self, body):
        for item in self.items(body):
            yield item

    def remote(self, body):
        return self._stream(body)


def test_serve_handle_client_reads_the_chunks_the_deployment_yields():
    def items(body):
        if body["messages"][0]["content"] == "fail":
            return [[{"model": "m", "choices": [{"delta": {"content": "x"}}]}],
                    {"error": {"code": 400, "message": "too long", "type": "BadRequestError"}}]
        if not body["stream"]:
            return [{"model": "m", "choices": [{"message": {"content": "Hello"},
                                                "finish_reason": "stop"}],
                     "usage": {"prompt_tokens": 3, "completion_tokens": 2}}]
        return [[{"model": "m", "choices": [{"delta": {"content": "Hel"}}]},
                 {"model": "m", "choices": [{"delta": {"content": "lo"}}]}],
                [{"model": "m", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}}]]

    handle = _FakeLLMDeployment(items)
    client = ServeHandleChatClient(handle, "base")
    hi = [{"role": "user", "content": "hi"}]
    whole = run(client.chat(hi))
    pieces = run(_collect(client.stream(hi, model="base:lora:v1")))
    assert (whole.content, whole.completion_tokens) == ("Hello", 2)
    assert pieces[:-1] == ["Hel", "lo"]
    assert (pieces[-1].content, pieces[-1].completion_tokens) == ("Hello", 2)
    assert handle.calls == [{"stream": True}, {"stream": True, "multiplexed_model_id": "base:lora:v1"}]
    with pytest.raises(LLMRequestError, match="too long") as err:
        run(_collect(client.stream([{"role": "user", "content": "fail"}])))
    assert err.value.status_code == 400


def test_the_agents_run_without_ray():
    import subprocess
    import sys

    code = ("import sys, wow_ray.agents, wow_ray.agents.local, wow_ray.agents.sessions; "
            "sys.exit(any(m == 'ray' or m.startswith('ray.') for m in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
