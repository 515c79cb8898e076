"""New data from failed dialogues: corrections at the turn where the agent went wrong.

Input: an ``EvaluatedDialogue``, a session transcript with the case it ran (a task id of the
pack, or the situation itself) and the evaluator's verdict. The oracle is replayed on the
case, and the transcript is walked turn by turn against it; the first of these is the
divergence:

- ``wrong_intent``: the turn was read as an intent the customer did not raise;
- ``wrong_action``: a write was executed that is not the oracle's next write (a refund the
  rules should not give, the wrong amount, the wrong tool);
- ``skipped_action``: the turn solved the request but stopped before a write the oracle does;
- ``missing_info``: the writes were right but the reply left out what must be told.

From it come corrected samples (what the understanding agent should have read, the oracle's
next calls from that point, the reply with the right facts) and preference pairs on the same
prompt (the agent's output rejected, the correction chosen). A failure on a held-out task is
refused: training on it would leak the test set.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from wow_ray.agents.prompts import PROMPTS, Line, ToolProposal, UnderstandingOutput
from wow_ray.agents.slots import appears_in, enum_mention
from wow_ray.agents.transcript import ToolCallRecord, Transcript, TurnRecord
from wow_ray.data.dialogues import DialogueBuilder, Draft, Segment
from wow_ray.data.formats import ChatSample, Message, PreferenceSample
from wow_ray.data.situations import LeakGuard
from wow_ray.errors import WowRayError
from wow_ray.scenario import ScenarioPack, Situation, ToolCall

DivergenceKind = Literal["wrong_intent", "wrong_action", "skipped_action", "missing_info"]


class FailureError(WowRayError):
    """An evaluated dialogue that cannot be turned into data (named, with why)."""


EVALUATED_DIALOGUE_VERSION = 2


class EvaluatedDialogue(BaseModel):
    """A dialogue an evaluator judged: the transcript, the case it ran, and the verdict.

    Version 1 had no ``schema_version`` and no scores; version 2 (``wow_ray.evaluation``)
    adds the trial, whether the customer was simulated, and the scorers' results. Fields are
    only added, so a version-1 line still reads."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = Field(EVALUATED_DIALOGUE_VERSION, description="Read as 1 when absent.")
    transcript: Transcript
    task_id: str | None = Field(None, description="The pack task the simulator played.")
    situation: Situation | None = Field(None, description="The case, when it is not a task.")
    success: bool = False
    reward: float | None = None
    notes: list[str] = Field(default_factory=list, description="The evaluator's reasons.")
    trial: int | None = Field(None, description="Which of the k trials of the task this was.")
    simulated: bool = Field(False, description="Played by a simulated customer, not live traffic.")
    scores: dict[str, Any] | None = Field(None, description="Every scorer's result (EpisodeScores).")

    @model_validator(mode="before")
    @classmethod
    def _version_one_when_absent(cls, data: Any) -> Any:
        if isinstance(data, dict) and "schema_version" not in data and "transcript" in data \
                and "scores" not in data:
            return {**data, "schema_version": 1}
        return data


@dataclass
class Divergence:
    """Where and how the agent left the oracle's trajectory."""

    kind: DivergenceKind
    turn: int
    request: int
    step: int  # index into the request's oracle steps of the correct next call
    agent_call: ToolCall | None = None
    detail: str = ""


def _writes(turn: TurnRecord) -> list[ToolCallRecord]:
    return [c for c in turn.tool_calls if c.executed and c.kind == "write"]


def _request_of(situation: Situation, intent: str | None, current: int) -> int:
    for k in range(current, len(situation.requests)):
        if situation.requests[k].intent == intent:
            return k
    return current


