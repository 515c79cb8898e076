"""The agents' chat client inside the cluster: the shared LLM deployment, through a Serve handle.

It builds the same OpenAI ``ChatCompletionRequest`` that Ray's OpenAI ingress builds and calls
the ``LLMServer`` deployment's ``chat`` method directly, skipping the HTTP hop. A model id
with an adapter (``<base>:<adapter>:vN``) is routed with ``multiplexed_model_id`` so the
request lands on a replica that has (or loads) that LoRA adapter, as the ingress does; base
model requests are spread over all replicas. Only this module knows Ray's request types.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from wow_ray.llm.chat import ChatResult, LLMError


def _request_types() -> tuple[Any, Any, Any]:
    from ray.llm._internal.serve.core.configs.openai_api_models import (
        ChatCompletionRequest,
        ChatCompletionResponse,
        ErrorResponse,
    )

    return ChatCompletionRequest, ChatCompletionResponse, ErrorResponse


class ServeHandleChatClient:
    """Chat completions from an ``LLMServer`` deployment handle (``ChatClient`` protocol)."""

    def __init__(self, handle: Any, base_model: str) -> None:
        self._handle = handle
        self.base_model = base_model
        self._configured: dict[str, Any] = {}  # .options() makes a new handle: reuse them
        _request_types()  # imports vLLM's protocol (seconds): at replica start, not first call

    def _for(self, model: str) -> Any:
        if model not in self._configured:
            if model == self.base_model:
                self._configured[model] = self._handle.options(stream=True)
            else:
                self._configured[model] = self._handle.options(stream=True, multiplexed_model_id=model)
        return self._configured[model]

    async def chat(
        self,
        messages: Sequence[dict[str, Any]],
        *,
        model: str | None = None,
        max_tokens: int = 128,
        temperature: float = 0.0,
        response_format: dict[str, Any] | None = None,
    ) -> ChatResult:
        request_cls, response_cls, error_cls = _request_types()
        model = model or self.base_model
        started = time.perf_counter()
        request = request_cls(model=model, messages=[dict(m) for m in messages],
                              max_tokens=max_tokens, temperature=temperature,
                              response_format=response_format, stream=False)
        response = None
        try:
            async for item in self._for(model).chat.remote(request, None):
                response = response or item
        except Exception as exc:  # a dead replica, an adapter that cannot load
            raise LLMError(f"LLM deployment failed: {type(exc).__name__}: {str(exc)[:300]}") from exc
        if isinstance(response, error_cls):
            raise LLMError(f"LLM deployment answered {response.error.code}: {response.error.message}")
        if not isinstance(response, response_cls):
            raise LLMError(f"unexpected answer from the LLM deployment: {type(response).__name__}")
        choice = response.choices[0]
        usage = response.usage
        return ChatResult(choice.message.content or "", response.model,
                          usage.prompt_tokens if usage else 0,
                          usage.completion_tokens if usage else 0,
                          time.perf_counter() - started, choice.finish_reason)

    async def stream(
        self,
        messages: Sequence[dict[str, Any]],
        *,
        model: str | None = None,
        max_tokens: int = 128,
        temperature: float = 0.0,
    ) -> AsyncIterator[str | ChatResult]:
        request_cls, _, error_cls = _request_types()
        model = model or self.base_model
        started = time.perf_counter()
        request = request_cls(model=model, messages=[dict(m) for m in messages],
                              max_tokens=max_tokens, temperature=temperature, stream=True,
                              stream_options={"include_usage": True})
        pieces: list[str] = []
        served, usage, finish = model, {}, None
        try:
            async for batch in self._for(model).chat.remote(request, None):
                for item in batch if isinstance(batch, list) else [batch]:
                    if isinstance(item, error_cls):
                        raise LLMError(f"LLM deployment answered {item.error.code}: "
                                       f"{item.error.message}")
                    for chunk in _chunks(item):
                        served = chunk.get("model", served)
                        usage = chunk.get("usage") or usage
                        for choice in chunk.get("choices", []):
                            finish = choice.get("finish_reason") or finish
                            if piece := (choice.get("delta") or {}).get("content"):
                                pieces.append(piece)
                                yield piece
        except LLMError:
            raise
        except Exception as exc:
            raise LLMError(f"LLM deployment failed: {type(exc).__name__}: {str(exc)[:300]}") from exc
        yield ChatResult("".join(pieces), served, usage.get("prompt_tokens", 0),
                         usage.get("completion_tokens", 0), time.perf_counter() - started, finish)


def _chunks(item: Any) -> list[dict[str, Any]]:
    """Parsed chunks from one streamed item: ``data: {...}`` text, possibly several lines."""
    if not isinstance(item, str):
        return []
    out = []
    for line in item.splitlines():
        line = line.strip()
        if line.startswith("data:") and line != "data: [DONE]":
            data = json.loads(line.removeprefix("data:").strip())
            if "error" in data:
                raise LLMError(f"LLM deployment answered {data['error'].get('code')}: "
                               f"{data['error'].get('message')}")
            out.append(data)
    return out
