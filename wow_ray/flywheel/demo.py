"""The main job at small scale: a turn of the loop (from the cold start when nothing is in
production yet), then a before/after scorecard on a stated subset of the test split, which
neither the data nor the gate ever saw. What it proves is that the loop runs end to end and
what it changed; at small scale the numbers are noise and the gate says so."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from wow_ray.evaluation import EvalReport
from wow_ray.flywheel.loop import Flywheel, Stages, StepRecord, numbers


class ScoreRow(BaseModel):
    label: str
    adapters: dict[str, str]
    numbers: dict[str, Any]


class DemoResult(BaseModel):
    split: str
    tasks: list[str]
    rows: list[ScoreRow]
    decision: dict[str, Any]


def run_demo(loop: Flywheel, test_stages: Stages, split: str = "test") -> DemoResult:
    """One turn of ``loop``, then production before it, the candidate and production after it
    evaluated by ``test_stages`` (whose task limit states the subset) on ``split``."""
    before = loop.production()
    [records] = loop.run(turns=1)
    after = loop.production()
    rows, tasks = [], []
    for label, adapters in (("before", before), ("candidate", _candidate(records)),
                            ("after", after)):
        if label == "after" and after == before:
            continue  # nothing promoted: production is what it was
        report: EvalReport = test_stages.evaluate(adapters, split, f"demo-{label}")
        tasks = sorted({d.task_id or "?" for d in report.details})
        rows.append(ScoreRow(label=label, adapters=adapters, numbers=numbers(report)))
    return DemoResult(split=split, tasks=tasks, rows=rows, decision=records["gate"].outputs)


def _candidate(records: dict[str, StepRecord]) -> dict[str, str]:
    return records["train"].outputs["adapters"]


def scorecard_lines(result: DemoResult) -> list[list[str]]:
    """The scorecard as rows of cells (header first), for a table or plain text."""
    agents = sorted({a for r in result.rows for a in r.numbers.get("model_share", {})})
    out = [["", "success", "compliance", "pass^1", *(f"share {a}" for a in agents)]]
    for row in result.rows:
        n = row.numbers
        out.append([row.label, _pct(n.get("success")), _pct(n.get("compliance")),
                    _pct(n.get("pass_k", {}).get("1")),
                    *(_pct(n.get("model_share", {}).get(a)) for a in agents)])
    return out


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"
