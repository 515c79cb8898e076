"""Candidate data from live traffic: session transcripts, their outcomes, personal data masked.

Transcripts are read from the agents' session database (any SQLAlchemy URL; only its read API
is used). Before anything is written, personal fields are masked deterministically: names,
phone numbers, e-mail addresses and street addresses become ``<NAME_1>``, ``<PHONE_1>``, ...,
numbered in order of first appearance within a transcript, so the same person stays the same
token across turns and nothing can be reversed from the token. Values are found two ways:
by the keys they sit under in structured data (tool results, the hand-over note: ``name``,
``phone``, ``email``, ``*address``), and by patterns in free text (e-mail and phone shapes,
street addresses, "my name is ..."), plus the names the pack's fixtures hold. Account, order
and other record ids are pseudonymous and kept: they are what slot extraction learns.

Each masked transcript is kept whole (``transcripts.jsonl``, with its outcome) and each model
step in its trace is re-rendered as a chat sample of that agent, with the service's output as
the target, marked unreviewed: candidates for review, not trusted labels.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from wow_ray.agents.prompts import PROMPT_VERSION, PROMPTS, ToolProposal, UnderstandingOutput
from wow_ray.agents.transcript import AgentStep, Transcript
from wow_ray.data.formats import ChatSample, Message, SampleMeta
from wow_ray.scenario import ScenarioPack

_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
_PHONE = re.compile(r"(?<![\w])(?:\+?\d{1,3}[ -]?)?(?:\d[ -]?){9,12}\d(?![\w])")
_STREET = re.compile(
    r"\b\d{1,5}[A-Za-z]?\s+(?:[A-Z][\w'’.-]*\s+){1,4}(?:Road|Rd|Street|St|Avenue|Ave|Lane|Ln|"
    r"Boulevard|Blvd|Drive|Dr|Way|Alley|Court|Place)\b(?:,\s*[A-Z][\w'’.-]*(?:\s+[A-Z][\w'’.-]*)*){0,3}")
_CALLED = re.compile(r"\b(?:[Mm]y name is|[Ii] am|[Ii]'m|[Tt]his is)\s+([A-Z][a-z]+(?:\s+[A-Z][a-z]+){0,2})")
_KEYS = {"name": "NAME", "full_name": "NAME", "customer_name": "NAME", "phone": "PHONE",
         "mobile": "PHONE", "email": "EMAIL"}
_NOT_NAMES = {"Sorry", "Not", "Still", "Very", "So", "Really", "Here", "Just", "Waiting", "Happy"}


class Masker:
    """Masks one transcript at a time; the numbering restarts for each transcript."""

    def __init__(self, known_names: set[str] | None = None) -> None:
        self.known_names = sorted({n for n in (known_names or set()) if len(n) >= 4}, key=len, reverse=True)
        self.values: dict[str, str] = {}  # original -> token
        self.counts: dict[str, int] = {}

    @classmethod
    def for_pack(cls, pack: ScenarioPack | None) -> Masker:
        """A masker that also knows the people named in the pack's fixtures."""
        names: set[str] = set()
        if pack is not None:
            for table, rows in pack.fixtures.items():
                if "name" in pack.schema.tables[table].columns and _personal(table):
                    names |= {str(r["name"]) for r in rows if r.get("name")}
        return cls(names)

    def token(self, kind: str, value: str) -> str:
        if value not in self.values:
            self.counts[kind] = self.counts.get(kind, 0) + 1
            self.values[value] = f"<{kind}_{self.counts[kind]}>"
        return self.values[value]

    def mask(self, transcript: Transcript) -> Transcript:
        """A copy of ``transcript`` with every personal value replaced, everywhere in it."""
        self.values, self.counts = {}, {}
        data = transcript.model_dump(mode="json")
        self._collect(data, None)
        return Transcript.model_validate(self._replace(data))

    def _collect(self, node: Any, key: str | None) -> None:
        """First pass: values under personal keys, so they are masked wherever they appear."""
        if isinstance(node, dict):
            keys = set(node)
            # A record of a person (customer, rider): has contact keys and is no business or item.
            person = bool(keys & {"email", "phone"}) and not keys & {"merchant_id", "item_id", "hotel_id"}
            for k, v in node.items():
                if k in ("name", "full_name") and not person:
                    continue
                self._collect(v, k)
        elif isinstance(node, list):
            for v in node:
                self._collect(v, key)
        elif isinstance(node, str) and key is not None and node.strip():
            kind = _KEYS.get(key) or ("ADDRESS" if key.endswith("address") else None)
            if kind is not None:
                self.token(kind, node)

    def _replace(self, node: Any) -> Any:
        if isinstance(node, dict):
            return {k: self._replace(v) for k, v in node.items()}
        if isinstance(node, list):
            return [self._replace(v) for v in node]
        if isinstance(node, str):
            return self.text(node)
        return node

    def text(self, text: str) -> str:
        """Mask one string: known values first (longest first), then the patterns."""
        for value in sorted(self.values, key=len, reverse=True):
            if value in text:
                text = text.replace(value, self.values[value])
        for name in self.known_names:
            if name in text:
                text = text.replace(name, self.token("NAME", name))
        text = _EMAIL.sub(lambda m: self.token("EMAIL", m.group(0)), text)
        text = _STREET.sub(lambda m: self.token("ADDRESS", m.group(0)), text)
        text = _PHONE.sub(lambda m: self.token("PHONE", m.group(0)), text)

        def called(m: re.Match[str]) -> str:
            name = m.group(1)
            if name.split()[0] in _NOT_NAMES:
                return m.group(0)
            return m.group(0).replace(name, self.token("NAME", name))

        return _CALLED.sub(called, text)


