"""Where evaluation results go: a folder (report.json, REPORT.md, report.png, evaluated.jsonl)
and a registry entry of kind ``report``, linked to the version it judged."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from wow_ray.data.failures import EvaluatedDialogue
from wow_ray.evaluation.report import EvalReport, write_report
from wow_ray.registry import EntryKind, Registry, RegistryEntry


def save(report: EvalReport, dialogues: list[EvaluatedDialogue], folder: Path, *,
         charts: bool = True) -> list[Path]:
    """The report's files and one evaluated dialogue per line (for ``wow-ray data from-failures``)."""
    paths = write_report(report, folder, charts=charts)
    with open(folder / "evaluated.jsonl", "w") as out:
        for item in dialogues:
            out.write(item.model_dump_json() + "\n")
    return [*paths, folder / "evaluated.jsonl"]


def report_name(report: EvalReport) -> str:
    return f"eval-{report.scenario}-{report.split or report.kind}".lower().replace("_", "-")


def register(registry: Registry, report: EvalReport, folder: Path, *, judged: str | None,
             source: str, extra: dict[str, Any] | None = None) -> RegistryEntry:
    """Record the report folder as the next version of ``eval-<scenario>-<split>``."""
    return registry.register(
        EntryKind.REPORT, report_name(report), folder, source=source,
        lineage={"judged": judged, "scenario": report.scenario, "split": report.split,
                 "trials": report.trials, "kind": report.kind, **(extra or {})},
        metadata={"success": report.success, "compliance": report.compliance,
                  "pass_k": {str(k): v for k, v in report.pass_k.items()},
                  "model_share": {a: s.share for a, s in report.model_share.items()}})


def save_and_register(registry: Registry, report: EvalReport, dialogues: list[EvaluatedDialogue],
                      *, judged: str | None, source: str) -> RegistryEntry:
    """The report's files written to a scratch folder and registered from it (for callers
    that keep no folder of their own: the continuous evaluator, the loop's traffic step)."""
    with tempfile.TemporaryDirectory() as tmp:
        save(report, dialogues, Path(tmp))
        return register(registry, report, Path(tmp), judged=judged, source=source)


def judged_refs(registry: Registry) -> set[str]:
    """Every version some report already judged (what the continuous evaluator skips)."""
    return {e.lineage.get("judged") for e in registry.entries(EntryKind.REPORT) if e.lineage.get("judged")}
