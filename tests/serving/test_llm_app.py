"""The LLM app end to end: Ray Serve + vLLM's CPU build serving the embedded model.

Everything here is real: a local Ray, vLLM on the CPU, HTTP on loopback.
"""

import httpx
import pytest

from wow_ray.errors import RegistryError
from wow_ray.llm.client import LLMRequestError, OpenAIChatClient
from wow_ray.registry import EntryKind, Registry, register_model

pytestmark = pytest.mark.slow

HELLO = [{"role": "user", "content": "Say hello to a customer."}]


@pytest.fixture(scope="module")
def client(served_llm):
    with OpenAIChatClient(served_llm) as c:
        yield c


@pytest.fixture(scope="module")
def adapter(embedded_storage, tiny_adapter_dir):
    return register_model(
        Registry(embedded_storage), "support-lora", str(tiny_adapter_dir), base_model="smollm2-135m"
    )


def test_chat_completion(client):
    response = client.complete(HELLO, max_tokens=16, temperature=0)
    assert response["model"] == "smollm2-135m"
    assert response["choices"][0]["message"]["content"].strip()
    assert 0 < response["usage"]["completion_tokens"] <= 16


def test_streamed_chat_completion_matches_the_whole_one(client):
    pieces = list(client.stream(HELLO, max_tokens=16, temperature=0))
    assert len(pieces) > 1, "a streamed reply arrives in several pieces"
    whole = client.reply(HELLO, max_tokens=16, temperature=0)
    assert "".join(pieces) == whole


def test_the_serve_handle_and_http_clients_read_the_same_completions(served_llm):
    """The agents' two clients: the deployment's handle (chunks, no event text) and HTTP."""
    import asyncio

    from ray import serve

    from wow_ray.llm.chat import LLMError
    from wow_ray.llm.client import AsyncOpenAIChatClient
    from wow_ray.llm.serve_handle import ServeHandleChatClient

    handle = serve.get_deployment_handle("RegistryLLMServer:smollm2-135m", app_name="llm")
    clients = {"handle": ServeHandleChatClient(handle, "smollm2-135m"),
               "http": AsyncOpenAIChatClient(served_llm, model="smollm2-135m")}

    async def ask() -> dict:
        answers = {}
        for name, c in clients.items():
            whole = await c.chat(HELLO, max_tokens=16)
            answers[name] = whole, [p async for p in c.stream(HELLO, max_tokens=16)]
        with pytest.raises(LLMError):
            await clients["handle"].chat(HELLO, max_tokens=10**6)
        with pytest.raises(LLMError):
            _ = [p async for p in clients["handle"].stream(HELLO, max_tokens=10**6)]
        await clients["http"].aclose()
        return answers

    answers = asyncio.run(ask())
    for whole, pieces in answers.values():
        text, streamed = pieces[:-1], pieces[-1]
        assert len(text) > 1, "a streamed reply arrives in several pieces"
        assert "".join(text) == streamed.content == whole.content and whole.content.strip()
        assert streamed.completion_tokens == whole.completion_tokens > 0
        assert streamed.finish_reason and streamed.model == "smollm2-135m"
        for result in (whole, streamed):  # the engine's split rides on the answer (issue 18)
            times = result.engine
            assert times is not None and None not in (times.queue_s, times.prefill_s, times.decode_s)
            assert times.queue_s + times.prefill_s + times.decode_s <= result.latency_s
            assert times.prefill_s > 0 and times.decode_s > 0
    assert answers["handle"][0].content == answers["http"][0].content


def test_lora_adapter_is_served_by_name_without_restart(client, adapter):
    assert f"smollm2-135m:{adapter.ref}" in client.models()
    base = client.reply(HELLO, max_tokens=12, temperature=0)
    by_name = client.complete(
        HELLO, model="smollm2-135m:support-lora", max_tokens=12, temperature=0
    )
    assert by_name["model"] == f"smollm2-135m:{adapter.ref}"  # the name resolved to its version
    by_version = client.reply(
        HELLO, model=f"smollm2-135m:{adapter.ref}", max_tokens=12, temperature=0
    )
    assert by_name["choices"][0]["message"]["content"] == by_version
    assert by_version != base, "the random adapter must change what the model says"


