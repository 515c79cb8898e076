"""Optional paraphrase of templated customer messages by the served LLM (off by default).

Templates give correct but stiff text; a model rewording some openings makes the customer
side less uniform. A paraphrase is used only if it keeps every value the sample's labels rely
on (ids, amounts, free text the customer gave, keywords that raise a flag), adds no id or
number of its own, stays English and of a sane length; otherwise the template text stays. A
failed or unreachable endpoint also falls back to the template, so a build never depends on
the model being good or up.
"""

from __future__ import annotations

import random
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from wow_ray.data.filters import english_problem

_NUMBERISH = re.compile(r"\b[A-Za-z]{0,3}[0-9][0-9.]*\b")
PROMPT = ("Rewrite this customer-service message the way a real customer might write it. Keep "
          "the meaning, and copy every id, number and quoted value exactly. Answer with the "
          "rewritten message only.\n\nMessage: {text}")


class ParaphraseConfig(BaseModel):
    """Where the model is and how much of the customer text it rewrites."""

    model_config = ConfigDict(extra="forbid")

    base_url: str = Field(description="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000.")
    model: str | None = Field(None, description="Model id to request; None: the server's default.")
    rate: float = Field(0.3, ge=0, le=1, description="Share of opening messages to rewrite.")
    max_tokens: int = Field(96, ge=8, le=512)
    temperature: float = Field(0.7, ge=0, le=2)
    timeout_s: float = Field(60.0, gt=0)


class Paraphraser:
    """Rewrites a text through the LLM, or returns None (keep the template)."""

    def __init__(self, config: ParaphraseConfig, seed: int = 0) -> None:
        from wow_ray.llm.client import OpenAIChatClient

        self.config = config
        self.rng = random.Random(seed)
        self.client = OpenAIChatClient(config.base_url, model=config.model, timeout_s=config.timeout_s)
        self.stats = {"asked": 0, "used": 0, "rejected": 0, "failed": 0}

    def __call__(self, text: str, keep: list[str]) -> str | None:
        if self.rng.random() >= self.config.rate:
            return None
        self.stats["asked"] += 1
        try:
            response = self.client.complete([{"role": "user", "content": PROMPT.format(text=text)}],
                                            max_tokens=self.config.max_tokens,
                                            temperature=self.config.temperature)
            candidate = response["choices"][0]["message"]["content"] or ""
        except Exception:  # noqa: BLE001 - any failure keeps the template text
            self.stats["failed"] += 1
            return None
        candidate = clean(candidate)
        if paraphrase_problem(text, candidate, keep) is not None:
            self.stats["rejected"] += 1
            return None
        self.stats["used"] += 1
        return candidate

    def close(self) -> None:
        self.client.close()


def clean(text: str) -> str:
    text = text.strip().strip('"').strip()
    for prefix in ("Rewritten message:", "Message:", "Customer:"):
        if text.lower().startswith(prefix.lower()):
            text = text[len(prefix):].strip()
    return " ".join(text.split())


def paraphrase_problem(original: str, candidate: str, keep: list[Any]) -> str | None:
    """Why ``candidate`` may not replace ``original`` (None: it may)."""
    if not 8 <= len(candidate) <= max(2 * len(original), 80):
        return "length"
    lost = [str(v) for v in keep if str(v).lower() not in candidate.lower()]
    if lost:
        return f"lost {', '.join(lost)}"
    allowed = {m.lower() for m in _NUMBERISH.findall(original)} | {str(v).lower() for v in keep}
    added = [m for m in _NUMBERISH.findall(candidate) if m.lower() not in allowed]
    if added:
        return f"added {', '.join(added)}"
    return english_problem(candidate)
