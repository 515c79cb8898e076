"""The agents' chat client inside the cluster: the shared LLM deployment, through a Serve handle.

It calls the LLM deployment (``RegistryLLMServer`` from wow_ray/serving/llm_app.py, Ray's LLMServer
with registry adapters) directly, skipping the HTTP hop, with an OpenAI chat request as a
plain dict: ``chat_plain`` turns it into vLLM's request type inside the LLM replica, so agent
replicas never import vLLM (half a gigabyte and ten seconds each). What comes back is already
structured: the ``chat.completion`` as a dict or, streamed, lists of ``chat.completion.chunk``
dicts (the replica reads vLLM's event text once, with ``wow_ray.llm.wire``); an error is an
OpenAI error object. A model id with an adapter (``<base>:<adapter>:vN``) is routed with
``multiplexed_model_id``, as Ray's OpenAI ingress does, so the request lands on a replica that
has (or loads) that LoRA adapter; base-model requests are spread over all replicas.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from wow_ray.llm.chat import ChatResult, LLMError
from wow_ray.llm.wire import StreamTally, completion_result, raise_if_error


class ServeHandleChatClient:
    """Chat completions from the LLM deployment's handle (``ChatClient`` protocol)."""

    def __init__(self, handle: Any, base_model: str) -> None:
        self._handle = handle
        self.base_model = base_model
        self._configured: dict[str, Any] = {}  # .options() makes a new handle: reuse them

    def _for(self, model: str) -> Any:
        if model not in self._configured:
            options: dict[str, Any] = {"stream": True}
            if model != self.base_model:
                options["multiplexed_model_id"] = model
            self._configured[model] = self._handle.options(**options)
        return self._configured[model]

    async def _items(self, body: dict[str, Any]) -> AsyncIterator[Any]:
        """What the deployment yields, an error object raised as ``LLMRequestError``."""
        try:
            async for item in self._for(body["model"]).chat_plain.remote(body):
                yield raise_if_error(item) if isinstance(item, dict) else item
        except LLMError:
            raise
        except Exception as exc:  # a dead replica, an adapter that cannot load
            raise LLMError(f"LLM deployment failed: {type(exc).__name__}: {str(exc)[:300]}") from exc

    def _body(self, messages: Sequence[dict[str, Any]], model: str | None, **options: Any) -> dict[str, Any]:
        return {"model": model or self.base_model, "messages": [dict(m) for m in messages],
                **{k: v for k, v in options.items() if v is not None}}

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
        body = self._body(messages, model, max_tokens=max_tokens, temperature=temperature,
                          stream=False, response_format=response_format)
        response = None
        async for item in self._items(body):
            response = response or item
        if not isinstance(response, dict) or not response.get("choices"):
            raise LLMError(f"unexpected answer from the LLM deployment: {str(response)[:200]}")
        return completion_result(response, body["model"], started)

    async def stream(
        self,
        messages: Sequence[dict[str, Any]],
        *,
        model: str | None = None,
        max_tokens: int = 128,
        temperature: float = 0.0,
    ) -> AsyncIterator[str | ChatResult]:
        body = self._body(messages, model, max_tokens=max_tokens, temperature=temperature,
                          stream=True, stream_options={"include_usage": True})
        tally = StreamTally(body["model"], time.perf_counter())
        async for batch in self._items(body):
            if not isinstance(batch, list):
                raise LLMError(f"unexpected item in the LLM deployment's stream: {str(batch)[:200]}")
            for chunk in batch:
                for piece in tally.add(raise_if_error(chunk)):
                    yield piece
        yield tally.result()