def test_a_new_adapter_version_reaches_requests_by_name(
    client, adapter, embedded_storage, tiny_adapter_dir, tmp_path
):
    import shutil

    changed = tmp_path / "adapter-v2"
    shutil.copytree(tiny_adapter_dir, changed)
    (changed / "README.md").write_text("version two")
    v2 = register_model(
        Registry(embedded_storage), "support-lora", str(changed), base_model="smollm2-135m"
    )
    assert v2.version == adapter.version + 1
    import time

    time.sleep(2.5)  # the ingress re-reads the registry at most every two seconds
    response = client.complete(HELLO, model="smollm2-135m:support-lora", max_tokens=4)
    assert response["model"] == f"smollm2-135m:{v2.ref}"


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"model": "no-such-model", "messages": HELLO}, 404, "no-such-model"),
        ({"model": "smollm2-135m:no-such-adapter", "messages": HELLO}, 404, "no-such-adapter"),
        ({"model": "smollm2-135m", "messages": []}, 400, "at least one message"),
        ({"model": "smollm2-135m", "messages": HELLO, "max_tokens": 0}, 400, "max_tokens"),
        ({"model": "smollm2-135m", "messages": HELLO, "max_tokens": 10**6}, 400, "max_tokens"),
        ({"model": "smollm2-135m", "messages": "hello"}, 400, "messages"),
        (
            {"model": "smollm2-135m", "messages": [{"role": "wizard", "content": "x"}]},
            400,
            "messages[0].role",
        ),
        ({"model": "smollm2-135m", "messages": [{"content": "no role"}]}, 400, "role"),
        ({"model": "smollm2-135m", "messages": HELLO, "temperature": "hot"}, 400, "temperature"),
    ],
)
def test_bad_requests_get_a_4xx_with_a_message(served_llm, body, status, fragment):
    response = httpx.post(f"{served_llm}/v1/chat/completions", json=body, timeout=60)
    assert response.status_code == status, response.text
    assert fragment in response.text


def test_malformed_json_gets_a_400(served_llm):
    response = httpx.post(
        f"{served_llm}/v1/chat/completions",
        content=b'{"model": "smollm2-135m", "messages": [',
        headers={"content-type": "application/json"},
        timeout=60,
    )
    assert response.status_code == 400
    assert "JSON" in response.text


def test_client_raises_with_status_and_message(client):
    with pytest.raises(LLMRequestError, match="at least one message") as err:
        client.complete([], max_tokens=4)
    assert err.value.status_code == 400


def test_server_is_healthy_after_bad_requests(served_llm, client):
    # Runs after the bad-request tests (file order): the same server still answers.
    for _ in range(3):
        httpx.post(f"{served_llm}/v1/chat/completions", content=b"{", timeout=60)
    assert client.reply(HELLO, max_tokens=8).strip()
    from ray import serve

    assert serve.status().applications["llm"].status == "RUNNING"


def test_a_corrupted_model_is_refused_before_serving(tmp_path):
    import json

    from wow_ray.config import load_settings
    from wow_ray.serving.llm_app import build_llm_serving_args

    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (folder / "model.safetensors").write_bytes(b"\x00" * 64)
    registry = Registry(str(tmp_path / "store"))
    entry = registry.register(EntryKind.MODEL, "broken", folder, source="t")
    (registry.local_dir(entry) / "model.safetensors").write_bytes(b"\x01" * 64)
    settings = load_settings(storage_path=registry.storage.root, model="broken")
    with pytest.raises(RegistryError, match="corrupted"):
        build_llm_serving_args(settings)
