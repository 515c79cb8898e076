"""Replaying an action log on a fresh environment: the one place it is done.

An action log (the calls a session executed, or a task's gold actions) is the truth about a
backend: replaying it on a fresh copy of the pack's fixtures gives the backend it left. Every
caller asks this module:

- ``replay(pack, start, actions)``: each action's decision and result, the final state hash,
  and the diff against the starting state. Evaluation's verdict stands on it: success is the
  agent's final hash equal to the gold actions' (tau2-bench's database check), and compliance
  reads the diff (which rows and fields the writes changed, including writes no trace shows,
  since the backend itself is compared);
- ``Replay``: the same, one step at a time, for callers that change the dialogue state between
  actions (an audit, data construction) or keep the rebuilt environment (a session's cache);
- ``apply_logged(env, call)``: one logged action on a live environment (a mirror keeping up).

A logged action runs as it was run then, without the gate: the gate decided when it was
logged. Asking the rules again (``check=True``) records what they decide now, next to it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from wow_ray.scenario.backend import state_diff
from wow_ray.scenario.binding import ToolResult
from wow_ray.scenario.pack import Environment, ScenarioPack
from wow_ray.scenario.rules import Decision
from wow_ray.scenario.state import DialogueState, ToolCall
from wow_ray.scenario.tasks import GoldAction, Situation

Action = ToolCall | GoldAction


@dataclass
class ReplayStep:
    """One replayed action: the call, the rules' decision (None if not asked), its result."""

    call: ToolCall
    decision: Decision | None
    result: ToolResult


@dataclass
class ReplayResult:
    """What a replay did and the backend it left.

    ``diff`` is ``state_diff`` of the starting backend and the final one (None if not asked):
    ``{table: {"added": [rows], "removed": [rows], "changed": {key: {field: [before, after]}}}}``
    for each table that differs."""

    steps: list[ReplayStep]
    state_hash: str
    diff: dict[str, dict] | None
    state: DialogueState

    @property
    def decisions(self) -> list[Decision | None]:
        return [s.decision for s in self.steps]

    @property
    def results(self) -> list[ToolResult]:
        return [s.result for s in self.steps]

    @property
    def all_allowed(self) -> bool:
        """Every action was checked and allowed."""
        return all(s.decision is not None and s.decision.allowed for s in self.steps)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form a service returns: the hash, the changes and the actions replayed."""
        return {"state_hash": self.state_hash, "changes": self.diff,
                "actions": [s.call.model_dump() for s in self.steps]}


def apply_logged(env: Environment, call: ToolCall, state: DialogueState | None = None) -> ToolResult:
    """Run one logged action on ``env`` as it ran then: no gate (it was decided when logged).
    ``state`` (a scratch one if None) follows what the action does."""
    return env.call(call.name, call.arguments, state if state is not None else DialogueState(), enforce=False)


class Replay:
    """A replay in progress on a fresh environment; close it, or ``keep()`` its environment."""

    def __init__(self, pack: ScenarioPack, start: Situation | DialogueState | None = None, *,
                 check: bool = True) -> None:
        self.pack = pack
        self.check = check
        self.env = pack.new_environment()
        if isinstance(start, Situation):
            self.state = start.initial_state()
        else:
            self.state = start.model_copy(deep=True) if start is not None else DialogueState()
        self.steps: list[ReplayStep] = []

    def step(self, action: Action, *, check: bool | None = None) -> ReplayStep:
        """Run ``action``; ask the rules first if ``check`` (default: the replay's setting)."""
        call = action.as_call() if isinstance(action, GoldAction) else action
        decision = self.env.check(call, self.state) if (self.check if check is None else check) else None
        step = ReplayStep(call, decision, apply_logged(self.env, call, self.state))
        self.steps.append(step)
        return step

    def run(self, actions: Iterable[Action]) -> Replay:
        for action in actions:
            self.step(action)
        return self

    def result(self, *, diff: bool = True) -> ReplayResult:
        """The steps so far, the state hash, and (if ``diff``) the diff against the start."""
        changes = None
        if diff:
            start = self.pack.new_backend()  # the fixtures, as this replay started from
            try:
                changes = state_diff(start, self.env.backend)
            finally:
                start.close()
        return ReplayResult(list(self.steps), self.env.state_hash(), changes, self.state)

    def keep(self) -> Environment:
        """Hand the live environment to the caller, who closes it."""
        env, self.env = self.env, None
        return env

    def close(self) -> None:
        if self.env is not None:
            self.env.close()
            self.env = None

    def __enter__(self) -> Replay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def replay(pack: ScenarioPack, start: Situation | DialogueState | None, actions: Iterable[Action], *,
           check: bool = True, diff: bool = True) -> ReplayResult:
    """Replay ``actions`` on a fresh backend from ``start`` (a situation's initial state, a
    dialogue state, or an empty one), asking the rules about each first if ``check``."""
    with Replay(pack, start, check=check) as run:
        return run.run(actions).result(diff=diff)
