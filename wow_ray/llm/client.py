"""A chat client for any OpenAI-compatible endpoint (our Serve app, vLLM, a hosted API).

Plain httpx rather than the ``openai`` package: we need two calls (complete and stream) and
clear errors, and the same code must run where ``openai`` is not installed.

One client, two faces over one core (:class:`_OpenAIEndpoint`: the endpoint, its headers,
request bodies, answers and streams read through ``wow_ray.llm.wire``):
:class:`OpenAIChatClient` for scripts and the terminal (blocking), and
:class:`AsyncOpenAIChatClient`, the agents' ``ChatClient``. Only the transport differs.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import httpx

from wow_ray.llm.chat import ChatResult, LLMError
from wow_ray.llm.wire import (
    ChatMessage,
    LLMRequestError,
    StreamTally,
    asse_events,
    completion_chunk,
    completion_result,
    request_body,
    sse_events,
)

__all__ = ["AsyncOpenAIChatClient", "ChatMessage", "LLMRequestError", "LLMUnavailableError",
           "OpenAIChatClient"]


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


class _OpenAIEndpoint:
    """What both faces share: the endpoint and its headers, request bodies, reading answers.

    ``extra_body`` is merged into every request (vLLM's sampling extras, for instance).
    """

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
        self._http = self._transport(
            {"Authorization": f"Bearer {api_key}"} if api_key else {}, timeout_s)

    def _transport(self, headers: dict[str, str], timeout_s: float) -> Any:
        raise NotImplementedError

    def _body(self, messages: Sequence[ChatMessage | dict], options: dict[str, Any],
              stream: bool = False) -> dict[str, Any]:
        if stream:  # the usage arrives in a last chunk; the tally reads it
            options = {**options, "stream": True, "stream_options": {"include_usage": True}}
        return request_body(self.model, messages, {**options, **self.extra_body})

    def _tally(self, body: dict[str, Any]) -> StreamTally:
        return StreamTally(body.get("model") or "", time.perf_counter())


class OpenAIChatClient(_OpenAIEndpoint):
    """Chat completions over HTTP, whole or streamed token by token (blocking calls)."""

    def _transport(self, headers: dict[str, str], timeout_s: float) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout_s)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> OpenAIChatClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def models(self) -> list[str]:
        with _reaching(self.base_url):
            response = self._http.get("/models")
        return [m["id"] for m in _answer(response)["data"]]

    def complete(self, messages: list[ChatMessage | dict], **options: Any) -> dict[str, Any]:
        """The whole chat-completion response (``choices[0].message.content`` is the reply)."""
        with _reaching(self.base_url):
            response = self._http.post("/chat/completions", json=self._body(messages, options))
        return _answer(response)

    def reply(self, messages: list[ChatMessage | dict], **options: Any) -> str:
        return self.complete(messages, **options)["choices"][0]["message"]["content"] or ""

    def stream(self, messages: list[ChatMessage | dict], **options: Any) -> Iterator[str]:
        """Yield the reply's text pieces as the server streams them (server-sent events)."""
        body = self._body(messages, options, stream=True)
        tally = self._tally(body)
        with (
            _reaching(self.base_url),
            self._http.stream("POST", "/chat/completions", json=body) as response,
        ):
            if response.status_code >= 400:
                response.read()
                _answer(response)
            for event in sse_events(response.iter_lines()):
                if (chunk := completion_chunk(event)) is not None:
                    yield from tally.add(chunk)


class AsyncOpenAIChatClient(_OpenAIEndpoint):
    """The agents' chat client (``wow_ray.llm.chat.ChatClient``) for any OpenAI-compatible URL."""

    def _transport(self, headers: dict[str, str], timeout_s: float) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=timeout_s)

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
        body = self._body(messages, {"model": model, "max_tokens": max_tokens,
                                     "temperature": temperature, "response_format": response_format})
        with _reaching(self.base_url):
            response = await self._http.post("/chat/completions", json=body)
        return completion_result(_answer(response), model or "", started)

    async def stream(
        self,
        messages: Sequence[dict[str, Any]],
        *,
        model: str | None = None,
        max_tokens: int = 128,
        temperature: float = 0.0,
    ) -> AsyncIterator[str | ChatResult]:
        body = self._body(messages, {"model": model, "max_tokens": max_tokens,
                                     "temperature": temperature}, stream=True)
        tally = self._tally(body)
        with _reaching(self.base_url):  # a dropped connection mid-stream reads the same
            async with self._http.stream("POST", "/chat/completions", json=body) as response:
                if response.status_code >= 400:
                    await response.aread()
                    _answer(response)
                async for event in asse_events(response.aiter_lines()):
                    if (chunk := completion_chunk(event)) is not None:
                        for piece in tally.add(chunk):
                            yield piece
        yield tally.result()


def _answer(response: httpx.Response) -> dict[str, Any]:
    """The JSON of a successful answer; an error status raises with the server's message."""
    if response.status_code < 400:
        return response.json()
    try:
        payload = response.json()
        error = payload.get("error")
        message = (error.get("message") if isinstance(error, dict) else None) \
            or payload.get("detail") or response.text
    except ValueError:
        message = response.text
    raise LLMRequestError(response.status_code, str(message))
