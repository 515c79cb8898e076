"""A chat client for any OpenAI-compatible endpoint (our Serve app, vLLM, a hosted API).

Plain httpx rather than the ``openai`` package: we need two calls (complete and stream) and
clear errors, and the same code must run where ``openai`` is not installed.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict

from wow_ray.errors import WowRayError


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "user", "assistant", "tool"]
    content: str


class LLMRequestError(WowRayError):
    """The endpoint answered with an error status; ``status_code`` and the server's message."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(f"LLM endpoint answered {status_code}: {message}")
        self.status_code = status_code


class LLMUnavailableError(WowRayError):
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
                if not line.startswith("data:"):
                    continue
                data = line.removeprefix("data:").strip()
                if data == "[DONE]":
                    return
                chunk = json.loads(data)
                if "error" in chunk:
                    raise LLMRequestError(
                        chunk["error"].get("code", 500), chunk["error"]["message"]
                    )
                for choice in chunk.get("choices", []):
                    if piece := (choice.get("delta") or {}).get("content"):
                        yield piece

    def _body(self, messages: list[ChatMessage | dict], options: dict[str, Any]) -> dict[str, Any]:
        body = {
            "messages": [
                m.model_dump() if isinstance(m, ChatMessage) else ChatMessage(**m).model_dump()
                for m in messages
            ],
            **options,
        }
        if self.model and "model" not in body:
            body["model"] = self.model
        return body


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
