"""The loop: evaluate production, turn failures into data, fine-tune a candidate, gate, promote.

Each step of a turn is recorded as one immutable JSON file on the registry's storage,
``registry/flywheel/<scenario>/t000001/<nn>-<step>.json`` (created only if absent), holding its
inputs, its outputs and how long it took. That record is the loop's state: a turn interrupted
anywhere (Ctrl-C, a killed job) resumes at the first step without a record, with the outputs
of the steps before it read back; and it is the history ``wow-ray flywheel history`` prints.
One loop per scenario runs at a time: a lock file created with ``create_if_absent``.

The work of each step is done by a :class:`Stages` object (``wow_ray.flywheel.stages`` has the
real one: evaluation, data construction, a Ray Train job); this module only orders the steps,
records them and decides, so it runs and is tested without Ray.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from pydantic import BaseModel, Field

from wow_ray.errors import WowRayError
from wow_ray.evaluation import EvalReport
from wow_ray.flywheel.gate import GateDecision, decide
from wow_ray.registry import CANDIDATE, PRODUCTION, EntryKind, Registry

STEPS = ("evaluate_production", "score_traffic", "build_data", "train", "evaluate_baseline",
         "evaluate_candidate", "gate", "promote")


class FlywheelBusy(WowRayError):
    """Another loop holds this scenario's lock."""


class StepRecord(BaseModel):
    scenario: str
    turn: int
    step: str
    started_at: datetime
    seconds: float
    inputs: dict[str, Any] = Field(default_factory=dict)
    outputs: dict[str, Any] = Field(default_factory=dict)


class Stages(Protocol):
    """The work behind each step; every method returns plain JSON-able data."""

    agents: tuple[str, ...]

    def evaluate(self, adapters: dict[str, str], split: str, label: str) -> EvalReport: ...
    def score_traffic(self) -> dict[str, Any]: ...
    def cold_start_dataset(self) -> str: ...
    def failures_dataset(self, report: EvalReport, turn: int) -> str | None: ...
    def train(self, datasets: list[dict[str, Any]], init: dict[str, str], turn: int
              ) -> dict[str, Any]: ...


class FlywheelOptions(BaseModel):
    alpha: float = Field(0.05, gt=0, lt=1, description="The gate's significance level.")
    cold_start_weight: float = Field(0.5, gt=0, description="Weight of the cold-start data in "
                                     "later turns (so a turn does not forget).")
    failures_weight: float = Field(2.0, gt=0, description="Weight of this turn's failures.")
    earlier_weight: float = Field(1.0, gt=0, description="Weight of earlier turns' failures.")
    eval_split: str = "train"
    gate_split: str = "dev"


