"""Request bodies of the gateway, validated by pydantic, and OpenAI response shapes."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from wow_ray.agents.events import DeltaEvent, DoneEvent, ResetEvent, ServiceEvent
from wow_ray.llm.wire import END_OF_STREAM, format_sse

ID = r"^[A-Za-z0-9_.:-]{1,64}$"


class CreateSession(BaseModel):
    """A new session. Who the customer is comes from the customer token, never from the body."""

    model_config = ConfigDict(extra="forbid")

    scenario: str | None = Field(None, description="Must be this service's scenario if given.")
    evidence: list[str] = Field(default_factory=list, max_length=10,
                                description="Evidence already provided (photo, receipt...).")
    simulated: bool = Field(False, description="A simulated customer (evaluation): the session "
                            "is marked and never exported as traffic.")
    metadata: dict[str, str | int | float | bool | None] = Field(
        default_factory=dict, description="Free labels stored with the session (channel...).")

    @field_validator("metadata")
    @classmethod
    def _small(cls, value: dict) -> dict:
        if len(value) > 20 or len(json.dumps(value)) > 2000:
            raise ValueError("at most 20 keys and 2000 characters")
        return value


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    content: str = Field(min_length=1, max_length=100_000, description="The customer's message.")
    attachments: list[str] = Field(default_factory=list, max_length=5,
                                   description="Evidence sent with it (the pack's kinds: photo...).")

    @field_validator("content")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value


class TextPart(BaseModel):
    """One part of a message's content, as the official OpenAI clients send it."""

    model_config = ConfigDict(extra="ignore")

    type: Literal["text"]
    text: str


class ChatMessageIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None

    @field_validator("content", mode="after")
    @classmethod
    def _joined(cls, value: str | list[TextPart] | None) -> str | None:
        return "".join(p.text for p in value) if isinstance(value, list) else value


class ChatCompletionsBody(BaseModel):
    """The OpenAI request fields the facade uses (others are accepted and ignored)."""

    model_config = ConfigDict(extra="ignore")

    model: str | None = None
    messages: list[ChatMessageIn] = Field(min_length=1)
    stream: bool = False
    user: str | None = Field(None, max_length=256, description="OpenAI's end-user label; "
                             "ignored for identity, which only the customer token gives.")
    session_id: str | None = Field(None, pattern=ID)

    def last_user_message(self) -> str:
        return self._split()[1]

    def _split(self) -> tuple[list[ChatMessageIn], str]:
        """The conversation before this turn, and this turn's message (the last user one)."""
        said = [m for m in self.messages if m.role in ("user", "assistant")]
        if not said or said[-1].role != "user" or not (said[-1].content or "").strip():
            from fastapi import HTTPException

            raise HTTPException(422, [{"field": "messages", "error": "the last message must be a "
                                       "non-empty user message"}])
        return said[:-1], said[-1].content or ""

    def history_mismatch(self, history: list[tuple[str, str]]) -> str | None:
        """Why the earlier messages of the body disagree with the session's ``history`` of
        (role, text) lines, or None. Only this turn's message is new: earlier ones the client
        resends must be what the session holds (its customer lines, and the agent's replies
        where the client includes them), never a different past."""
        earlier, _ = self._split()
        for role, name in (("user", "customer"), ("assistant", "agent")):
            sent = [m.content or "" for m in earlier if m.role == role]
            held = [text for who, text in history if who == name]
            if sent and sent != held[:len(sent)] or len(sent) > len(held):
                return (f"the earlier {role} messages differ from this session's history; send "
                        "the conversation as the session holds it, or only the new message")
        return None


def completion_response(completion_id: str, model: str, text: str, session_id: str) -> dict[str, Any]:
    return {
        "id": completion_id, "object": "chat.completion", "created": int(time.time()),
        "model": model, "session_id": session_id,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                     "finish_reason": "stop"}],
    }


def completion_chunk(completion_id: str, model: str, text: str, finish: str | None) -> str:
    chunk = {"id": completion_id, "object": "chat.completion.chunk", "created": int(time.time()),
             "model": model, "choices": [{"index": 0, "delta": {"content": text} if text else {},
                                          "finish_reason": finish}]}
    return format_sse(json.dumps(chunk))


async def completion_stream(events: AsyncIterator[ServiceEvent], completion_id: str,
                            model: str) -> AsyncIterator[str]:
    """A turn's events as an OpenAI stream: each delta sent as a chunk as it comes.

    The master streams only text that stands, and the gateway sends a restarted turn's text
    only where it extends what was shown (``turn_stream.ExtendOnly``; it never sends
    ``reset``). OpenAI streams cannot take text back, so this keeps its own guard for a
    ``reset`` from any other source of events: text after one is sent only where it extends
    what the client has; ``done`` sends whatever was not streamed.
    """
    sent, again, restarted = "", "", False
    async for item in events:
        more = ""
        if isinstance(item, DeltaEvent) and not restarted:
            more = item.text
        elif isinstance(item, DeltaEvent):
            again += item.text
            more = again[len(sent):] if again.startswith(sent) else ""
        elif isinstance(item, ResetEvent):
            restarted, again = True, ""
        elif isinstance(item, DoneEvent) and item.reply.startswith(sent):
            more = item.reply[len(sent):]
        if more:
            sent += more
            yield completion_chunk(completion_id, model, more, None)
        if isinstance(item, DoneEvent):
            yield completion_chunk(completion_id, model, "", "stop")
    yield format_sse(END_OF_STREAM)
