"""The oracle: the correct tool calls for a case, computed from the rules and the backend.

For each request in a ``Situation`` (intent, slots, what the customer insists on), the oracle
runs the intent's playbook from ``playbooks.yaml`` in a fresh environment:

- a ``call`` step builds its arguments from the context (slots, records, the last result) and
  is taken if the rule engine allows it;
- a ``choose`` step tries its options in order and takes the first the rules allow (an option
  the customer demands goes first; if they refuse alternatives, it is the only one); if none
  is allowed, its ``otherwise`` steps run, filtered by the rules that denied (``when_denied_by``);
- before every request and every write, obligations (``require`` rules) are done first; a tool
  that ends the dialogue (a hand-over) stops everything.

Every action the oracle returns passed the rule engine at its point in the sequence, against
the backend as the earlier actions left it. ``replay`` (``replay.py``) re-checks a list of
actions the same way, which is how ``check_gold`` holds ``tasks.json`` to the oracle, and how
evaluation gets the target state hash. Data construction can call ``solve`` on situations it samples.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from wow_ray.scenario.binding import ToolResult
from wow_ray.scenario.errors import PackIssue
from wow_ray.scenario.expr import compile_expr, compile_value
from wow_ray.scenario.pack import Environment, GateVerdict, ScenarioPack
from wow_ray.scenario.replay import replay
from wow_ray.scenario.rules import Decision
from wow_ray.scenario.spec import CallStep, ChooseStep, SayStep
from wow_ray.scenario.state import DialogueState, ToolCall
from wow_ray.scenario.tasks import GoldAction, IntentRequest, Situation, Task


@dataclass
class OracleResult:
    """What the oracle did: actions taken, facts to tell, what was refused, the final state."""

    actions: list[ToolCall] = field(default_factory=list)
    communicate_info: list[str] = field(default_factory=list)
    denials: list[Decision] = field(default_factory=list)
    state: DialogueState | None = None
    state_hash: str = ""
    kinds: dict[str, str] = field(default_factory=dict)  # tool name -> read/write

    @property
    def writes(self) -> list[str]:
        """Names of the write actions taken, in order."""
        return [a.name for a in self.actions if self.kinds.get(a.name) == "write"]

    def gold_actions(self, prefix: str) -> list[GoldAction]:
        """The actions in tau2-bench's layout, ids ``<prefix>-<n>``."""
        return [GoldAction(action_id=f"{prefix}-{i}", name=a.name, arguments=a.arguments) for i, a in enumerate(self.actions)]


class Oracle:
    """Computes gold actions for situations of one pack."""

    def __init__(self, pack: ScenarioPack) -> None:
        self.pack = pack
        self._compiled: dict[str, dict[int, Any]] = {}

    def solve(self, case: Situation | Task) -> OracleResult:
        """The correct actions for a task (its ``situation``) or a bare situation."""
        situation = case.situation if isinstance(case, Task) else case
        env = self.pack.new_environment()
        try:
            run = _Run(self, env, situation.initial_state())
            run.out.kinds = {name: self.pack.tools.spec(name).kind for name in self.pack.tools.names}
            for request in situation.requests:
                if run.state.ended:
                    break
                run.request(request)
            run.out.state = run.state
            run.out.state_hash = env.state_hash()
            return run.out
        finally:
            env.close()

    def compiled(self, obj: Any, kind: str, source: Any) -> Any:
        """Compile a playbook expression once per rules version (params are folded in)."""
        version = self.pack.rules.version
        cache = self._compiled.setdefault(version, {})
        key = (id(obj), kind)
        if key not in cache:
            catalogue = self.pack.catalogue.extended(constants={"params": self.pack.rules.params}, result=None)
            cache[key] = compile_expr(source, catalogue).fn if kind == "when" else compile_value(source, catalogue)
        return cache[key]


