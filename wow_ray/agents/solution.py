"""The solution agent: resolves a request with tool calls on the business backend, and looks
up the knowledge base.

Two planners, chosen per deployment:

- ``playbook`` (default): the pack's playbook for the intent, run live, the way the oracle
  runs it: reads first, then the first resolution the rules allow, else the ``otherwise``
  steps for the rules that refused. Correct whatever model serves, because the pack says what
  a by-the-book agent does.
- ``model``: the model proposes each next call (a JSON schema over the pack's tools); a
  proposal that fails validation after the retries hands over to the playbook for the rest.
  Meant for a fine-tuned adapter; the rule gate treats its proposals like any other.

Either way every call goes through the policy agent's gate (``executor``), which alone runs
tools; a call that ends the dialogue (a hand-over) is not run here but returned for the
handoff agent. Playbook conditions read the backend through a local mirror, kept in step by
applying each call the gate executed.
"""

from __future__ import annotations

import time
from typing import Any, Literal, Protocol

from wow_ray.agents.base import Agent, InvalidOutput, ModelSettings, run_structured
from wow_ray.agents.environment import SessionEnvironments
from wow_ray.agents.fact_sentences import money
from wow_ray.agents.messages import (
    Denial,
    ExecuteRequest,
    ExecuteResult,
    Offer,
    SolveRequest,
    SolveResult,
)
from wow_ray.agents.prompt_inputs import (
    KNOWLEDGE_RESULTS,
    knowledge,
    observation,
    offer_fact,
    planner_tools,
    solution_input,
    tool_fact,
)
from wow_ray.agents.prompts import DONE, Observation, ToolProposal
from wow_ray.agents.slots import id_shapes, words
from wow_ray.agents.transcript import AgentStep, ToolCallRecord
from wow_ray.llm.chat import ChatClient
from wow_ray.scenario import Environment, Oracle, ScenarioPack, ToolCall, apply_logged
from wow_ray.scenario.spec import CallStep, ChooseStep, Playbook, SayStep

Planner = Literal["playbook", "model"]
MAX_MODEL_STEPS = 4

SOLUTION_AGENT = Agent(
    name="solution",
    instructions="Resolve the request with the business tools and the knowledge base.",
    prompt="solution",
    settings=ModelSettings(max_tokens=96, retries=1),
)


class Executor(Protocol):
    """The gate that checks and runs tool calls (the policy agent, or a handle to it)."""

    async def execute(self, req: ExecuteRequest) -> ExecuteResult: ...


class _Run:
    """One solve: the state as it moves, and what the reply will need."""

    def __init__(self, agent: SolutionAgent, req: SolveRequest, env: Environment) -> None:
        self.agent, self.req, self.env = agent, req, env
        self.dialogue = req.dialogue.model_copy(deep=True)
        self.dialogue.slots = dict(req.slots)
        self.actions = list(req.actions)
        self.slots = dict(req.slots)
        self.result: Any = {}
        self.step = AgentStep(agent=agent.agent.name, input={
            "intent": req.intent, "slots": req.slots, "planner": agent.planner})
        self.denials: list[Denial] = []
        self.facts: list[str] = []
        self.read_facts: list[str] = []  # told only when nothing was written or refused
        self.must_say: list[str] = []
        self.handoff: ToolCall | None = None
        self.handoff_reason: str | None = None
        self.observations: list[Observation] = []
        self.not_found: list[str] = []  # slots whose value named no record
        self.offer: Offer | None = None  # made instead of a refused demand
        self.halted = False

    @property
    def stopped(self) -> bool:
        return self.handoff is not None or self.dialogue.ended or self.halted

    def context(self) -> Any:
        return self.env.context(self.dialogue, None, result=self.result)

    async def execute(self, call: ToolCall, source: str = "playbook", *,
                      tell: bool = True) -> ToolCallRecord:
        """Through the gate; a hand-over is set aside for the handoff agent instead."""
        pack = self.agent.pack
        if call.name in pack.tools and pack.tools.spec(call.name).ends_dialogue:
            self.handoff = call
            return ToolCallRecord(name=call.name, arguments=call.arguments, kind="write",
                                  proposed_by=self.agent.agent.name, source=source)
        out = await self.agent.executor.execute(ExecuteRequest(
            session_id=self.req.session_id, dialogue=self.dialogue, actions=self.actions,
            call=call, proposed_by=self.agent.agent.name, source=source))
        record = out.record
        self.step.tool_calls.append(record)
        self.dialogue = out.dialogue
        if out.action is not None:
            self.actions.append(out.action)
            apply_logged(self.env, out.action)
            self.agent.mirror.advanced(self.req.session_id, self.actions)
            self.result = record.result if isinstance(record.result, dict) else {"value": record.result}
            if tell:
                sentence = tool_fact(pack, call.name, out.action.arguments, record.result)
                (self.facts if record.kind == "write" else self.read_facts).append(sentence)
        elif record.decision is not None and not record.decision.allowed:
            self.denials.append(Denial(tool=call.name, rule_ids=record.decision.rule_ids,
                                       customer_reason=record.decision.customer_reason))
        self.observations.append(observation(call.name, call.arguments, record.ok,
                                             record.result, record.error))
        return record

    async def obligations(self) -> None:
        """Do what ``require`` rules demand first (a hand-over is set aside)."""
        for obligation in self.env.obligations(self.dialogue):
            if self.stopped:
                return
            if obligation.tool in self.dialogue.tools_called:
                continue
            call = obligation.as_call()
            if call.name in self.agent.pack.tools and self.agent.pack.tools.spec(call.name).ends_dialogue:
                self.handoff, self.handoff_reason = call, obligation.rule_id
                return
            await self.execute(call, "obligation")


