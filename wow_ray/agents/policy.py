"""The policy and compliance agent: the rule gate every tool call passes, and the policy text.

This is the one place tool calls reach a session's backend. ``execute`` checks the proposed
call with the pack's rule engine against the session's facts (``DialogueState``) and the
records it touches, and runs it only if the rules allow; a denial comes back with the rule ids
and the reason the policy gives the customer. The model never sees a way around it: agents
propose calls, this code decides, whatever any prompt, order note or knowledge article says.
Facts that unlock writes (who the customer is, whether they are verified, what evidence they
sent) come from the session API, never from what the customer types.

No model is called here: the verdict is deterministic, and so is the text that explains it
(the rule's ``customer_reason``, written by the business).
"""

from __future__ import annotations

import re
import time

from wow_ray.agents.base import Agent
from wow_ray.agents.environment import SessionEnvironments
from wow_ray.agents.messages import (
    ExecuteRequest,
    ExecuteResult,
    ObligationInfo,
    Review,
    ReviewRequest,
)
from wow_ray.agents.slots import words
from wow_ray.agents.transcript import AgentStep, RuleDecisionRecord, ToolCallRecord
from wow_ray.scenario import ScenarioPack

POLICY_AGENT = Agent(
    name="policy",
    instructions="Check every proposed tool call against the rules; explain denials as the "
    "policy says; report what the rules require next.",
)
_SECTION = re.compile(r"^## +(.+)$", re.MULTILINE)
MAX_SECTION_CHARS = 900


def policy_sections(policy: str) -> dict[str, str]:
    """``## Heading`` -> the section's text (the preamble under the title as ''). """
    parts = _SECTION.split(policy)
    sections = {"": parts[0].strip()}
    for heading, body in zip(parts[1::2], parts[2::2], strict=True):
        sections[heading.strip()] = f"## {heading.strip()}\n{body.strip()}"
    return sections


_STOP = frozenset({"the", "order", "customer", "wants", "their", "about", "from", "with"})


def _stems(text: str) -> set[str]:
    return {w[:5] for w in words(text) if len(w) > 2 and w not in _STOP}


class PolicyAgent:
    """The rule gate and executor for one pack (the pack's rule engine hot-reloads)."""

    agent = POLICY_AGENT

    def __init__(self, pack: ScenarioPack, envs: SessionEnvironments | None = None) -> None:
        self.pack = pack
        self.envs = envs or SessionEnvironments(pack)
        self._by_intent: dict[str, str] = {}
        self.set_policy(pack.policy)

    def set_policy(self, text: str) -> None:
        """Use ``text`` as the policy (hot reload); intents are matched to sections again."""
        self.pack.policy = text
        sections = {h: b for h, b in policy_sections(text).items() if h}
        self._by_intent = {}
        for intent in self.pack.intents:
            # Crude stems (first five letters) so 'cancel' meets 'Cancellations'; the heading
            # counts most, the intent's name and description are the query.
            query = _stems(f"{intent.name.replace('_', ' ')} {intent.description}")
            scored = sorted(((4 * len(query & _stems(h)) + len(query & _stems(body)), h)
                             for h, body in sections.items()), reverse=True)
            if scored and scored[0][0] > 0:
                self._by_intent[intent.name] = sections[scored[0][1]][:MAX_SECTION_CHARS]
            elif not sections:  # a short policy without sections applies to every intent
                self._by_intent[intent.name] = text.strip()[:MAX_SECTION_CHARS]

    def section_for(self, intent: str | None) -> str:
        """The policy section that governs ``intent`` ('' if none does)."""
        return self._by_intent.get(intent or "", "")

    async def execute(self, req: ExecuteRequest) -> ExecuteResult:
        """Check ``req.call`` and run it if the rules allow; the verdict is in the record."""
        started = time.perf_counter()
        env = self.envs.get(req.session_id, req.actions)
        state = req.dialogue.model_copy(deep=True)
        call = req.call
        kind = self.pack.tools.spec(call.name).kind if call.name in self.pack.tools else "unknown"
        record = ToolCallRecord(name=call.name, arguments=dict(call.arguments), kind=kind,
                                proposed_by=req.proposed_by, source=req.source,
                                dry_run=req.dry_run)
        if state.ended:
            record.error = "the conversation was handed over; no further actions"
            return ExecuteResult(record=record, dialogue=state)
        # One pass of the gate: arguments validated once, rules asked once, the decision kept in
        # the record; an allowed call then runs on the validated arguments, not checked again.
        verdict = env.gate(call, state)
        decision = verdict.decision
        record.decision = RuleDecisionRecord(**decision.to_dict())
        action = None
        if req.dry_run:
            record.error = None if decision.allowed else decision.customer_reason
        elif decision.allowed:
            result = env.run(verdict, state)
            record.ok, record.result, record.error = result.ok, result.content, result.error
            if result.ok:
                record.executed = True
                action = verdict.call
                self.envs.advanced(req.session_id, [*req.actions, action])
        else:
            record.error = decision.customer_reason or "not allowed"
        record.latency_s = round(time.perf_counter() - started, 6)
        return ExecuteResult(record=record, dialogue=state, action=action)

    async def review(self, req: ReviewRequest) -> Review:
        """What the rules require before anything else, and the policy text for the intent."""
        started = time.perf_counter()
        env = self.envs.get(req.session_id, req.actions)
        obligations = [
            ObligationInfo(rule_id=o.rule_id, tool=o.tool,
                           arguments={k: v for k, v in o.arguments.items() if v is not None},
                           customer_reason=o.customer_reason,
                           ends_dialogue=o.tool in self.pack.tools
                           and self.pack.tools.spec(o.tool).ends_dialogue)
            for o in env.obligations(req.dialogue)
        ]
        step = AgentStep(agent=self.agent.name, input={"intent": req.intent},
                         output={"obligations": [o.model_dump() for o in obligations]})
        step.latency_s = round(time.perf_counter() - started, 6)
        return Review(obligations=obligations, policy=self.section_for(req.intent),
                      rules_version=self.pack.rules.version, step=step)
