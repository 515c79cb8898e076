"""The solution agent: resolves a request with tool calls on the business backend, and looks
up the knowledge base.

Two planners, chosen per deployment:

- ``playbook`` (default, ``playbook_planner.py``): the pack's playbook for the intent, run live, the way the oracle
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
from wow_ray.agents.playbook_planner import PlaybookPlanner
from wow_ray.agents.prompt_inputs import (
    KNOWLEDGE_RESULTS,
    knowledge,
    observation,
    planner_tools,
    solution_input,
    tool_fact,
)
from wow_ray.agents.prompts import DONE, Observation, ToolProposal
from wow_ray.agents.slots import id_shapes, words
from wow_ray.agents.transcript import AgentStep, ToolCallRecord
from wow_ray.llm.chat import ChatClient
from wow_ray.scenario import Environment, Oracle, ScenarioPack, ToolCall, apply_logged
from wow_ray.scenario.spec import Playbook

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


class SolveRun:
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
        self.playbook = PlaybookPlanner(pack, self.oracle, executor, agent.name)
        self.shapes = id_shapes(pack)
        # What the read tools are called with: the ids that lead to other records.
        self.read_parameters = {name for t in pack.tools if t.spec.kind == "read"
                                for name in t.spec.parameters.required}

    async def solve(self, req: SolveRequest) -> SolveResult:
        started = time.perf_counter()
        run = SolveRun(self, req, self.mirror.get(req.session_id, req.actions))
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
                await self.playbook.run(run)
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

    async def resolve_ids(self, run: SolveRun) -> None:
        """Fill the id slots the request needs (required ones, and those the intent's playbook
        passes to a tool: the payment of a duplicate charge) from the customer's own records,
        matched by the words they used ('the Korean Fried Chicken' -> item I1019001). Only
        unique matches are taken."""
        spec = next(i for i in self.pack.intents if i.name == run.req.intent)
        passed = _slots_passed(self.pack.playbooks.playbooks.get(run.req.intent))
        # The request's enum values speak for the customer first: of two payments of one
        # order, a duplicate_charge means the one whose status says duplicate (whatever the
        # time the customer remembers: "14:15" is the first payment's too).
        enums = [str(run.slots[s.name]).replace("_", " ") for s in spec.slots
                 if s.enum and run.slots.get(s.name)]
        said = (" ".join(enums), run.req.customer_text)
        ids = [s for s in spec.slots if s.name in self.shapes]
        needed = [s.name for s in ids if s.required or s.name in passed]
        given = {n for n in needed if run.slots.get(n)}
        pending = [n for n in needed if not await self._resolve(n, run, said)]
        # An id found only through another one's record (a duplicate charge's payment is in
        # its order, and the order among the customer's orders): once that one is found, in
        # this pass or as a lead a read tool takes, look again.
        leads = [s.name for s in ids if s.name not in needed and not run.slots.get(s.name)
                 and s.name in self.read_parameters]
        if pending and (set(needed) - set(pending) - given
                        or any([await self._resolve(n, run, said) for n in leads])):
            for name in pending:
                await self._resolve(name, run, said)

    async def _resolve(self, slot: str, run: SolveRun, said: tuple[str, ...]) -> bool:
        """Whether ``slot`` has a value, looking it up among the customer's records if not."""
        if run.slots.get(slot):
            return True
        for tool in self._lookup_tools(slot, run):
            record = await run.execute(ToolCall(name=tool, arguments=self._fill(tool, run)),
                                       "playbook", tell=False)
            if record.ok and (value := self._match(slot, record.result, said, run.env)) is not None:
                run.slots[slot] = value
                return True
        return False

    def _lookup_tools(self, slot: str, run: SolveRun) -> list[str]:
        table = self.pack.schema.table_keyed_by(slot) or ""
        reads = [t.spec.name for t in self.pack.tools
                 if t.spec.kind == "read" and self._fill(t.spec.name, run) is not None
                 and slot not in t.spec.parameters.required]
        # Tools named after the slot's table first (list_orders for order_id).
        return sorted(reads, key=lambda n: table.rstrip("s") not in n)[:2]

    def _fill(self, tool: str, run: SolveRun) -> dict[str, Any] | None:
        args = {}
        for name in self.pack.tools.spec(tool).parameters.required:
            value = run.slots.get(name) or (run.dialogue.user_id if name == "user_id" else None)
            if value is None:
                return None
            args[name] = value
        return args

    def _match(self, slot: str, result: Any, said: tuple[str, ...], env: Environment) -> str | None:
        """The one record of ``result`` holding ``slot`` that the customer's words point to:
        the only one, or the one sharing the most words with ``said``'s texts, in order."""
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
        texts = [set(words(text)) for text in said]
        scored = sorted(((tuple(len(self._row_words(row, env) & t) for t in texts), key)
                         for key, row in unique.items()), reverse=True)
        if scored and any(scored[0][0]) and (len(scored) == 1 or scored[0][0] > scored[1][0]):
            return scored[0][1]
        return None

    def _row_words(self, row: dict[str, Any], env: Environment) -> set[str]:
        """Words of a record's text, plus the names of the records its ids point to."""
        out: set[str] = set()
        for key, value in row.items():
            if isinstance(value, str) and not key.endswith("_id"):
                out |= set(words(value))
            elif isinstance(value, str) and key.endswith("_id"):
                table = self.pack.schema.table_keyed_by(key)
                ref = env.backend.get(table, value) if table else None
                if ref and isinstance(ref.get("name"), str):
                    out |= set(words(ref["name"]))
        return out

    # -- the model planner -----------------------------------------------------------------

    async def run_model(self, run: SolveRun) -> None:
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
                await self.playbook.run(run)
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