def find_divergence(situation: Situation, segments: list[Segment], transcript: Transcript,
                    ends: set[str]) -> Divergence | None:
    """The first turn where the transcript leaves the oracle's trajectory (None: it does not)."""
    intents = {r.intent for r in situation.requests}
    current = 0
    matched = [0] * len(segments)  # oracle writes matched so far, per request
    writes = [[(i, s) for i, s in enumerate(seg.steps) if s.kind == "write"] for seg in segments]
    for turn in transcript.turns:
        if turn.intent is not None and turn.intent not in intents:
            return Divergence("wrong_intent", turn.index, current, 0, detail=f"read as {turn.intent}")
        current = _request_of(situation, turn.intent, current)
        expected = writes[current]
        for record in _writes(turn):
            call = ToolCall(name=record.name, arguments=record.arguments)
            k = matched[current]
            if k < len(expected) and expected[k][1].call.key() == call.key():
                matched[current] += 1
                continue
            step = expected[k][0] if k < len(expected) else len(segments[current].steps)
            return Divergence("wrong_action", turn.index, current, step, call,
                              f"did {record.name}, the oracle's next write is "
                              f"{expected[k][1].call.name if k < len(expected) else 'none'}")
        solved = any(s.agent == "solution" for s in turn.steps) or turn.handoff is not None
        if solved and matched[current] < len(expected):
            step = expected[matched[current]][0]
            nxt = expected[matched[current]][1].call
            if nxt.name not in ends or turn.handoff is None:
                return Divergence("skipped_action", turn.index, current, step, None,
                                  f"stopped before {nxt.name}")
        if solved and matched[current] == len(expected):
            lost = [v for v in segments[current].communicate if v not in turn.reply]
            if lost:
                return Divergence("missing_info", turn.index, current, len(segments[current].steps),
                                  None, f"reply leaves out {', '.join(lost)}")
    for k, seg_writes in enumerate(writes):
        if matched[k] < len(seg_writes) and transcript.turns:
            last = transcript.turns[-1]
            return Divergence("skipped_action", last.index, k, seg_writes[matched[k]][0], None,
                              f"the dialogue ended before {seg_writes[matched[k]][1].call.name}")
    return None


class FailureConverter:
    """Corrected samples and preference pairs from failed dialogues of one pack."""

    def __init__(self, pack: ScenarioPack, builder: DialogueBuilder | None = None,
                 guard: LeakGuard | None = None) -> None:
        from wow_ray.data.pipeline import pack_fingerprint

        self.pack = pack
        self.builder = builder or DialogueBuilder(pack, pack_fingerprint(pack), source="failure")
        self.builder.source = "failure"
        self.guard = guard or LeakGuard.from_pack(pack)
        self.ends = {t.spec.name for t in pack.tools if t.spec.ends_dialogue}
        self.tasks = {t.id: t for t in pack.tasks}

    def situation(self, item: EvaluatedDialogue) -> Situation:
        if item.task_id is not None:
            task = self.tasks.get(item.task_id)
            if task is None:
                raise FailureError(f"{item.transcript.session_id}: no task {item.task_id!r} in {self.pack.name}")
            if item.task_id in self.guard.task_ids:
                raise FailureError(f"{item.transcript.session_id}: task {item.task_id} is in a held-out "
                                   f"split ({task.split}); its failures must not become training data")
            return task.situation
        if item.situation is None:
            raise FailureError(f"{item.transcript.session_id}: needs a task_id or a situation")
        if not self.guard.situation_allowed(item.situation):
            raise FailureError(f"{item.transcript.session_id}: the situation touches held-out data")
        return item.situation

    def convert(self, item: EvaluatedDialogue) -> tuple[list[ChatSample], list[PreferenceSample], Divergence | None]:
        """Corrections and pairs for one dialogue (none when it never left the trajectory)."""
        situation = self.situation(item)
        segments = self.builder.segments(situation)
        div = find_divergence(situation, segments, item.transcript, self.ends)
        if div is None:
            return [], [], None
        t = item.transcript
        turn = next(x for x in t.turns if x.index == div.turn)
        outcome = {"success": item.success, "reward": item.reward, "divergence": div.kind,
                   "turn": div.turn, "detail": div.detail, "status": t.outcome.status}
        seed = int.from_bytes(hashlib.sha256(t.session_id.encode()).digest()[:8], "big")
        d = Draft(t.session_id, situation, random.Random(seed), "failure")
        d.situation_id = item.task_id or t.session_id  # the dialogue stays the session's own
        d.history = [line for x in t.turns if x.index < div.turn
                     for line in (Line(role="customer", text=x.customer), Line(role="agent", text=x.reply))]
        d.turn = div.turn
        d.done = [s.call for seg in segments[:div.request] for s in seg.steps]
        request = situation.requests[div.request]
        if div.kind == "wrong_intent":
            self._intent(d, turn, request)
        else:
            d.history.append(Line(role="customer", text=turn.customer))
            self.builder.solve(d, request.intent, dict(request.slots), segments[div.request],
                                start=min(div.step, len(segments[div.request].steps)))
        samples = d.samples
        for s in samples:
            s.meta.outcome = outcome
        pairs = self._pairs(samples, div, turn, outcome)
        return samples, pairs, div

    def _intent(self, d: Draft, turn: TurnRecord, request: Any) -> None:
        said = {}
        for slot in self.pack.intent(request.intent).slots:
            value = request.slots.get(slot.name)
            if value is None:
                continue
            if (slot.enum and enum_mention(slot, turn.customer) == value) or (
                    not slot.enum and appears_in(value, turn.customer)):
                said[slot.name] = value
        self.builder.understand(d, turn.customer, request.intent, said, "failure:wrong_intent")
        step = next((s for s in turn.steps if s.agent == "understanding"), None)
        if step is not None and step.input:  # the exact prompt the agent saw
            d.samples[-1].meta.input = step.input
            spec = PROMPTS["understanding"]
            inp = spec.input_model.model_validate(step.input)
            if request.intent in [c.name for c in inp.candidates]:
                out = UnderstandingOutput(intent=request.intent, slots=said)
                d.samples[-1].messages = [*(Message(**m) for m in spec.messages(inp)),
                                          Message(role="assistant", content=spec.render(out, inp))]

    def _pairs(self, samples: list[ChatSample], div: Divergence, turn: TurnRecord,
               outcome: dict[str, Any]) -> list[PreferenceSample]:
        """The first corrected decision and the corrected reply, each against the agent's."""
        rejected: dict[str, str] = {}
        if div.kind == "wrong_intent":
            rejected["understanding"] = PROMPTS["understanding"].render(
                UnderstandingOutput(intent=turn.intent or "none", slots={}))
        if div.kind in ("wrong_action", "skipped_action"):
            proposal = (ToolProposal(tool=div.agent_call.name, arguments=div.agent_call.arguments)
                        if div.agent_call else ToolProposal(tool="done"))
            rejected["solution"] = PROMPTS["solution"].render(proposal)
        if turn.reply.strip():
            rejected["response"] = turn.reply.strip()
        pairs, seen = [], set()
        for sample in samples:
            agent = sample.meta.agent
            if agent in rejected and agent not in seen and rejected[agent] != sample.target:
                seen.add(agent)
                meta = sample.meta.model_copy(update={"outcome": outcome})
                pairs.append(PreferenceSample(id=f"{sample.id}:pair", prompt=sample.prompt,
                                              chosen=sample.target, rejected=rejected[agent], meta=meta))
        return pairs


