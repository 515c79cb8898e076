"""The loop's history as rows: one per turn, read from its step records in the registry.

One reader for everyone who shows it: ``wow-ray flywheel history`` (a table, ``--chart`` a PNG)
and the console's models page (a table and an inline SVG chart). Reading needs no stages.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, cast

from pydantic import BaseModel, Field

from wow_ray.flywheel.loop import Flywheel, Stages, StepRecord
from wow_ray.registry import Registry

COLOURS = {"success": "#4c72b0", "model share": "#c44e52"}  # as the evaluation reports' charts


class TurnSummary(BaseModel):
    """One turn of the loop: what production scored, what was trained, what the gate decided."""

    turn: int
    started_at: datetime
    production_success: float | None = None
    model_share: dict[str, float | None] = Field(default_factory=dict,
                                                 description="Per agent, production's share.")
    datasets: list[str] = Field(default_factory=list, description="'dataset xweight' lines.")
    candidate: str | None = None
    candidate_success: float | None = None
    promoted: bool | None = Field(None, description="None: the turn has no decision yet.")
    reason: str = ""
    seconds: float = 0.0

    @property
    def mean_model_share(self) -> float | None:
        """The agents' shares averaged: how much of production's work its models did."""
        known = [v for v in self.model_share.values() if v is not None]
        return sum(known) / len(known) if known else None

    @property
    def decision(self) -> str:
        if self.promoted is None:
            return "(unfinished)"
        return ("promoted: " if self.promoted else "rejected: ") + self.reason


def summarize(records: dict[str, StepRecord]) -> TurnSummary:
    """A turn's row from its step records (any subset of the steps: a turn may be unfinished)."""
    first = min(records.values(), key=lambda r: r.started_at)
    prod, cand = records.get("evaluate_baseline"), records.get("evaluate_candidate")
    train, gate, built = records.get("train"), records.get("gate"), records.get("build_data")
    trained: Any = (train.outputs.get("trained") or train.outputs.get("adapters")) if train else None
    return TurnSummary(
        turn=first.turn, started_at=first.started_at,
        production_success=prod.outputs.get("success") if prod else None,
        model_share=prod.outputs.get("model_share", {}) if prod else {},
        datasets=[f"{d['dataset']} x{d['weight']}" for d in built.outputs["datasets"]]
        if built else [],
        candidate=str(trained) if trained is not None else None,
        candidate_success=cand.outputs.get("success") if cand else None,
        promoted=gate.outputs["promote"] if gate else None,
        reason=gate.outputs.get("reason", "") if gate else "",
        seconds=sum(r.seconds for r in records.values()))


def loop_history(registry: Registry, scenario: str) -> list[TurnSummary]:
    """Every turn of ``scenario``'s loop in ``registry``, oldest first."""
    loop = Flywheel(registry, scenario, cast(Stages, None))  # reading touches no stage
    return [summarize(records) for records in loop.history() if records]


def write_history_chart(turns: list[TurnSummary], path: Path, title: str) -> Path:
    """A PNG of production's success and model share per turn (the evaluation reports' style)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    xs = [t.turn for t in turns]
    for label, values in (("success", [t.production_success for t in turns]),
                          ("model share", [t.mean_model_share for t in turns])):
        points = [(x, v) for x, v in zip(xs, values, strict=True) if v is not None]
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label,
                color=COLOURS[label])
    for t in turns:
        if t.promoted:
            ax.axvline(t.turn, color="#55a868", alpha=0.3)
    ax.set_ylim(0, 1)
    ax.set_xticks(xs)
    ax.set_xlabel("turn (green: a candidate was promoted)")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
