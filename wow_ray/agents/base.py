"""What every agent shares: its description as data, and the runner for its model calls.

An :class:`Agent` is data (name, what it is for, prompt, model settings, tools, handoffs), as
in the OpenAI Agents SDK; the specialist classes run one. :func:`run_structured` is the only
way an agent reads a structured answer from a model: it sends the prompt with a JSON-schema
``response_format``, parses and validates the answer, retries a bounded number of times with
the error shown to the model, and returns ``None`` when every attempt failed, so the caller
takes its safe fallback. Bad model output never raises and is never acted on unvalidated.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from wow_ray.agents.prompts import PROMPTS
from wow_ray.agents.transcript import AgentStep, LLMCallRecord
from wow_ray.errors import WowRayError
from wow_ray.llm.chat import ChatClient, ChatResult

T = TypeVar("T")


class AgentError(WowRayError):
    """Base of the errors agents raise on purpose (never for bad model output)."""


class InvalidOutput(ValueError):
    """A validator's verdict on a model answer; the message is shown to the model on retry."""


class ModelSettings(BaseModel):
    """How one agent calls the model."""

    model_config = ConfigDict(extra="forbid")

    use_model: bool = Field(True, description="False: deterministic path only, no LLM calls.")
    model: str | None = Field(
        None, description="Model id to request; None uses the client's default (the base model). "
        "An adapter is '<base>:<adapter>:vN'."
    )
    max_tokens: int = Field(64, ge=1, le=1024, description="Longest answer, in tokens.")
    temperature: float = Field(0.0, ge=0, le=2)
    retries: int = Field(1, ge=0, le=5, description="Extra attempts after an invalid answer.")
    retry_temperature: float = Field(
        0.4, ge=0, le=2, description="Temperature of retries: at 0 a retry repeats the mistake."
    )


@dataclass(frozen=True)
class Agent:
    """One agent as data: the master or a specialist."""

    name: str
    instructions: str
    prompt: str | None = None  # key of wow_ray.agents.prompts.PROMPTS; None: no model
    settings: ModelSettings = field(default_factory=ModelSettings)
    tools: tuple[str, ...] = ()
    handoffs: tuple[str, ...] = ()


def _record(result: ChatResult | None, attempt: int, model: str | None, latency: float,
            valid: bool, error: str | None, times: dict[str, float] | None = None) -> LLMCallRecord:
    engine = result.engine.model_dump() if result and result.engine else {}
    return LLMCallRecord(
        **{name: round(seconds, 4) for name, seconds in (times or {}).items()},
        **engine,
        model=result.model if result else (model or ""),
        attempt=attempt,
        prompt_tokens=result.prompt_tokens if result else 0,
        completion_tokens=result.completion_tokens if result else 0,
        latency_s=round(result.latency_s if result and result.latency_s else latency, 4),
        output=result.content if result else "",
        valid=valid,
        error=error,
    )


async def run_structured(
    client: ChatClient | None,
    agent: Agent,
    inp: BaseModel,
    step: AgentStep,
    validate: Callable[[dict[str, Any]], T],
) -> T | None:
    """The validated answer of ``agent``'s model to ``inp``, or None after bounded retries.

    ``validate`` gets the parsed JSON object and returns the value to use, raising
    ``InvalidOutput`` (or pydantic's ``ValidationError``) to reject it. Every attempt is
    recorded in ``step.llm_calls``.
    """
    settings = agent.settings
    if client is None or not settings.use_model or agent.prompt is None:
        return None
    spec = PROMPTS[agent.prompt]
    messages = spec.messages(inp)
    fmt = spec.response_format(inp)
    for attempt in range(settings.retries + 1):
        temperature = settings.temperature if attempt == 0 else settings.retry_temperature
        started = time.perf_counter()
        result: ChatResult | None = None
        try:
            result = await client.chat(messages, model=settings.model, max_tokens=settings.max_tokens,
                                       temperature=temperature, response_format=fmt)
            data = json.loads(result.content)
            if not isinstance(data, dict):
                raise InvalidOutput("the answer must be a JSON object")
            value = validate(data)
        except (json.JSONDecodeError, InvalidOutput, ValidationError) as exc:
            error = _describe(exc)
            step.llm_calls.append(_record(result, attempt, settings.model,
                                          time.perf_counter() - started, False, error))
            if result is not None:  # show the model its mistake on the next attempt
                messages = [*spec.messages(inp), {"role": "assistant", "content": result.content},
                            {"role": "user", "content": f"That answer is invalid: {error}. "
                             "Answer again with corrected JSON only."}]
            continue
        except Exception as exc:  # noqa: BLE001 - an unreachable model is a fallback, not a crash
            step.llm_calls.append(_record(result, attempt, settings.model,
                                          time.perf_counter() - started, False,
                                          f"{type(exc).__name__}: {exc}"[:500]))
            return None
        step.llm_calls.append(_record(result, attempt, settings.model,
                                      time.perf_counter() - started, True, None))
        return value
    return None


