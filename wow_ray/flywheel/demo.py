"""The main job at small scale: a turn of the loop (from the cold start when nothing is in
production yet), then a before/after scorecard on a stated subset of the test split, which
neither the data nor the gate ever saw. What it proves is that the loop runs end to end and
what it changed; at small scale the numbers are noise and the gate says so."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

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
    seconds: dict[str, float] = Field(default_factory=dict, description="Each stage's time.")


def run_demo(loop: Flywheel, test_stages: Stages, split: str = "test") -> DemoResult:
    """One turn of ``loop``, then production before it, the candidate and production after it
    evaluated by ``test_stages`` (whose task limit states the subset) on ``split``."""
    before = loop.production()
    [records] = loop.run(turns=1)
    after = loop.production()
    seconds = {step: r.seconds for step, r in records.items()}
    rows, tasks = [], []
    reports: dict[frozenset, EvalReport] = {}  # the same adapters are evaluated once
    for label, adapters in (("before", before), ("candidate", _candidate(records)),
                            ("after", after)):
        if label == "after" and after == before:
            continue  # nothing promoted: production is what it was
        clock = time.perf_counter()
        key = frozenset(adapters.items())
        if key not in reports:  # promoted: production after the turn is the candidate's adapters
            reports[key] = test_stages.evaluate(adapters, split, f"demo-{label}")
        report = reports[key]
        seconds[f"scorecard {label}"] = round(time.perf_counter() - clock, 2)
        tasks = sorted({d.task_id or "?" for d in report.details})
        rows.append(ScoreRow(label=label, adapters=adapters, numbers=numbers(report)))
    return DemoResult(split=split, tasks=tasks, rows=rows, decision=records["gate"].outputs,
                      seconds=seconds)


def _candidate(records: dict[str, StepRecord]) -> dict[str, str]:
    return records["train"].outputs["adapters"]


def scorecard_values(result: DemoResult) -> tuple[list[str], list[tuple[str, list[float | None]]]]:
    """The scorecard's columns and each row's values (fractions; None: not measured)."""
    agents = sorted({a for r in result.rows for a, v in r.numbers.get("model_share", {}).items()
                     if v is not None})  # the agents that called the model
    columns = ["success", "compliance", "pass^1", *(f"share {a}" for a in agents)]
    rows = []
    for row in result.rows:
        n = row.numbers
        rows.append((row.label, [n.get("success"), n.get("compliance"), n.get("pass_k", {}).get("1"),
                                 *(n.get("model_share", {}).get(a) for a in agents)]))
    return columns, rows


def scorecard_lines(result: DemoResult) -> list[list[str]]:
    """The scorecard as rows of cells (header first), for a table or plain text."""
    columns, rows = scorecard_values(result)
    return [["", *columns], *([label, *map(_pct, values)] for label, values in rows)]


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def write_scorecard(result: DemoResult, folder: Path) -> list[Path]:
    """The scorecard as JSON, markdown and a PNG chart (before/after bars), for a person to
    look at rather than read."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    header, *rows = scorecard_lines(result)
    md = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
          *("| " + " | ".join(r) + " |" for r in rows), "",
          f"Gate: {'promoted' if result.decision.get('promote') else 'rejected'}: "
          f"{result.decision.get('reason', '')}", "", "| stage | seconds |", "|---|---|",
          *(f"| {k} | {v:.0f} |" for k, v in result.seconds.items())]
    paths = [folder / "scorecard.json", folder / "scorecard.md", folder / "scorecard.png"]
    paths[0].write_text(json.dumps(result.model_dump(mode="json"), indent=2))
    paths[1].write_text("\n".join(md) + "\n")
    metrics, values = scorecard_values(result)
    fig, ax = plt.subplots(figsize=(1.2 + 1.1 * len(metrics), 3.6))
    width = 0.8 / max(1, len(result.rows))
    for i, (label, row_values) in enumerate(values):
        ax.bar([m + i * width for m in range(len(metrics))],
               [100 * (v or 0.0) for v in row_values], width, label=label)
    ax.set_xticks([m + width * (len(rows) - 1) / 2 for m in range(len(metrics))], metrics,
                  rotation=20, ha="right")
    ax.set_ylim(0, 105)
    ax.set_ylabel("%")
    ax.set_title(f"{result.split} split, {len(result.tasks)} tasks: before and after one turn")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(paths[2], dpi=110)
    plt.close(fig)
    return paths
