"""The playbook planner: the pack's playbook for the intent, run live the way the oracle runs
it (``scenario/oracle.py``): reads first, then the first resolution of a choice the rules allow,
else its ``otherwise`` steps for the rules that refused. A resolution the customer demanded by
name goes first; when the rules refuse it, the first one they allow is offered instead
(``wow_ray/agents/offers.py``) and done only on the customer's yes.

Every call goes through the policy agent's gate (the solve run's ``execute``); conditions and
arguments are the oracle's compiled expressions, read against the session's local mirror.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from wow_ray.agents.messages import Denial, ExecuteRequest, Offer
from wow_ray.agents.prompt_inputs import offer_fact
from wow_ray.scenario import Oracle, ScenarioPack, ToolCall
from wow_ray.scenario.spec import CallStep, ChooseStep, SayStep

if TYPE_CHECKING:
    from wow_ray.agents.solution import Executor, SolveRun


class PlaybookPlanner:
    """Runs playbooks of one pack through the gate."""

    def __init__(self, pack: ScenarioPack, oracle: Oracle, executor: Executor, agent_name: str) -> None:
        self.pack, self.oracle, self.executor, self.agent_name = pack, oracle, executor, agent_name

    async def run(self, run: SolveRun) -> None:
        playbook = self.pack.playbooks.playbooks.get(run.req.intent)
        if playbook is None:
            return
        answering = run.req.offer is not None and run.req.consent is not None
        for step in playbook.steps:
            if run.stopped:
                return
            if isinstance(step, ChooseStep):
                await self._choose(run, step)
            elif isinstance(step, CallStep):
                if answering and self.pack.tools.spec(step.call).kind == "write":
                    continue  # done on the turn that made the offer; reads set the context
                await self._call_step(run, step)
            else:
                self._say(run, step)

    def _holds(self, run: SolveRun, step: Any) -> bool:
        return step.when is None or bool(self.oracle.compiled(step, "when", step.when)(run.context()))

    def _build(self, run: SolveRun, step: CallStep) -> ToolCall:
        args = self.oracle.compiled(step, "args", step.args)(run.context())
        return ToolCall(name=step.call, arguments={k: v for k, v in args.items() if v is not None})

    async def _attempt(self, run: SolveRun, step: CallStep, call: ToolCall | None = None) -> bool:
        call = call or self._build(run, step)
        if self.pack.tools.spec(call.name).kind == "write":
            await run.obligations()
            if run.stopped:
                return False
        record = await run.execute(call)
        if run.handoff is call:
            run.handoff_reason = run.handoff_reason or str(call.arguments.get("reason", "playbook"))
            return True
        if record.executed and step.communicate:
            self._tell(run, step, step.communicate)
        return record.executed

    async def _call_step(self, run: SolveRun, step: CallStep) -> bool:
        if not self._holds(run, step):
            return False
        done = await self._attempt(run, step)
        record = run.step.tool_calls[-1] if run.step.tool_calls else None
        if (not done and record is not None and record.kind == "read" and record.error
                and (record.decision is None or record.decision.allowed)):
            # The record the request is about does not exist: stop and ask again.
            run.not_found = [k for k, v in run.slots.items() if v in record.arguments.values()]
            run.facts.append(f"I couldn't find that: {record.error}.")
            run.halted = True
        return done

    def _tell(self, run: SolveRun, step: Any, texts: list[str]) -> None:
        for value in self.oracle.compiled(step, "communicate", texts)(run.context()):
            if value is not None and str(value) not in run.must_say:
                run.must_say.append(str(value))

    def _say(self, run: SolveRun, step: SayStep, denied: set[str] | None = None) -> None:
        if step.when_denied_by is not None and not (denied or set()) & set(step.when_denied_by):
            return
        if self._holds(run, step):
            self._tell(run, step, step.communicate)

    async def _choose(self, run: SolveRun, step: ChooseStep) -> None:
        if not self._holds(run, step):
            return
        before = len(run.denials)
        offer, demand = run.req.offer, run.req.demand
        if offer is not None and run.req.consent is not None \
                and any(o.call == offer.call.name for o in step.choose):
            await self._answered(run, step, offer)
            return
        demanded = next((o for o in step.choose if demand and o.call == demand.name), None)
        denied: set[str] = set()
        if demanded is not None:
            # What the customer asked for goes first, whatever its "when" says (as the
            # oracle does): whether it is permitted is the rules' decision.
            call = self._build(run, demanded)
            call.arguments.update(demand.arguments)
            if await self._attempt(run, demanded, call) or run.stopped:
                return
            refused = run.denials[before:]
            if refused:
                denied = await self._offer(run, step, call, refused)
                if run.offer is not None:
                    return
        else:
            tried = False
            for option in step.choose:
                if not self._holds(run, option):
                    continue
                tried = True
                if await self._attempt(run, option) or run.stopped:
                    return
            if not tried:
                # The reason is told to the customer, but nothing was refused: as for the
                # oracle, "otherwise" sees no denial.
                await self._explain(run, step)
                await self._otherwise(run, step, set())
                return
        denied |= {rule for d in run.denials[before:] for rule in d.rule_ids}
        await self._otherwise(run, step, denied)

    async def _otherwise(self, run: SolveRun, step: ChooseStep, denied: set[str]) -> None:
        for other in step.otherwise:
            if run.stopped:
                return
            if isinstance(other, SayStep):
                self._say(run, other, denied)
            elif other.when_denied_by is None or denied & set(other.when_denied_by):
                await self._call_step(run, other)

    async def _offer(self, run: SolveRun, step: ChooseStep, demanded: ToolCall,
                     refused: list[Denial]) -> set[str]:
        """The rules refused the customer's demand: offer the first other option they would
        allow (asked without acting), to be done only if the customer accepts. Returns the
        rules that refused the other options when none is allowed."""
        denied: set[str] = set()
        for option in step.choose:
            if not self._holds(run, option):
                continue
            call = self._build(run, option)
            if call.key() == demanded.key():
                continue
            out = await self.executor.execute(ExecuteRequest(
                session_id=run.req.session_id, dialogue=run.dialogue, actions=run.actions,
                call=call, proposed_by=self.agent_name, dry_run=True))
            run.step.tool_calls.append(out.record)
            decision = out.record.decision
            if decision is not None and decision.allowed:
                run.offer = Offer(call=call, demanded=demanded,
                                  denied_by=sorted({r for d in refused for r in d.rule_ids}),
                                  reasons=[d.customer_reason for d in refused if d.customer_reason])
                run.facts.append(offer_fact(self.pack, call))
                return set()
            if decision is not None:
                denied.update(decision.rule_ids)
        return denied

    async def _answered(self, run: SolveRun, step: ChooseStep, offer: Offer) -> None:
        """The customer answered an offer: accepted, it is done (through the gate again: the
        case may have changed); declined, the refusal stands and ``otherwise`` runs for the
        rules that refused the demand, as if no alternative had been allowed."""
        if run.req.consent:
            option = next(o for o in step.choose if o.call == offer.call.name)
            if await self._attempt(run, option, offer.call.model_copy(deep=True)) or run.stopped:
                return
        else:
            run.denials.extend(Denial(tool=offer.demanded.name, rule_ids=offer.denied_by,
                                      customer_reason=reason) for reason in offer.reasons)
        await self._otherwise(run, step, set(offer.denied_by))

    async def _explain(self, run: SolveRun, step: ChooseStep) -> None:
        """No resolution fits the case: ask the rules (without acting) why the first one
        would be refused, so the customer hears the policy's reason, not silence."""
        for option in step.choose:
            try:
                call = self._build(run, option)
            except Exception:  # noqa: BLE001 - an option that cannot even be built explains nothing
                continue
            out = await self.executor.execute(ExecuteRequest(
                session_id=run.req.session_id, dialogue=run.dialogue, actions=run.actions,
                call=call, proposed_by=self.agent_name, dry_run=True))
            decision = out.record.decision
            run.step.tool_calls.append(out.record)
            if decision is not None and not decision.allowed and decision.rule_ids:
                run.denials.append(Denial(tool=call.name, rule_ids=decision.rule_ids,
                                          customer_reason=decision.customer_reason))
                return
