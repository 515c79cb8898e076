"""The chat-client protocol agents call, and a scripted client for tests of control flow.

Agents speak OpenAI chat-completions semantics and nothing else: a list of ``{"role",
"content"}`` messages plus ``model``, ``max_tokens``, ``temperature`` and an optional
``response_format`` (``{"type": "json_schema", "json_schema": {"name", "schema"}}``). Three
implementations exist, so the same agent runs anywhere:

- ``wow_ray.llm.serve_handle.ServeHandleChatClient``: the shared LLM deployment, through a Ray
  Serve handle (inside the cluster; per-agent LoRA adapters by multiplexed model id);
- ``wow_ray.llm.client.AsyncOpenAIChatClient``: any OpenAI-compatible URL;
- :class:`ScriptedChatClient` here: canned answers, for fast unit tests without a model.

The first two read OpenAI answers and streams through ``wow_ray.llm.wire``.

No Ray import here: ``wow_ray.agents`` depends on this module only.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from wow_ray.errors import WowRayError

Message = dict[str, Any]


class LLMError(WowRayError):
    """The model could not be reached, or answered with an error instead of a completion."""


class EngineTimes(BaseModel):
    """Where one call's time went inside the engine that served it, in seconds: waiting to be
    scheduled, prefill (scheduled to the first token), decode (first token to last). Measured
    by the engine itself (vLLM's per-request metrics), so the agent's wall time minus these is
    what the call spent outside it (routing, tokenising, transport). None: not measured."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    queue_s: float | None = Field(None, ge=0)
    prefill_s: float | None = Field(None, ge=0)
    decode_s: float | None = Field(None, ge=0)


@dataclass
class ChatResult:
    """One completion: its text, the model that wrote it, token counts and wall time, and
    (when the server reports them) the engine's queue, prefill and decode times."""

    content: str
    model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    finish_reason: str | None = None
    engine: EngineTimes | None = None


@runtime_checkable
class ChatClient(Protocol):
    """What an agent needs from a model: one completion, or one streamed completion."""

    async def chat(
        self,
        messages: Sequence[Message],
        *,
        model: str | None = None,
        max_tokens: int = 128,
        temperature: float = 0.0,
        response_format: dict[str, Any] | None = None,
    ) -> ChatResult:
        """The whole completion. Raises ``LLMError`` when the model cannot be reached."""
        ...

    def stream(
        self,
        messages: Sequence[Message],
        *,
        model: str | None = None,
        max_tokens: int = 128,
        temperature: float = 0.0,
    ) -> AsyncIterator[str | ChatResult]:
        """Text pieces as they are generated, then one final :class:`ChatResult` (whole text)."""
        ...


def schema_name(response_format: dict[str, Any] | None) -> str | None:
    """The ``json_schema.name`` of a response format (agents name schemas after themselves)."""
    if not response_format or response_format.get("type") != "json_schema":
        return None
    return (response_format.get("json_schema") or {}).get("name")


Script = Callable[[Sequence[Message], dict[str, Any]], str | dict[str, Any]]


@dataclass
class ScriptedCall:
    """A request the scripted client received (for assertions in tests)."""

    route: str
    messages: list[Message]
    options: dict[str, Any]


@dataclass
class ScriptedChatClient:
    """Answers from a script instead of a model: deterministic and instant.

    ``routes`` maps a route to a list of answers (used in order, the last one repeated) or to
    a function ``(messages, options) -> answer``. The route of a request is its response
    schema's name (``understanding``, ``master``, ``solution``, ``handoff``), or ``response``
    for free text. An answer that is a dict is sent as JSON text. A route with no script
    answers ``default`` (``None``: raise ``KeyError``, so a test notices an unexpected call).
    """

    routes: dict[str, list[str | dict[str, Any]] | Script] = field(default_factory=dict)
    default: str | None = None
    model: str = "scripted"
    calls: list[ScriptedCall] = field(default_factory=list)

    def _answer(self, messages: Sequence[Message], options: dict[str, Any]) -> str:
        route = schema_name(options.get("response_format")) or "response"
        self.calls.append(ScriptedCall(route, [dict(m) for m in messages], dict(options)))
        script = self.routes.get(route)
        if script is None:
            if self.default is None:
                raise KeyError(f"ScriptedChatClient has no script for route {route!r}")
            answer: Any = self.default
        elif callable(script):
            answer = script(messages, options)
        else:
            used = sum(1 for c in self.calls if c.route == route) - 1
            answer = script[min(used, len(script) - 1)]
        return answer if isinstance(answer, str) else json.dumps(answer)

    async def chat(
        self,
        messages: Sequence[Message],
        *,
        model: str | None = None,
        max_tokens: int = 128,
        temperature: float = 0.0,
        response_format: dict[str, Any] | None = None,
    ) -> ChatResult:
        started = time.perf_counter()
        options = {"model": model, "max_tokens": max_tokens, "temperature": temperature,
                   "response_format": response_format}
        text = self._answer(messages, options)
        return ChatResult(text, model or self.model, _count(messages), len(text.split()),
                          time.perf_counter() - started, "stop")

    async def stream(
        self,
        messages: Sequence[Message],
        *,
        model: str | None = None,
        max_tokens: int = 128,
        temperature: float = 0.0,
    ) -> AsyncIterator[str | ChatResult]:
        result = await self.chat(messages, model=model, max_tokens=max_tokens,
                                 temperature=temperature)
        for i, word in enumerate(result.content.split(" ")):
            yield word if i == 0 else " " + word
        yield result

    def routed(self, route: str) -> list[ScriptedCall]:
        """The requests one route received, in order."""
        return [c for c in self.calls if c.route == route]


def _count(messages: Sequence[Message]) -> int:
    return sum(len(str(m.get("content", "")).split()) for m in messages)
