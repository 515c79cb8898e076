"""A chat client for any OpenAI-compatible endpoint (our Serve app, vLLM, a hosted API).

Plain httpx rather than the ``openai`` package: we need two calls (complete and stream) and
clear errors, and the same code must run where ``openai`` is not installed.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict

from wow_ray.llm.chat import ChatResult, LLMError, StreamTally, completion_result


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "user", "assistant", "tool"]
    content: str


class LLMRequestError(LLMError):
    """The endpoint answered with an error status; ``status_code`` and the server's message."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(f"LLM endpoint answered {status_code}: {message}")
        self.status_code = status_code


class LLMUnavailableError(LLMError):
    """Nothing answered at the endpoint (not started, wrong URL, network down)."""


@contextlib.contextmanager
def _reaching(url: str) -> Iterator[None]:
    try:
        yield
    except httpx.TransportError as exc:
        raise LLMUnavailableError(
            f"no LLM endpoint answered at {url} ({type(exc).__name__}: {exc}); is it served? "
            "(`wow-ray serve` or `serve run serve_apps/llm.yaml`)"
        ) from None


class OpenAIChatClient:
    """Chat completions over HTTP, whole or streamed token by token."""

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        *,
        model: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 300.0,
    ) -> None:
        base_url = base_url.rstrip("/")
        self.base_url = base_url if base_url.endswith("/v1") else f"{base_url}/v1"
        self.model = model
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout_s)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> OpenAIChatClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def models(self) -> list[str]:
        with _reaching(self.base_url):
            response = self._http.get("/models")
        _raise_for_error(response)
        return [m["id"] for m in response.json()["data"]]

    def complete(self, messages: list[ChatMessage | dict], **options: Any) -> dict[str, Any]:
        """The whole chat-completion response (``choices[0].message.content`` is the reply)."""
        with _reaching(self.base_url):
            response = self._http.post("/chat/completions", json=self._body(messages, options))
        _raise_for_error(response)
        return response.json()

    def reply(self, messages: list[ChatMessage | dict], **options: Any) -> str:
        return self.complete(messages, **options)["choices"][0]["message"]["content"] or ""

    def stream(self, messages: list[ChatMessage | dict], **options: Any) -> Iterator[str]:
        """Yield the reply's text pieces as the server streams them (server-sent events)."""
        body = self._body(messages, {**options, "stream": True})
        with (
            _reaching(self.base_url),
            self._http.stream("POST", "/chat/completions", json=body) as response,
        ):
            if response.status_code >= 400:
                response.read()
                _raise_for_error(response)
            for line in response.iter_lines():
                if line.strip() == "data: [DONE]":
                    return
                chunk = _sse_chunks(line)
                if chunk is None:
                    continue
                for choice in chunk.get("choices", []):
                    if piece := (choice.get("delta") or {}).get("content"):
                        yield piece

    def _body(self, messages: list[ChatMessage | dict], options: dict[str, Any]) -> dict[str, Any]:
        return _request_body(self.model, messages, options)


def _request_body(model: str | None, messages: Sequence[ChatMessage | dict],
                  options: dict[str, Any]) -> dict[str, Any]:
    body = {
        "messages": [
            m.model_dump() if isinstance(m, ChatMessage) else ChatMessage(**m).model_dump()
            for m in messages
        ],
        **{k: v for k, v in options.items() if v is not None},
    }
    if model and "model" not in body:
        body["model"] = model
    return body


def _sse_chunks(line: str) -> dict[str, Any] | None:
    """One server-sent-events line of a streamed completion, parsed (None: not a chunk)."""
    if not line.startswith("data:"):
        return None
    data = line.removeprefix("data:").strip()
    if data == "[DONE]":
        return None
    chunk = json.loads(data)
    if "error" in chunk:
        raise LLMRequestError(chunk["error"].get("code", 500), chunk["error"]["message"])
    return chunk


class AsyncOpenAIChatClient:
    """The agents' chat client (``wow_ray.llm.chat.ChatClient``) for any OpenAI-compatible URL."""

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        *,
        model: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 300.0,
        extra_body: dict[str, Any] | None = None,
    ) -> None:
        base_url = base_url.rstrip("/")
        self.base_url = base_url if base_url.endswith("/v1") else f"{base_url}/v1"
        self.model = model
        self.extra_body = dict(extra_body or {})
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=timeout_s)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def chat(
        self,
        messages: Sequence[dict[str, Any]],
        *,
        model: str | None = None,
        max_tokens: int = 128,
        temperature: float = 0.0,
        response_format: dict[str, Any] | None = None,
    ) -> ChatResult:
        started = time.perf_counter()
        body = _request_body(self.model, messages, {
            "model": model, "max_tokens": max_tokens, "temperature": temperature,
            "response_format": response_format, **self.extra_body})
        with _reaching(self.base_url):
            response = await self._http.post("/chat/completions", json=body)
        _raise_for_error(response)
        return completion_result(response.json(), model or "", started)

    async def stream(
        self,
        messages: Sequence[dict[str, Any]],
        *,
        model: str | None = None,
        max_tokens: int = 128,
        temperature: float = 0.0,
    ) -> AsyncIterator[str | ChatResult]:
        started = time.perf_counter()
        body = _request_body(self.model, messages, {
            "model": model, "max_tokens": max_tokens, "temperature": temperature, "stream": True,
            "stream_options": {"include_usage": True}, **self.extra_body})
        tally = StreamTally(model or "", started)
        with _reaching(self.base_url):  # a dropped connection mid-stream reads the same
            async with self._http.stream("POST", "/chat/completions", json=body) as response:
                if response.status_code >= 400:
                    await response.aread()
                    _raise_for_error(response)
                async for line in response.aiter_lines():
                    chunk = _sse_chunks(line)
                    if chunk is None:
                        continue
                    for piece in tally.add(chunk):
                        yield piece
        yield tally.result()


def _raise_for_error(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        payload = response.json()
        message = (
            (
                payload.get("error", {}).get("message")
                if isinstance(payload.get("error"), dict)
                else None
            )
            or payload.get("detail")
            or response.text
        )
    except ValueError:
        message = response.text
    raise LLMRequestError(response.status_code, str(message))