class SolutionAgent:
    """Runs requests of one pack through the gate."""

    def __init__(self, pack: ScenarioPack, executor: Executor, client: ChatClient | None = None,
                 agent: Agent = SOLUTION_AGENT, planner: Planner = "playbook",
                 knowledge_results: int = KNOWLEDGE_RESULTS, planner_tools: Literal["intent", "all"] = "intent") -> None:
        self.pack = pack
        self.planner_tools = planner_tools
        self.executor = executor
        self.client = client
        self.agent = agent
        self.planner = planner
        self.knowledge_results = knowledge_results
        self.mirror = SessionEnvironments(pack)  # never shared with the gate's own copies
        self.oracle = Oracle(pack)  # compiles playbook expressions per rules version
        self.shapes = id_shapes(pack)

    async def solve(self, req: SolveRequest) -> SolveResult:
        started = time.perf_counter()
        run = _Run(self, req, self.mirror.get(req.session_id, req.actions))
        await run.obligations()
        if not run.stopped:
            await self.resolve_ids(run)
        spec = next(i for i in self.pack.intents if i.name == req.intent)
        missing = [s.name for s in spec.slots if s.required and run.slots.get(s.name) in (None, "")]
        run.dialogue.slots = dict(run.slots)
        if not missing and not run.stopped:
            if self.planner == "model" and self.client is not None and self.agent.settings.use_model:
                await self.run_model(run)
            else:
                await self.run_playbook(run)
        for name in run.not_found:
            run.slots.pop(name, None)
            missing.append(name)
        if not run.facts and not run.denials:
            run.facts = list(dict.fromkeys(run.read_facts))
        knowledge = self.knowledge(f"{req.intent.replace('_', ' ')} {req.question}")
        run.step.output = {"missing": missing, "facts": run.facts, "must_say": run.must_say,
                           "denials": [d.model_dump() for d in run.denials],
                           "offer": run.offer.model_dump() if run.offer else None,
                           "handoff": run.handoff.model_dump() if run.handoff else None}
        run.step.latency_s = round(time.perf_counter() - started, 6)
        return SolveResult(
            executed=[r for r in run.step.tool_calls if r.executed], dialogue=run.dialogue,
            actions=run.actions, slots=run.slots, missing=missing, facts=run.facts,
            must_say=run.must_say, denials=run.denials, handoff=run.handoff,
            handoff_reason=run.handoff_reason, knowledge=knowledge, offer=run.offer, step=run.step)

    def knowledge(self, query: str) -> list[str]:
        """The best knowledge-base passages for ``query`` (title and opening, short)."""
        return knowledge(self.pack, query, self.knowledge_results)

    # -- ids the customer described instead of quoting -----------------------------------

    async def resolve_ids(self, run: _Run) -> None:
        """Fill the id slots the request needs (required ones, and those the intent's playbook
        passes to a tool: the payment of a duplicate charge) from the customer's own records,
        matched by the words they used ('the Korean Fried Chicken' -> item I1019001). Only
        unique matches are taken."""
        spec = next(i for i in self.pack.intents if i.name == run.req.intent)
        passed = _slots_passed(self.pack.playbooks.playbooks.get(run.req.intent))
        # The request's enum values speak for the customer too: of two payments of one order,
        # a duplicate_charge means the one whose status says duplicate.
        enums = [str(run.slots[s.name]).replace("_", " ") for s in spec.slots
                 if s.enum and run.slots.get(s.name)]
        said = " ".join([run.req.customer_text, *enums])
        for slot in spec.slots:
            if not (slot.required or slot.name in passed) or run.slots.get(slot.name) \
                    or slot.name not in self.shapes:
                continue
            for tool in self._lookup_tools(slot.name, run):
                args = self._fill(tool, run)
                record = await run.execute(ToolCall(name=tool, arguments=args), "playbook", tell=False)
                if not record.ok:
                    continue
                value = self._match(slot.name, record.result, said, run.env)
                if value is not None:
                    run.slots[slot.name] = value
                    break

    def _lookup_tools(self, slot: str, run: _Run) -> list[str]:
        table = next((t for t, s in self.pack.schema.tables.items() if s.primary_key == slot), "")
        reads = [t.spec.name for t in self.pack.tools
                 if t.spec.kind == "read" and self._fill(t.spec.name, run) is not None
                 and slot not in t.spec.parameters.required]
        # Tools named after the slot's table first (list_orders for order_id).
        return sorted(reads, key=lambda n: table.rstrip("s") not in n)[:2]

    def _fill(self, tool: str, run: _Run) -> dict[str, Any] | None:
        args = {}
        for name in self.pack.tools.spec(tool).parameters.required:
            value = run.slots.get(name) or (run.dialogue.user_id if name == "user_id" else None)
            if value is None:
                return None
            args[name] = value
        return args

    def _match(self, slot: str, result: Any, text: str, env: Environment) -> str | None:
        found: list[dict[str, Any]] = []

        def walk(node: Any) -> None:
            if isinstance(node, dict):
                if isinstance(node.get(slot), str):
                    found.append(node)
                for value in node.values():
                    walk(value)
            elif isinstance(node, list):
                for value in node:
                    walk(value)

        walk(result)
        unique = {row[slot]: row for row in found}
        if len(unique) == 1:
            return next(iter(unique))
        said = set(words(text))
        scored = sorted(((len(self._row_words(row, env) & said), key) for key, row in unique.items()),
                        reverse=True)
        if scored and scored[0][0] > 0 and (len(scored) == 1 or scored[0][0] > scored[1][0]):
            return scored[0][1]
        return None

    def _row_words(self, row: dict[str, Any], env: Environment) -> set[str]:
        """Words of a record's text, plus the names of the records its ids point to."""
        out: set[str] = set()
        for key, value in row.items():
            if isinstance(value, str) and not key.endswith("_id"):
                out |= set(words(value))
            elif isinstance(value, str) and key.endswith("_id"):
                table = next((t for t, s in self.pack.schema.tables.items() if s.primary_key == key), None)
                ref = env.backend.get(table, value) if table else None
                if ref and isinstance(ref.get("name"), str):
                    out |= set(words(ref["name"]))
        return out

    # -- the playbook planner --------------------------------------------------------------

    async def run_playbook(self, run: _Run) -> None:
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

    def _holds(self, run: _Run, step: Any) -> bool:
        return step.when is None or bool(self.oracle.compiled(step, "when", step.when)(run.context()))

    def _build(self, run: _Run, step: CallStep) -> ToolCall:
        args = self.oracle.compiled(step, "args", step.args)(run.context())
        return ToolCall(name=step.call, arguments={k: v for k, v in args.items() if v is not None})

    async def _attempt(self, run: _Run, step: CallStep, call: ToolCall | None = None) -> bool:
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

    async def _call_step(self, run: _Run, step: CallStep) -> bool:
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

    def _tell(self, run: _Run, step: Any, texts: list[str]) -> None:
        for value in self.oracle.compiled(step, "communicate", texts)(run.context()):
            if value is not None and str(value) not in run.must_say:
                run.must_say.append(str(value))

    def _say(self, run: _Run, step: SayStep, denied: set[str] | None = None) -> None:
        if step.when_denied_by is not None and not (denied or set()) & set(step.when_denied_by):
            return
        if self._holds(run, step):
            self._tell(run, step, step.communicate)

    async def _choose(self, run: _Run, step: ChooseStep) -> None:
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

    async def _otherwise(self, run: _Run, step: ChooseStep, denied: set[str]) -> None:
        for other in step.otherwise:
            if run.stopped:
                return
            if isinstance(other, SayStep):
                self._say(run, other, denied)
            elif other.when_denied_by is None or denied & set(other.when_denied_by):
                await self._call_step(run, other)

    async def _offer(self, run: _Run, step: ChooseStep, demanded: ToolCall,
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
                call=call, proposed_by=self.agent.name, dry_run=True))
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

    async def _answered(self, run: _Run, step: ChooseStep, offer: Offer) -> None:
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

    async def _explain(self, run: _Run, step: ChooseStep) -> None:
        """No resolution fits the case: ask the rules (without acting) why the first one
        would be refused, so the customer hears the policy's reason, not silence."""
        for option in step.choose:
            try:
                call = self._build(run, option)
            except Exception:  # noqa: BLE001 - an option that cannot even be built explains nothing
                continue
            out = await self.executor.execute(ExecuteRequest(
                session_id=run.req.session_id, dialogue=run.dialogue, actions=run.actions,
                call=call, proposed_by=self.agent.name, dry_run=True))
            decision = out.record.decision
            run.step.tool_calls.append(out.record)
            if decision is not None and not decision.allowed and decision.rule_ids:
                run.denials.append(Denial(tool=call.name, rule_ids=decision.rule_ids,
                                          customer_reason=decision.customer_reason))
                return

    # -- the model planner -----------------------------------------------------------------

    async def run_model(self, run: _Run) -> None:
        """Let the model propose calls; hand over to the playbook if it cannot."""
        allowed = planner_tools(self.pack, run.req.intent, self.planner_tools)
        for _ in range(MAX_MODEL_STEPS):
            if run.stopped:
                return
            inp = solution_input(self.pack, run.dialogue.user_id, run.req.intent, run.slots,
                                 allowed, run.observations)
            run.step.input = {**run.step.input, "prompt": inp.model_dump()}
            proposal = await run_structured(self.client, self.agent, inp, run.step,
                                            lambda data: self._validate(data, allowed))
            if proposal is None:
                run.step.fallback = True
                await self.run_playbook(run)
                return
            if proposal.tool == DONE:
                return
            record = await run.execute(ToolCall(name=proposal.tool, arguments=proposal.arguments),
                                       "model")
            if run.handoff is not None:
                run.handoff_reason = str(proposal.arguments.get("reason", "model"))
            elif record.executed:
                for key in ("amount", "refund_amount"):
                    if isinstance(record.result, dict) and key in record.result:
                        run.must_say.append(money(record.result[key]))

    def _validate(self, data: dict[str, Any], allowed: list[str]) -> ToolProposal:
        proposal = ToolProposal.model_validate({"arguments": {}, **data})
        if proposal.tool == DONE:
            return proposal
        if proposal.tool not in allowed:
            raise InvalidOutput(f"tool must be one of {', '.join([*allowed, DONE])}")
        try:
            proposal.arguments = self.pack.tools.validate(proposal.tool, proposal.arguments)
        except Exception as exc:  # noqa: BLE001 - the message goes back to the model
            raise InvalidOutput(str(exc)) from None
        return proposal


def _slots_passed(playbook: Playbook | None) -> set[str]:
    """Slot names a playbook passes to its tools as ``=slots.<name>``."""
    args = [a for c in (playbook.calls() if playbook else []) for a in c.args.values()
            if isinstance(a, str) and a.startswith("=slots.")]
    return {name for a in args if (name := a.removeprefix("=slots.")).isidentifier()}