class TextGate(Protocol):
    """What :func:`run_text` needs of a reply gate (``wow_ray.agents.reply_gate.ReplyGate``)."""

    shown: str
    rejected: str | None
    streaming: bool

    def restart(self) -> None: ...
    def feed(self, piece: str) -> None: ...
    def close(self, finish_reason: str | None = None) -> None: ...


async def run_text(
    client: ChatClient | None,
    agent: Agent,
    inp: BaseModel,
    step: AgentStep,
    validate: Callable[[str], str],
    gate: TextGate,
) -> str | None:
    """Free text from ``agent``'s model, used only if every sentence of it stands.

    Each attempt's text goes through ``gate`` (streamed piece by piece when it streams), which
    keeps the checked prefix in ``gate.shown``. The text is returned when the gate kept all of
    it and ``validate`` accepts the whole. Otherwise the attempt is recorded as invalid, and
    another is made only while nothing was shown; the caller completes ``gate.shown`` (or
    falls back when it is empty), since text a customer has read is never taken back.
    """
    settings = agent.settings
    if client is None or not settings.use_model or agent.prompt is None:
        return None
    messages = PROMPTS[agent.prompt].messages(inp)
    for attempt in range(settings.retries + 1):
        if gate.shown:
            break
        gate.restart()
        temperature = settings.temperature if attempt == 0 else settings.retry_temperature
        started = time.perf_counter()
        result: ChatResult | None = None
        options = {"model": settings.model, "max_tokens": settings.max_tokens,
                   "temperature": temperature}
        times: dict[str, float] = {}  # first_token_s: queue and prefill; first_shown_s: + gate

        def piece(text: str, times: dict[str, float] = times, started: float = started) -> None:
            times.setdefault("first_token_s", time.perf_counter() - started)
            gate.feed(text)
            if gate.shown:
                times.setdefault("first_shown_s", time.perf_counter() - started)

        try:
            if gate.streaming:
                result = await _streamed(client.stream(messages, **options), piece)
            else:
                result = await client.chat(messages, **options)
                gate.feed(result.content)
            gate.close(result.finish_reason)
            if gate.streaming and gate.shown:  # a one-sentence reply stands only at the end
                times.setdefault("first_shown_s", time.perf_counter() - started)
            if gate.rejected is not None:
                raise InvalidOutput(gate.rejected)
            text = validate(gate.shown)
        except InvalidOutput as exc:
            step.llm_calls.append(_record(result, attempt, settings.model,
                                          time.perf_counter() - started, False, str(exc), times))
            continue
        except Exception as exc:  # noqa: BLE001 - see run_structured
            step.llm_calls.append(_record(result, attempt, settings.model,
                                          time.perf_counter() - started, False,
                                          f"{type(exc).__name__}: {exc}"[:500]))
            return None
        step.llm_calls.append(_record(result, attempt, settings.model,
                                      time.perf_counter() - started, True, None, times))
        return text
    return None


async def _streamed(pieces: AsyncIterator[str | ChatResult], on_piece: Callable[[str], Any]) -> ChatResult:
    final: ChatResult | None = None
    async for piece in pieces:
        if isinstance(piece, ChatResult):
            final = piece
        else:
            on_piece(piece)
    if final is None:
        raise AgentError("the stream ended without a final result")
    return final


def _describe(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'answer'}: {e['msg']}"
                         for e in exc.errors())[:300]
    if isinstance(exc, json.JSONDecodeError):
        return f"not valid JSON ({exc.msg})"
    return str(exc)[:300]