def register_failures(registry: Any, pack: ScenarioPack, items: list[EvaluatedDialogue], *,
                      name: str, inputs: list[str], source: str,
                      report: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Convert failed dialogues and register the corrections (``name``, sft) and preference pairs
    (``name-pref``); the entries registered, by kind. Used by ``wow-ray data from-failures`` and
    by the loop."""
    from wow_ray.agents.prompts import PROMPT_VERSION
    from wow_ray.data.formats import Sources
    from wow_ray.data.pipeline import pack_fingerprint
    from wow_ray.data.store import register_samples

    converter = FailureConverter(pack)
    samples: list[ChatSample] = []
    pairs: list[PreferenceSample] = []
    for item in items:
        try:
            s, p, div = converter.convert(item)
        except FailureError as exc:
            report(f"skipped {exc}")
            continue
        samples += s
        pairs += p
        report(f"{item.transcript.session_id}: "
               f"{div.kind + ' at turn ' + str(div.turn) if div else 'no divergence'}"
               f" -> {len(s)} samples, {len(p)} pairs")
    sources = Sources(pack={"name": pack.name, "version": pack.manifest.version,
                            "content_sha256": pack_fingerprint(pack),
                            "rules_version": pack.rules.version},
                      prompt_version=PROMPT_VERSION, seed=0, inputs=inputs)
    registered = {}
    for dataset, kind, records in ((name, "sft", samples), (f"{name}-pref", "preference", pairs)):
        if records:
            entry, _ = register_samples(registry, dataset, kind, records, sources, source=source)
            registered[kind] = entry
            report(f"registered {entry.ref} ({len(records)} {kind} records)")
    return registered