def _personal(table: str) -> bool:
    """Tables of people (customers, riders), not businesses (merchants, hotels)."""
    return any(word in table for word in ("user", "customer", "rider", "guest", "courier", "driver"))


def read_transcripts(url: str, *, since: timedelta | None = None, limit: int = 1000,
                     scenario: str | None = None) -> list[Transcript]:
    """Sessions from the database at ``url``, newest first (only the store's read API)."""
    from wow_ray.agents.sessions import SessionStore

    store = SessionStore(url)
    try:
        out = [store.transcript(sid) for sid in store.session_ids(since=since, limit=limit, simulated=False)]
    finally:
        store.engine.dispose()
    return [t for t in out if scenario is None or t.scenario == scenario]


def outcome_of(t: Transcript) -> dict[str, Any]:
    return {"status": t.outcome.status, "ended_by": t.outcome.ended_by,
            "handed_off": t.outcome.status == "handed_off", "turns": len(t.turns),
            "writes": [c.name for c in t.executed_writes]}


def _prompt_input(step: AgentStep) -> dict[str, Any] | None:
    """The prompt input the step's model saw (stored as the input, or under ``prompt``)."""
    if step.agent in ("solution", "handoff"):
        return step.input.get("prompt")
    return step.input or None


def _target(step: AgentStep) -> str | None:
    """What the service did at this step, as the agent's rendered answer."""
    spec = PROMPTS[step.agent]
    out = step.output
    if step.agent == "understanding" and "intent" in out:
        return spec.render(UnderstandingOutput(intent=out["intent"] or "none", slots=out.get("slots") or {}))
    if step.agent == "master" and "next" in out:
        return spec.render(spec.output_model(next=out["next"]))
    if step.agent == "response" and out.get("text"):
        return spec.render(out["text"])
    if step.agent == "handoff" and out.get("summary"):
        return spec.render(spec.output_model(summary=out["summary"]))
    if step.agent == "solution":
        valid = [c.output for c in step.llm_calls if c.valid and c.output]
        if valid:
            import json

            data = json.loads(valid[-1])
            return spec.render(ToolProposal.model_validate({"arguments": {}, **data}))
    return None


def human_reply_samples(t: Transcript, pack_version: str) -> list[ChatSample]:
    """One sample per reply a human colleague wrote (a taken-over session): the conversation
    before it, then the colleague's reply as the target. The agents' prompts never saw these
    situations, so the prompt is the plain conversation (kind ``human_reply``): a candidate for
    review, to be re-rendered for the agent that should learn it."""
    samples: list[ChatSample] = []
    conversation: list[Message] = [Message(
        role="system", content=f"You are a customer-service colleague of {t.scenario}. "
        "Reply to the customer.")]
    for turn in t.turns:
        if turn.customer:
            conversation.append(Message(role="user", content=turn.customer))
        if not turn.reply:
            continue
        if turn.by == "human" and len(conversation) > 1:
            meta = SampleMeta(
                agent="response", source="traffic", intent=turn.intent, pack=t.scenario,
                pack_version=pack_version, prompt_version=PROMPT_VERSION,
                situation_id=t.session_id, dialogue_id=f"traffic:{t.session_id}",
                turn=turn.index, kind="human_reply",
                outcome={**outcome_of(t), "reviewed": False, "operator": turn.operator})
            samples.append(ChatSample(
                id=f"human:{t.session_id}:{turn.index:03d}",
                messages=[*conversation, Message(role="assistant", content=turn.reply)], meta=meta))
        conversation.append(Message(role="assistant", content=turn.reply))
    return samples


def traffic_samples(t: Transcript, pack_version: str) -> list[ChatSample]:
    """One sample per model step of a (masked) transcript, the service's output as target;
    and one per reply a human colleague wrote (:func:`human_reply_samples`)."""
    samples = human_reply_samples(t, pack_version)
    outcome = outcome_of(t)
    for turn in t.turns:
        for step in turn.steps:
            if step.agent not in PROMPTS:
                continue
            raw, target = _prompt_input(step), _target(step)
            if not raw or not target:
                continue
            spec = PROMPTS[step.agent]
            try:
                inp = spec.input_model.model_validate(raw)
            except Exception:  # noqa: BLE001 - an older or partial record: not a sample
                continue
            messages = [Message(**m) for m in spec.messages(inp)]
            messages.append(Message(role="assistant", content=target))
            meta = SampleMeta(
                agent=step.agent, source="traffic", intent=turn.intent, pack=t.scenario,
                pack_version=pack_version, prompt_version=PROMPT_VERSION,
                situation_id=t.session_id, dialogue_id=f"traffic:{t.session_id}", turn=turn.index,
                kind="fallback" if step.fallback else "model" if step.llm_calls else "deterministic",
                outcome={**outcome, "reviewed": False}, input=inp.model_dump(mode="json"))
            samples.append(ChatSample(id=f"traffic:{t.session_id}:{turn.index:03d}:{len(samples):03d}",
                                      messages=messages, meta=meta))
    return samples
