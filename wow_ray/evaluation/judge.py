"""Model-judged scores: a task's natural-language assertions, and the replies' tone.

Open dialogue has no golden text, so some qualities need a reader. A chat model reads the
transcript and answers each assertion as JSON (``{"met": bool, "why": str}``, schema-checked)
and rates the tone from 1 to 5. These scores are labelled model-judged and reported apart
from the deterministic ones: a judge as small as the embedded model is a weak witness.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from wow_ray.agents.transcript import Transcript
from wow_ray.llm.chat import ChatClient

_ASSERTION_SCHEMA = {"type": "object", "properties": {"met": {"type": "boolean"}, "why": {"type": "string"}},
                     "required": ["met"]}
_TONE_SCHEMA = {"type": "object", "properties": {"tone": {"type": "integer", "minimum": 1, "maximum": 5}},
                "required": ["tone"]}


class Assertion(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str
    met: bool | None = Field(None, description="None: the judge gave no valid answer.")
    why: str = ""


class Judged(BaseModel):
    """What the judge said; never part of the deterministic verdict."""

    model_config = ConfigDict(extra="forbid")

    model_judged: bool = True
    judge_model: str = ""
    assertions: list[Assertion] = Field(default_factory=list)
    tone: int | None = Field(None, description="1 (rude or robotic) to 5 (warm and clear).")

    @property
    def assertions_met(self) -> float | None:
        answered = [a for a in self.assertions if a.met is not None]
        return sum(a.met for a in answered) / len(answered) if answered else None


def dialogue_text(transcript: Transcript) -> str:
    return "\n".join(f"Customer: {t.customer}\nAgent: {t.reply}" for t in transcript.turns)


async def _ask(client: ChatClient, model: str | None, prompt: str, schema: dict[str, Any],
               name: str) -> tuple[dict[str, Any] | None, str]:
    fmt = {"type": "json_schema", "json_schema": {"name": name, "schema": schema}}
    try:
        result = await client.chat([{"role": "system", "content": "You judge customer-service "
                                     "dialogues. Answer with JSON only."},
                                    {"role": "user", "content": prompt}],
                                   model=model, max_tokens=60, temperature=0.0, response_format=fmt)
        data = json.loads(result.content)
        return (data if isinstance(data, dict) else None), result.model
    except (json.JSONDecodeError, ValidationError, Exception):  # noqa: BLE001 - no verdict, not a crash
        return None, model or ""


async def judge(assertions: list[str], transcript: Transcript, client: ChatClient,
                model: str | None = None) -> Judged:
    """Each assertion checked against the dialogue, then the tone rated."""
    text = dialogue_text(transcript)
    out = Judged()
    for assertion in assertions:
        data, used = await _ask(client, model, f"Dialogue:\n{text}\n\nIs this true of the agent? "
                                f"{assertion}", _ASSERTION_SCHEMA, "assertion")
        out.judge_model = out.judge_model or used
        met = data.get("met") if data else None
        out.assertions.append(Assertion(text=assertion, met=met if isinstance(met, bool) else None,
                                        why=str((data or {}).get("why", ""))[:300]))
    data, used = await _ask(client, model, f"Dialogue:\n{text}\n\nRate the agent's tone from 1 "
                            "(rude or robotic) to 5 (warm, clear and professional).", _TONE_SCHEMA, "tone")
    out.judge_model = out.judge_model or used
    tone = (data or {}).get("tone")
    out.tone = tone if isinstance(tone, int) and 1 <= tone <= 5 else None
    return out
