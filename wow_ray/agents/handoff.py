"""The human-handoff agent: transfers the customer and leaves a ticket with a summary.

Called by the master when the rules require a human (a ``require`` rule such as food safety,
or a refusal whose playbook branch is a transfer) or the customer asks for one. It runs the
pack's hand-over tool (the one with ``ends_dialogue``) through the rule gate like any other
call, then writes the summary a colleague reads first. The summary comes from the model when
it passes validation, else from a template over the dialogue state, so a ticket always has
one. The reply does not depend on the summary, so the master asks for it separately
(``summarize``) and runs it beside the reply. The ticket itself is stored with the transcript by the session store.
"""

from __future__ import annotations

import time
from typing import Any

from wow_ray.agents.base import Agent, ModelSettings, run_structured
from wow_ray.agents.messages import ExecuteRequest, HandoffRequest, HandoffResult, WrittenSummary
from wow_ray.agents.prompt_inputs import handoff_input
from wow_ray.agents.prompts import HandoffInput, HandoffSummary
from wow_ray.agents.solution import Executor
from wow_ray.agents.transcript import AgentStep, HandoffRecord
from wow_ray.llm.chat import ChatClient
from wow_ray.scenario import ScenarioPack, ToolCall

HANDOFF_AGENT = Agent(
    name="handoff",
    instructions="Transfer the customer to a human and write the hand-over summary.",
    prompt="handoff",
    settings=ModelSettings(max_tokens=96, retries=0),
)
# Reasons the master passes, mapped to the hand-over tool's reason values where they differ.
_REASONS = {"customer_request": ["customer_request"], "customer_insists": ["customer_insists"]}


class HandoffAgent:
    """Hand-overs for one pack."""

    def __init__(self, pack: ScenarioPack, executor: Executor, client: ChatClient | None = None,
                 agent: Agent = HANDOFF_AGENT) -> None:
        self.pack = pack
        self.executor = executor
        self.client = client
        self.agent = agent
        self.tool = next((t.spec for t in pack.tools if t.spec.ends_dialogue), None)
        self.user_param = self._user_param()

    def _user_param(self) -> str | None:
        """The hand-over tool's parameter naming the customer (user_id, guest_id...)."""
        for entity in self.pack.manifest.entities.values():
            if "dialogue.user_id" in entity.lookup:
                for path in entity.lookup:
                    name = path.removeprefix("args.")
                    if path.startswith("args.") and self.tool and name in self.tool.parameters.properties:
                        return name
        return None

    def build_call(self, req: HandoffRequest) -> ToolCall | None:
        """The hand-over call: the one given, else the pack's tool with what the state knows."""
        if req.call is not None:
            return req.call
        if self.tool is None:
            return None
        args: dict[str, Any] = {}
        for name, schema in self.tool.parameters.properties.items():
            if name == self.user_param:
                args[name] = req.dialogue.user_id
            elif name == "reason" and schema.enum:
                wanted = [r for r in _REASONS.get(req.reason, [req.reason]) if r in schema.enum]
                args[name] = wanted[0] if wanted else schema.enum[0]
            elif req.slots.get(name) is not None:
                args[name] = req.slots[name]
        return ToolCall(name=self.tool.name, arguments={k: v for k, v in args.items() if v is not None})

    async def handoff(self, req: HandoffRequest) -> HandoffResult:
        started = time.perf_counter()
        step = AgentStep(agent=self.agent.name, input={"reason": req.reason})
        call = self.build_call(req)
        if call is None:
            step.error = "this pack has no hand-over tool"
            return HandoffResult(ok=False, dialogue=req.dialogue, actions=req.actions, step=step,
                                 customer_reason="I'm sorry, I can't transfer you from this chat.")
        out = await self.executor.execute(ExecuteRequest(
            session_id=req.session_id, dialogue=req.dialogue, actions=req.actions, call=call,
            proposed_by=self.agent.name, source="handoff"))
        step.tool_calls.append(out.record)
        decision = out.record.decision
        if out.action is None:
            step.latency_s = round(time.perf_counter() - started, 6)
            reason = (decision.customer_reason if decision else "") or (out.record.error or "")
            return HandoffResult(ok=False, dialogue=out.dialogue, actions=req.actions, step=step,
                                 customer_reason=reason)
        actions = [*req.actions, out.action]
        reason = str(out.action.arguments.get("reason", req.reason))
        result = out.record.result if isinstance(out.record.result, dict) else {}
        backend_ref = next((str(v) for k, v in result.items() if k.endswith("_id")), None)
        ticket = f"HT-{req.session_id[:8]}-{len(actions)}"
        record = HandoffRecord(ticket_id=ticket, reason=reason, summary="",
                               backend_ref=backend_ref)
        step.output = record.model_dump(exclude={"summary", "summary_source"})
        step.latency_s = round(time.perf_counter() - started, 6)
        if req.with_summary:
            written = await self.summarize(req.model_copy(update={"reason": reason}))
            record = written.added_to(record, step)
        told = decision.customer_reason if decision else ""
        if told == self.pack.rules.rules.data.defaults.deny_reason:
            told = ""  # an allow rule without its own reason carries the deny text; not for us
        return HandoffResult(ok=True, record=record, dialogue=out.dialogue, actions=actions,
                             customer_reason=told, step=step)

    async def summarize(self, req: HandoffRequest) -> WrittenSummary:
        """The summary of a hand-over made for ``req`` (``req.reason``: the reason the
        hand-over tool was called with). It reads only the request, never the reply, so the
        master runs it beside the reply (``with_summary=False``, then this)."""
        started = time.perf_counter()
        inp = handoff_input(
            self.pack, user_id=req.dialogue.user_id, identity_verified=req.dialogue.identity_verified,
            reason=req.reason, intent=req.intent, slots=req.slots, done=req.done,
            refused=req.refused, history=req.history)
        step = AgentStep(agent=self.agent.name, input={"prompt": inp.model_dump()})
        out = await run_structured(self.client, self.agent, inp, step, HandoffSummary.model_validate)
        if out is not None:
            summary, source = " ".join(out.summary.split()), "model"
        else:
            step.fallback = self.client is not None and self.agent.settings.use_model
            summary, source = self.template_summary(inp), "fallback"
        step.latency_s = round(time.perf_counter() - started, 6)
        return WrittenSummary(summary=summary, source=source, step=step)

    @staticmethod
    def template_summary(inp: HandoffInput) -> str:
        who = f"Customer {inp.user_id or '(unknown)'}" + ("" if inp.identity_verified else " (not verified)")
        want = f" about {inp.intent.replace('_', ' ')}" if inp.intent else ""
        slots = ", ".join(f"{k} {v}" for k, v in inp.slots.items() if v is not None)
        last = next((line.text for line in reversed(inp.history) if line.role == "customer"), "")
        parts = [f"{who}{want}{f' ({slots})' if slots else ''}.",
                 f"Done: {'; '.join(inp.done)}." if inp.done else "Nothing done yet.",
                 f"Refused: {'; '.join(inp.refused)}." if inp.refused else "",
                 f"Transferred: {inp.reason.replace('_', ' ')}.",
                 f'Last message: "{last[:160]}"' if last else ""]
        return " ".join(p for p in parts if p)[:400]
