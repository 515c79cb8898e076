"""The OpenAI chat-completions wire format and server-sent events, read and written once.

Every reader of a stream goes through :func:`sse_events` (or :func:`asse_events`) and, for a
model's stream, :func:`completion_chunk`: the HTTP client reading any OpenAI-compatible URL,
the LLM deployment turning vLLM's event text into chunks inside its replica (so the Serve-handle
client receives chunks, never text), and the terminal reading the dialogue gateway's turn
events. Chunks then fold into a :class:`~wow_ray.llm.chat.ChatResult` in :class:`StreamTally`.

No httpx and no Ray here: the agents' side and the LLM replica import it alike.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from wow_ray.llm.chat import ChatResult, EngineTimes, LLMError

END_OF_STREAM = "[DONE]"


class LLMRequestError(LLMError):
    """The endpoint answered with an error status; ``status_code`` and the server's message."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(f"LLM endpoint answered {status_code}: {message}")
        self.status_code = status_code
        self.message = message


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "user", "assistant", "tool"]
    content: str


def request_body(model: str | None, messages: Sequence[ChatMessage | dict[str, Any]],
                 options: dict[str, Any]) -> dict[str, Any]:
    """A chat-completions request: validated messages, the options that are set, the model."""
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


# -- server-sent events -----------------------------------------------------------------------


@dataclass(frozen=True)
class ServerSentEvent:
    """One event of a ``text/event-stream``: its name (``message`` unless named) and data."""

    data: str
    event: str = "message"


def format_sse(data: str, event: str | None = None) -> str:
    """One event as stream text (``data`` must be a single line, as JSON text is)."""
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {data}\n\n"


class SSEDecoder:
    """Stream lines in, events out: an event ends at a blank line (the WHATWG rules, less
    ``id`` and ``retry``, which no stream here sends)."""

    def __init__(self) -> None:
        self._event: str | None = None
        self._data: list[str] = []

    def feed(self, line: str) -> ServerSentEvent | None:
        """Take one line (without its line break); return the event it completes, if any."""
        if not line:
            return self.end()
        if line.startswith(":"):  # a comment (keep-alive)
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        return None

    def end(self) -> ServerSentEvent | None:
        """The event still pending when the stream ends without a blank line, if any."""
        event, data = self._event, self._data
        self._event, self._data = None, []
        if not data:
            return None
        return ServerSentEvent("\n".join(data), event or "message")


def sse_events(lines: Iterable[str]) -> Iterator[ServerSentEvent]:
    """The events of a stream read line by line (``httpx.Response.iter_lines``, text lines)."""
    decoder = SSEDecoder()
    for line in lines:
        if (event := decoder.feed(line)) is not None:
            yield event
    if (event := decoder.end()) is not None:
        yield event


async def asse_events(lines: AsyncIterable[str]) -> AsyncIterator[ServerSentEvent]:
    """:func:`sse_events` for an asynchronous stream (``httpx.Response.aiter_lines``)."""
    decoder = SSEDecoder()
    async for line in lines:
        if (event := decoder.feed(line)) is not None:
            yield event
    if (event := decoder.end()) is not None:
        yield event


# -- OpenAI objects ---------------------------------------------------------------------------


def raise_if_error(payload: dict[str, Any]) -> dict[str, Any]:
    """``payload`` unchanged, unless it is an OpenAI error object: then raise it."""
    error = payload.get("error")
    if isinstance(error, dict):
        code = error.get("code")
        status = int(code) if isinstance(code, int | str) and str(code).isdigit() else 500
        raise LLMRequestError(status, str(error.get("message")))
    return payload


def completion_chunk(event: ServerSentEvent) -> dict[str, Any] | None:
    """The ``chat.completion.chunk`` an event of a model's stream holds (None: the end marker).
    An error sent in the stream raises :class:`LLMRequestError`."""
    if event.data.strip() == END_OF_STREAM:
        return None
    return raise_if_error(json.loads(event.data))


def completion_chunks(text: str) -> list[dict[str, Any]]:
    """The chunks in a piece of stream text (what vLLM's engine yields inside the replica)."""
    return [c for e in sse_events(text.splitlines()) if (c := completion_chunk(e)) is not None]


class RequestMetrics(BaseModel):
    """vLLM's per-request timing, in milliseconds: the ``metrics`` of a ``chat.completion``, or
    of a stream's final usage chunk, when the server runs with ``enable_per_request_metrics``
    (the LLM deployment does: ``wow_ray.llm.engine``). Measured in the engine core from its
    own timestamps: queued to scheduled, scheduled to first token, first to last token."""

    model_config = ConfigDict(extra="ignore")

    queue_time_ms: float | None = Field(None, ge=0)
    time_to_first_token_ms: float | None = Field(None, ge=0)
    generation_time_ms: float | None = Field(None, ge=0)

    def times(self) -> EngineTimes:
        def s(ms: float | None) -> float | None:
            return None if ms is None else round(ms / 1000, 4)

        return EngineTimes(queue_s=s(self.queue_time_ms),
                           prefill_s=s(self.time_to_first_token_ms),
                           decode_s=s(self.generation_time_ms))


def engine_times(payload: dict[str, Any]) -> EngineTimes | None:
    """The engine's times a response or chunk carries; None when it carries none, or ones that
    do not validate (they describe the call, they are not worth failing it for)."""
    metrics = payload.get("metrics")
    if not isinstance(metrics, dict):
        return None
    try:
        times = RequestMetrics.model_validate(metrics).times()
    except ValidationError:
        return None
    return times if times != EngineTimes() else None


def completion_result(data: dict[str, Any], model: str, started: float) -> ChatResult:
    """The ChatResult of one OpenAI ``chat.completion`` answer (HTTP and Serve handle alike)."""
    choice = raise_if_error(data)["choices"][0]
    usage = data.get("usage") or {}
    return ChatResult(choice["message"].get("content") or "", data.get("model", model),
                      usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0),
                      time.perf_counter() - started, choice.get("finish_reason"),
                      engine_times(data))


class StreamTally:
    """Folds ``chat.completion.chunk`` objects into the text pieces to show as they come and,
    at the end, the stream's ChatResult (HTTP and Serve handle send the same chunks)."""

    def __init__(self, model: str, started: float) -> None:
        self.model, self.started = model, started
        self.pieces: list[str] = []
        self.usage: dict[str, Any] = {}
        self.finish: str | None = None
        self.engine: EngineTimes | None = None

    def add(self, chunk: dict[str, Any]) -> list[str]:
        """Take one chunk; return its new text pieces."""
        self.model = chunk.get("model", self.model)
        self.usage = chunk.get("usage") or self.usage
        self.engine = engine_times(chunk) or self.engine  # on the final usage chunk
        new: list[str] = []
        for choice in chunk.get("choices", []):
            self.finish = choice.get("finish_reason") or self.finish
            if piece := (choice.get("delta") or {}).get("content"):
                new.append(piece)
        self.pieces.extend(new)
        return new

    def result(self) -> ChatResult:
        return ChatResult("".join(self.pieces), self.model, self.usage.get("prompt_tokens", 0),
                          self.usage.get("completion_tokens", 0),
                          time.perf_counter() - self.started, self.finish, self.engine)