class _Run:
    """One oracle episode."""

    def __init__(self, oracle: Oracle, env: Environment, state: DialogueState) -> None:
        self.oracle = oracle
        self.env = env
        self.state = state
        self.out = OracleResult()
        self.result: Any = {}
        self.demand = None

    def request(self, request: IntentRequest) -> None:
        self.state.slots = dict(request.slots)
        self.result = {}
        self.obligations()
        playbook = self.oracle.pack.playbooks.playbooks[request.intent]
        for step in playbook.steps:
            if self.state.ended:
                return
            if isinstance(step, ChooseStep):
                self.choose(step, request)
            elif isinstance(step, CallStep):
                self.call_step(step)
            else:
                self.say(step)

    def context(self) -> Any:
        return self.env.context(self.state, None, result=self.result)

    def holds(self, step: Any) -> bool:
        return step.when is None or bool(self.oracle.compiled(step, "when", step.when)(self.context()))

    def build(self, step: CallStep, overrides: dict[str, Any] | None = None) -> ToolCall:
        args = self.oracle.compiled(step, "args", step.args)(self.context())
        args.update(overrides or {})
        return ToolCall(name=step.call, arguments={k: v for k, v in args.items() if v is not None})

    def obligations(self) -> None:
        for obligation in self.env.obligations(self.state):
            if self.state.ended:
                return
            call = obligation.as_call()
            verdict = self.env.gate(call, self.state)
            if verdict.decision.allowed:
                self.execute(call, verdict, None)

    def call_step(self, step: CallStep) -> bool:
        """Take the step if its condition holds and the rules allow it; True if taken."""
        if not self.holds(step):
            return False
        return self.attempt(self.build(step), step)

    def attempt(self, call: ToolCall, step: CallStep) -> bool:
        if self.oracle.pack.tools.spec(call.name).kind == "write":
            self.obligations()
            if self.state.ended:
                return False
        verdict = self.env.gate(call, self.state)
        if not verdict.decision.allowed:
            self.out.denials.append(verdict.decision)
            return False
        return self.execute(call, verdict, step)

    def execute(self, call: ToolCall, verdict: GateVerdict, step: CallStep | None) -> bool:
        """Run a call the gate allowed; the action is kept as the playbook wrote it."""
        result: ToolResult = self.env.run(verdict, self.state)
        if not result.ok:
            return False
        self.out.actions.append(call)
        self.result = result.content if isinstance(result.content, dict) else {"value": result.content}
        if step is not None and step.communicate:
            self.tell(step, step.communicate)
        return True

    def tell(self, step: Any, texts: list[str]) -> None:
        for value in self.oracle.compiled(step, "communicate", texts)(self.context()):
            if value is not None and str(value) not in self.out.communicate_info:
                self.out.communicate_info.append(str(value))

    def say(self, step: SayStep, denied: set[str] | None = None) -> None:
        if step.when_denied_by is not None and not (denied or set()) & set(step.when_denied_by):
            return
        if self.holds(step):
            self.tell(step, step.communicate)

    def choose(self, step: ChooseStep, request: IntentRequest) -> None:
        if not self.holds(step):
            return
        denied: set[str] = set()
        tried: set[tuple[str, str]] = set()
        for option, overrides, demanded in self.options(step, request):
            # A demanded option is tried whatever its "when" says: the customer asked for it,
            # and whether it is permitted is the rules' decision, not the playbook's.
            if not demanded and not self.holds(option):
                continue
            call = self.build(option, overrides)
            if call.key() in tried:
                continue
            tried.add(call.key())
            before = len(self.out.denials)
            if self.attempt(call, option):
                return
            if self.state.ended:
                return
            for decision in self.out.denials[before:]:
                denied.update(decision.rule_ids)
        for other in step.otherwise:
            if self.state.ended:
                return
            if isinstance(other, SayStep):
                self.say(other, denied)
            elif other.when_denied_by is None or denied & set(other.when_denied_by):
                self.call_step(other)

    @staticmethod
    def options(step: ChooseStep, request: IntentRequest) -> list[tuple[CallStep, dict[str, Any], bool]]:
        plain = [(option, {}, False) for option in step.choose]
        demand = request.demand
        if demand is None or all(o.call != demand.tool for o in step.choose):
            return plain
        wanted = [(o, dict(demand.args), True) for o in step.choose if o.call == demand.tool][:1]
        return wanted + (plain if request.accept_alternatives else [])


def check_gold(pack: ScenarioPack, oracle: Oracle | None = None) -> list[PackIssue]:
    """Every task whose gold actions differ from the oracle's, fail the rule engine when
    replayed, fail as tool calls, or whose communicate_info differs: one issue each."""
    oracle = oracle or Oracle(pack)
    issues = []
    for index, task in enumerate(pack.tasks):
        where = f"tasks[{index}].evaluation_criteria"
        criteria = task.evaluation_criteria
        result = oracle.solve(task)
        gold = [a.as_call().key() for a in criteria.actions]
        want = [a.key() for a in result.actions]
        if gold != want:
            issues.append(PackIssue("tasks.json", f"{task.id}: gold actions {_show_calls(gold)} differ from the "
                                    f"oracle's {_show_calls(want)}", f"{where}.actions"))
        if criteria.communicate_info != result.communicate_info:
            issues.append(PackIssue("tasks.json", f"{task.id}: communicate_info {criteria.communicate_info} differs from "
                                    f"the oracle's {result.communicate_info}", f"{where}.communicate_info"))
        check = replay(pack, task.situation, criteria.actions, diff=False)
        if gold == want and check.state_hash != result.state_hash:
            issues.append(PackIssue("tasks.json", f"{task.id}: replaying the gold actions leaves a different backend "
                                    "state than the oracle's run", f"{where}.actions"))
        for j, (decision, outcome) in enumerate(zip(check.decisions, check.results, strict=True)):
            if not decision.allowed:
                issues.append(PackIssue("tasks.json", f"{task.id}: gold action {criteria.actions[j].name} is denied by "
                                        f"{', '.join(decision.rule_ids) or 'default'}", f"{where}.actions[{j}]"))
            elif not outcome.ok:
                issues.append(PackIssue("tasks.json", f"{task.id}: gold action {criteria.actions[j].name} fails: "
                                        f"{outcome.error}", f"{where}.actions[{j}]"))
    return issues


def _show_calls(keys: list[tuple[str, str]]) -> str:
    return "[" + ", ".join(f"{name}({args})" for name, args in keys) + "]"


def fill_gold(pack: ScenarioPack, tasks: list[dict[str, Any]]) -> int:
    """Set each raw task's gold actions and communicate_info to the oracle's; returns how many
    tasks changed. ``tasks`` is tasks.json as plain data, so other fields are left untouched."""
    oracle = Oracle(pack)
    by_id = {t.id: t for t in pack.tasks}
    changed = 0
    for raw in tasks:
        result = oracle.solve(by_id[raw["id"]])
        criteria = raw.setdefault("evaluation_criteria", {})
        actions = [a.model_dump(mode="json", exclude_none=True) for a in result.gold_actions(raw["id"])]
        if criteria.get("actions") != actions or criteria.get("communicate_info") != result.communicate_info:
            changed += 1
        criteria["actions"] = actions
        criteria["communicate_info"] = result.communicate_info
    return changed