class Flywheel:
    """One scenario's loop over a registry, its work done by ``stages``."""

    def __init__(self, registry: Registry, scenario: str, stages: Stages,
                 options: FlywheelOptions | None = None,
                 progress: Callable[[str], None] = lambda _: None) -> None:
        self.registry, self.scenario, self.stages = registry, scenario, stages
        self.options = options or FlywheelOptions()
        self.progress = progress
        self.root = f"registry/flywheel/{scenario}"

    # -- state ---------------------------------------------------------------------------

    def turns(self) -> list[int]:
        return sorted(int(n[1:]) for n in self.registry.storage.list_names(self.root)
                      if n.startswith("t") and n[1:].isdigit())

    def records(self, turn: int) -> dict[str, StepRecord]:
        folder = f"{self.root}/t{turn:06d}"
        out = {}
        for name in self.registry.storage.list_names(folder):
            if name.endswith(".json") and name[:2].isdigit():
                record = StepRecord.model_validate_json(
                    self.registry.storage.read_text(f"{folder}/{name}"))
                out[record.step] = record
        return out

    def history(self) -> list[dict[str, StepRecord]]:
        return [self.records(t) for t in self.turns()]

    def production(self) -> dict[str, str]:
        """The adapter each agent's ``production`` alias points at ('name:vN')."""
        out = {}
        for agent in self.stages.agents:
            move = self.registry.aliases.current(EntryKind.ADAPTER, self._name(agent), PRODUCTION)
            if move is not None:
                out[agent] = move.ref
        return out

    def _name(self, agent: str) -> str:
        return f"{self.scenario}-{agent}"

    def _report_rel(self, turn: int, label: str) -> str:
        return f"{self.root}/t{turn:06d}/{label}.report.json"

    def _load_report(self, turn: int, label: str) -> EvalReport:
        return EvalReport.model_validate_json(
            self.registry.storage.read_text(self._report_rel(turn, label)))

    # -- the lock ------------------------------------------------------------------------

    def _lock(self) -> None:
        rel = f"{self.root}/lock.json"
        mine = {"host": socket.gethostname(), "pid": os.getpid(),
                "since": datetime.now(UTC).isoformat()}
        for _ in range(2):
            try:
                self.registry.storage.create_if_absent(rel, json.dumps(mine))
                return
            except FileExistsError:
                held = json.loads(self.registry.storage.read_text(rel))
                if held.get("host") == mine["host"] and not _alive(held.get("pid", -1)):
                    self.registry.storage.remove_file(rel)  # its process died: take over
                    continue
                raise FlywheelBusy(f"a loop on {self.scenario} is running already (pid "
                                   f"{held.get('pid')} on {held.get('host')} since "
                                   f"{held.get('since')}); remove {self.registry.storage.uri(rel)}"
                                   " if it is not") from None
        raise FlywheelBusy(f"could not take the lock of {self.scenario}")

    def _unlock(self) -> None:
        self.registry.storage.remove_file(f"{self.root}/lock.json")

    # -- running -------------------------------------------------------------------------

    def run(self, turns: int = 1) -> list[dict[str, StepRecord]]:
        """Run (or finish) ``turns`` turns; an unfinished turn is completed first."""
        self._lock()
        try:
            done = []
            for _ in range(turns):
                existing = self.turns()
                turn = existing[-1] if existing and "promote" not in self.records(existing[-1]) \
                    else (existing[-1] + 1 if existing else 1)
                done.append(self.run_turn(turn))
            return done
        finally:
            self._unlock()

    def run_turn(self, turn: int) -> dict[str, StepRecord]:
        records = self.records(turn)
        for index, step in enumerate(STEPS):
            if step in records:
                self.progress(f"turn {turn}: {step} done before, resumed after it")
                continue
            self.progress(f"turn {turn}: {step}...")
            started, clock = datetime.now(UTC), time.perf_counter()
            inputs, outputs = getattr(self, f"_{step}")(turn, records)
            record = StepRecord(scenario=self.scenario, turn=turn, step=step, started_at=started,
                                seconds=round(time.perf_counter() - clock, 2), inputs=inputs,
                                outputs=outputs)
            self.registry.storage.create_if_absent(
                f"{self.root}/t{turn:06d}/{index:02d}-{step}.json", record.model_dump_json(indent=2))
            records[step] = record
            self.progress(f"turn {turn}: {step} took {record.seconds:.0f}s: "
                          f"{json.dumps(_brief(outputs))[:300]}")
        return records

    def _evaluated(self, turn: int, label: str, adapters: dict[str, str], split: str
                   ) -> tuple[dict, dict]:
        report = self.stages.evaluate(adapters, split, label)
        self.registry.storage.write_text(self._report_rel(turn, label), report.model_dump_json())
        return ({"adapters": adapters, "split": split},
                {"report": self._report_rel(turn, label), **numbers(report)})

    def _evaluate_production(self, turn: int, records: dict) -> tuple[dict, dict]:
        return self._evaluated(turn, "production", self.production(), self.options.eval_split)

    def _score_traffic(self, turn: int, records: dict) -> tuple[dict, dict]:
        return {}, self.stages.score_traffic()

    def _build_data(self, turn: int, records: dict) -> tuple[dict, dict]:
        production = records["evaluate_production"].inputs["adapters"]
        report = self._load_report(turn, "production")
        failures = self.stages.failures_dataset(report, turn)
        cold = self.stages.cold_start_dataset()
        o = self.options
        datasets = [{"dataset": cold, "weight": 1.0 if not production else o.cold_start_weight}]
        for earlier in self.turns():
            if earlier < turn:
                built = self.records(earlier).get("build_data")
                if built and built.outputs.get("failures"):
                    datasets.append({"dataset": built.outputs["failures"],
                                     "weight": o.earlier_weight})
        if failures:
            datasets.append({"dataset": failures, "weight": o.failures_weight})
        return {"production": production}, {"failures": failures, "datasets": datasets}

    def _train(self, turn: int, records: dict) -> tuple[dict, dict]:
        datasets = records["build_data"].outputs["datasets"]
        init = records["evaluate_production"].inputs["adapters"]
        return {"datasets": datasets, "init": init}, self.stages.train(datasets, init, turn)

    def _evaluate_baseline(self, turn: int, records: dict) -> tuple[dict, dict]:
        production = records["evaluate_production"].inputs["adapters"]
        return self._evaluated(turn, "baseline", production, self.options.gate_split)

    def _evaluate_candidate(self, turn: int, records: dict) -> tuple[dict, dict]:
        candidate = records["train"].outputs["adapters"]
        return self._evaluated(turn, "candidate", candidate, self.options.gate_split)

    def _gate(self, turn: int, records: dict) -> tuple[dict, dict]:
        decision: GateDecision = decide(self._load_report(turn, "baseline").details,
                                        self._load_report(turn, "candidate").details,
                                        alpha=self.options.alpha)
        return ({"baseline": records["evaluate_baseline"].outputs["report"],
                 "candidate": records["evaluate_candidate"].outputs["report"]},
                decision.model_dump())

    def _promote(self, turn: int, records: dict) -> tuple[dict, dict]:
        decision = records["gate"].outputs
        candidate = records["train"].outputs["adapters"]
        alias = PRODUCTION if decision["promote"] else CANDIDATE
        moved = {}
        for agent, ref in candidate.items():
            name, version = ref.rsplit(":v", 1)
            current = self.registry.aliases.current(EntryKind.ADAPTER, name, alias)
            if current is None or current.version != int(version):  # a resumed move: done
                self.registry.aliases.move(
                    EntryKind.ADAPTER, name, alias, int(version), by=f"flywheel turn {turn}",
                    reason=decision["reason"], report=records["gate"].inputs["candidate"])
            moved[agent] = f"{name}@{alias} -> v{version}"
        return {"decision": decision["promote"]}, {"alias": alias, "moved": moved,
                                                   "reason": decision["reason"]}


def numbers(report: EvalReport) -> dict[str, Any]:
    """What a step record keeps of a report: success, compliance, pass^k, model share per agent."""
    return {"episodes": report.episodes, "success": report.success,
            "compliance": report.compliance,
            "pass_k": {str(k): v for k, v in report.pass_k.items()},  # as JSON reads it back
            "model_share": {a: s.share for a, s in report.model_share.items()}}


def _brief(outputs: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in outputs.items() if k not in ("datasets", "per_task")}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
