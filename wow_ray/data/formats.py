"""The dataset contract: what a dataset version is, line by line, for the fine-tuning job.

A dataset version is a folder (registered as ``EntryKind.DATASET``)::

    manifest.json        DatasetManifest: kind, files, counts, filters, source versions
    train.jsonl          one record per line (ChatSample for kind "sft",
    eval.jsonl           PreferenceSample for kind "preference"); eval is held out by dialogue
    filter_report.json   FilterReport: what each quality filter removed, with examples
    REPORT.md            the same for people
    (transcripts.jsonl)  traffic exports only: the masked transcripts, with outcomes

A ``ChatSample`` is OpenAI chat messages: the system and user turns are exactly what the agent
sends at run time (rendered through ``wow_ray.agents.prompts``), and the assistant turn is the
training target. ``meta`` says where it came from. A ``PreferenceSample`` holds the same
prompt messages with a chosen and a rejected assistant answer. Lines are validated when read
back: a bad line is an error naming its file and line number.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from wow_ray.errors import WowRayError

FORMAT_VERSION = 1
AgentName = Literal["understanding", "master", "solution", "response", "handoff"]
Source = Literal["cold_start", "failure", "traffic"]
DatasetKind = Literal["sft", "preference"]
Split = Literal["train", "eval"]


class DatasetError(WowRayError):
    """A dataset file is missing or a line does not match the contract (file:line named)."""


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Message(_Record):
    """One chat message, OpenAI roles."""

    role: Literal["system", "user", "assistant"]
    content: str


class ActionCheck(_Record):
    """What the rule-consistency filter replays: the case, the actions before, the sample's own.

    Each action in ``actions`` must pass the rule engine after ``prior`` ran on a fresh backend
    from ``situation``'s initial dialogue state.
    """

    situation: dict[str, Any]
    prior: list[dict[str, Any]] = Field(default_factory=list, description="{name, arguments}")
    actions: list[dict[str, Any]] = Field(default_factory=list, description="{name, arguments}")


class SampleMeta(_Record):
    """Provenance of one sample."""

    agent: AgentName
    source: Source
    intent: str | None = Field(None, description="The request the turn is about, if any.")
    pack: str
    pack_version: str = Field(description="Content hash of the pack folder (sha256, 16 hex).")
    prompt_version: str
    situation_id: str = Field(description="Sampled situation, train task id, or session id.")
    dialogue_id: str
    turn: int = Field(0, ge=0, description="Customer turn index in the dialogue.")
    kind: str = Field("", description="Sub-kind: the reply kind, the master move, 'done'...")
    template: str = Field("", description="Which template rendered the customer text.")
    paraphrased: bool = False
    outcome: dict[str, Any] | None = Field(None, description="Traffic and failures: how it ended.")
    check: ActionCheck | None = Field(None, description="Set when the target contains actions.")
    input: dict[str, Any] = Field(
        default_factory=dict, description="The prompt input model, so a sample can be re-rendered."
    )


class ChatSample(_Record):
    """One supervised sample: prompt messages, then the assistant target."""

    id: str
    messages: list[Message] = Field(min_length=2)
    meta: SampleMeta

    @model_validator(mode="after")
    def _ends_with_target(self) -> ChatSample:
        if self.messages[-1].role != "assistant" or not self.messages[-1].content.strip():
            raise ValueError("the last message must be a non-empty assistant target")
        return self

    @property
    def prompt(self) -> list[Message]:
        return self.messages[:-1]

    @property
    def target(self) -> str:
        return self.messages[-1].content


class PreferenceSample(_Record):
    """A preference pair: the same prompt, a chosen (correct) and a rejected (agent's) answer."""

    id: str
    prompt: list[Message] = Field(min_length=1)
    chosen: str = Field(min_length=1)
    rejected: str = Field(min_length=1)
    meta: SampleMeta

    @model_validator(mode="after")
    def _different(self) -> PreferenceSample:
        if self.chosen.strip() == self.rejected.strip():
            raise ValueError("chosen and rejected are the same answer")
        return self


class FileInfo(_Record):
    split: Split
    records: int = Field(ge=0)
    sha256: str


class FilterStat(_Record):
    """One quality filter's effect."""

    name: str
    description: str
    checked: int = Field(ge=0)
    removed: int = Field(ge=0)
    removed_by_agent: dict[str, int] = Field(default_factory=dict)


class Counts(_Record):
    total: int = 0
    by_split: dict[str, int] = Field(default_factory=dict)
    by_agent: dict[str, int] = Field(default_factory=dict)
    by_intent: dict[str, int] = Field(default_factory=dict)
    by_source: dict[str, int] = Field(default_factory=dict)
    by_agent_intent: dict[str, dict[str, int]] = Field(default_factory=dict)


class PackSource(_Record):
    name: str
    version: str = Field(description="pack.yaml's version field.")
    content_sha256: str = Field(description="Hash of every file of the pack folder.")
    rules_version: str


class Sources(_Record):
    """Everything the dataset was made from, so a build can be repeated and audited."""

    pack: PackSource
    prompt_version: str
    seed: int
    generator: dict[str, Any] = Field(default_factory=dict, description="The build config.")
    held_out: dict[str, Any] = Field(
        default_factory=dict, description="Splits excluded, and how many tasks/entities that is."
    )
    inputs: list[str] = Field(default_factory=list, description="Input files or databases.")


class DatasetManifest(_Record):
    """``manifest.json``."""

    format_version: int = FORMAT_VERSION
    kind: DatasetKind
    name: str
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    files: dict[str, FileInfo]
    counts: Counts
    filters: list[FilterStat] = Field(default_factory=list)
    sources: Sources
    extra_files: list[str] = Field(default_factory=list, description="Other files in the folder.")


class FilterExample(_Record):
    id: str
    agent: str
    reason: str
    text: str = Field(description="The sample's distinctive text, shortened.")


class FilterReport(_Record):
    """``filter_report.json``: per filter, the count removed and a few examples."""

    stats: list[FilterStat]
    examples: dict[str, list[FilterExample]] = Field(default_factory=dict)


# --------------------------------------------------------------------------- reading, writing


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_jsonl(path: Path, records: list[BaseModel]) -> str:
    """Write one JSON object per line (non-ASCII kept); returns the file's sha256."""
    with open(path, "w", encoding="utf-8") as fh:
        for record in records:
            fh.write(record.model_dump_json(exclude_none=True))
            fh.write("\n")
    return sha256_of(path)


def read_jsonl(path: Path, model: type[BaseModel]) -> Iterator[Any]:
    """Validated records of ``path``; a bad line raises ``DatasetError`` naming file:line."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such dataset file")
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                yield model.model_validate(json.loads(line))
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{path}:{number}: not JSON ({exc.msg})") from None
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first["loc"]) or "record"
                raise DatasetError(
                    f"{path}:{number}: field {where}: {first['msg']} ({exc.error_count()} error(s))"
                ) from None


def record_model(kind: DatasetKind) -> type[ChatSample] | type[PreferenceSample]:
    return ChatSample if kind == "sft" else PreferenceSample


class DatasetVersion:
    """A dataset folder read back: its manifest, and its records validated line by line."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        manifest = self.folder / "manifest.json"
        if not manifest.is_file():
            raise DatasetError(f"{manifest}: missing; is {self.folder} a dataset version?")
        try:
            self.manifest = DatasetManifest.model_validate_json(manifest.read_text())
        except ValidationError as exc:
            first = exc.errors()[0]
            raise DatasetError(
                f"{manifest}: field {'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
            ) from None

    def records(self, split: Split | None = None) -> Iterator[Any]:
        """Every record of ``split`` (all splits if None), in file order."""
        model = record_model(self.manifest.kind)
        for name, info in self.manifest.files.items():
            if split is None or info.split == split:
                yield from read_jsonl(self.folder / name, model)

    def verify(self) -> None:
        """Raise ``DatasetError`` if a file's hash or record count differs from the manifest."""
        for name, info in self.manifest.files.items():
            path = self.folder / name
            if not path.is_file():
                raise DatasetError(f"{path}: listed in the manifest but missing")
            if sha256_of(path) != info.sha256:
                raise DatasetError(f"{path}: sha256 differs from the manifest")
            count = sum(1 for _ in read_jsonl(path, record_model(self.manifest.kind)))
            if count != info.records:
                raise DatasetError(f"{path}: {count} records, manifest says {info.records}")


def count_samples(samples: list[ChatSample] | list[PreferenceSample], splits: dict[str, str]) -> Counts:
    """Counts per split, agent, intent and source (``splits``: sample id -> split)."""
    counts = Counts(total=len(samples))
    for s in samples:
        m = s.meta
        intent = m.intent or "none"
        for table, key in ((counts.by_split, splits.get(s.id, "train")), (counts.by_agent, m.agent),
                           (counts.by_intent, intent), (counts.by_source, m.source)):
            table[key] = table.get(key, 0) + 1
        per = counts.by_agent_intent.setdefault(m.agent, {})
        per[intent] = per.get(intent, 0) + 1
    for table in (counts.by_split, counts.by_agent, counts.by_intent, counts.by_source,
                  counts.by_agent_intent, *counts.by_agent_intent.values()):
        items = sorted(table.items())
        table.clear()
        table.update(items)
    return counts
