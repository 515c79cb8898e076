"""Writing a dataset version folder, registering it, and reading one back from the registry.

Registry versions are immutable: every build writes a fresh folder in a temporary place and
registers it as the next version; nothing already stored is touched.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from wow_ray.data.filters import report_markdown
from wow_ray.data.formats import (
    ChatSample,
    DatasetKind,
    DatasetManifest,
    DatasetVersion,
    FileInfo,
    FilterReport,
    PreferenceSample,
    Sources,
    count_samples,
    write_jsonl,
)
from wow_ray.data.pipeline import BuildResult, pack_fingerprint, split_of
from wow_ray.registry import EntryKind, Registry, RegistryEntry


def write_dataset(folder: Path, *, kind: DatasetKind, name: str,
                  samples: list[ChatSample] | list[PreferenceSample], sources: Sources,
                  report: FilterReport | None = None, seed: int = 0, eval_fraction: float = 0.1,
                  extra: dict[str, list[BaseModel]] | None = None) -> DatasetManifest:
    """Write train/eval JSON Lines (split by dialogue), the report and ``manifest.json``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ordered = sorted(samples, key=lambda s: s.id)
    splits = {s.id: split_of(s.meta.dialogue_id, seed, eval_fraction) for s in ordered}
    files: dict[str, FileInfo] = {}
    for split in ("train", "eval"):
        part = [s for s in ordered if splits[s.id] == split]
        if part or split == "train":
            name_ = f"{split}.jsonl"
            files[name_] = FileInfo(split=split, records=len(part), sha256=write_jsonl(folder / name_, part))
    extra_files = []
    if report is not None:
        (folder / "filter_report.json").write_text(report.model_dump_json(indent=2))
        (folder / "REPORT.md").write_text(report_markdown(report, f"{name}: quality filters"))
        extra_files += ["filter_report.json", "REPORT.md"]
    for filename, records in (extra or {}).items():
        write_jsonl(folder / filename, records)
        extra_files.append(filename)
    manifest = DatasetManifest(kind=kind, name=name, files=files, counts=count_samples(ordered, splits),
                               filters=report.stats if report else [], sources=sources,
                               extra_files=extra_files)
    (folder / "manifest.json").write_text(manifest.model_dump_json(indent=2))
    return manifest


def build_sources(result: BuildResult) -> Sources:
    pack, config = result.pack, result.config
    return Sources(
        pack={"name": pack.name, "version": pack.manifest.version,
              "content_sha256": pack_fingerprint(pack), "rules_version": pack.rules.version},
        prompt_version=_prompt_version(), seed=config.seed,
        generator={"module": "wow_ray.data.pipeline", **config.model_dump(mode="json")},
        held_out={"splits": list(result.guard.splits), "tasks": len(result.guard.task_ids),
                  "customers": len(result.guard.users), "records": len(result.guard.entity_ids)},
    )


def _prompt_version() -> str:
    from wow_ray.agents.prompts import PROMPT_VERSION

    return PROMPT_VERSION


def register_build(registry: Registry, result: BuildResult) -> tuple[RegistryEntry, DatasetManifest]:
    """Write the build to a fresh folder and register it as the next version of its name."""
    config = result.config
    with tempfile.TemporaryDirectory(prefix="wow-ray-dataset-") as tmp:
        manifest = write_dataset(Path(tmp), kind="sft", name=config.dataset_name,
                                 samples=result.samples, sources=build_sources(result),
                                 report=result.report, seed=config.seed,
                                 eval_fraction=config.eval_fraction)
        entry = registry.register(
            EntryKind.DATASET, config.dataset_name, Path(tmp),
            source=f"wow_ray.data cold_start {result.pack.name}@{manifest.sources.pack.content_sha256}",
            lineage=_lineage(manifest), metadata={"kind": "sft", "format_version": manifest.format_version})
    return entry, manifest


def register_samples(registry: Registry, name: str, kind: DatasetKind,
                     samples: list[ChatSample] | list[PreferenceSample], sources: Sources,
                     source: str, extra: dict[str, list[BaseModel]] | None = None,
                     eval_fraction: float = 0.0) -> tuple[RegistryEntry, DatasetManifest]:
    """Register any list of samples (failures, traffic) as the next version of ``name``."""
    with tempfile.TemporaryDirectory(prefix="wow-ray-dataset-") as tmp:
        manifest = write_dataset(Path(tmp), kind=kind, name=name, samples=samples, sources=sources,
                                 seed=sources.seed, eval_fraction=eval_fraction, extra=extra)
        entry = registry.register(EntryKind.DATASET, name, Path(tmp), source=source,
                                  lineage=_lineage(manifest),
                                  metadata={"kind": kind, "format_version": manifest.format_version})
    return entry, manifest


def _lineage(manifest: DatasetManifest) -> dict[str, Any]:
    s = manifest.sources
    return {"pack": s.pack.model_dump(), "prompt_version": s.prompt_version, "seed": s.seed,
            "counts": {"total": manifest.counts.total, "by_split": manifest.counts.by_split},
            "inputs": s.inputs}


def load_dataset(registry: Registry, ref: str, *, verify: bool = True) -> DatasetVersion:
    """A registered dataset version (``name``, ``name:vN``), its files checked against the
    registry's hashes first; records are validated as they are read."""
    entry = registry.get(EntryKind.DATASET, ref)
    if verify:
        registry.verify(entry)
    return DatasetVersion(registry.local_dir(entry))
