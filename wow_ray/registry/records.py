"""The registry: every model, adapter, dataset, checkpoint and report, versioned, on one storage.

Each version is one immutable JSON record, ``registry/<kind>/<name>/v000001.json``, written
after its files are in place, so a record's presence means its artifact is complete. There is no
single manifest file to corrupt: a failed or concurrent write can never lose an older entry.
The artifact itself lives in ``<kind>s/<name>/v<version>/`` beside the records, and the record
keeps the sha256 of every file in it, so a damaged artifact is found before it is used.

Version numbers are allocated by compare-and-set on the shared storage, not by a lock: a
registration claims ``v<N>`` by creating ``registry/<kind>/<name>/v<N>.claim`` only if it is
absent (``Storage.create_if_absent``); whoever loses the race looks again and claims the next
number. So two nodes registering at once get two versions, and neither overwrites the other's
artifact. A registration that dies after its claim leaves a gap in the numbers, never a record.
"""

from __future__ import annotations

import json
import os
import re
import socket
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from wow_ray.errors import RegistryError
from wow_ray.registry.storage import Storage, sha256_file

NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"
_RECORDS = "registry"
_RECORD_FILE = re.compile(r"^v(\d{6})\.json$")
_TAKEN_FILE = re.compile(r"^v(\d{6})\.(?:json|claim)$")  # a record, or a claim still in flight
_CLAIM_ATTEMPTS = 1000


class EntryKind(StrEnum):
    MODEL = "model"  # a full Hugging Face model folder, servable on its own
    ADAPTER = "adapter"  # a PEFT LoRA adapter over a registered base model
    DATASET = "dataset"
    CHECKPOINT = "checkpoint"
    REPORT = "report"


class RegistryEntry(BaseModel):
    """One version of one artifact, as recorded in the registry."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: EntryKind
    name: str = Field(pattern=NAME_PATTERN)
    version: int = Field(ge=1)
    path: str = Field(description="Folder of the artifact, relative to the storage root.")
    source: str = Field(description="Where it came from: a package file, a hub id, a job id.")
    files: dict[str, str] = Field(description="sha256 of every file in the folder, by path.")
    created_at: datetime
    base_model: str | None = Field(None, description="For adapters and fine-tunes: 'name:vN'.")
    lineage: dict[str, Any] = Field(
        default_factory=dict, description="Dataset version, config, metrics, job id..."
    )
    metadata: dict[str, Any] = Field(default_factory=dict)

    @property
    def ref(self) -> str:
        return f"{self.name}:v{self.version}"


def parse_ref(ref: str) -> tuple[str, int | None]:
    """'name' or 'name:latest' -> (name, None); 'name:3' or 'name:v3' -> (name, 3)."""
    name, _, version = ref.partition(":")
    if not re.match(NAME_PATTERN, name):
        raise RegistryError(f"{ref!r} is not a registry reference (name, name:vN or name:latest)")
    if version in ("", "latest"):
        return name, None
    digits = version.removeprefix("v")
    if not digits.isdigit() or int(digits) < 1:
        raise RegistryError(f"{ref!r}: version must be a positive number, 'vN' or 'latest'")
    return name, int(digits)


def _split_alias(ref: str) -> tuple[str, str]:
    from wow_ray.registry.aliases import split_alias

    return split_alias(ref) or (ref, "")


class Registry:
    """Register artifacts, find them by reference, and verify their files against their hashes."""

    def __init__(self, storage: Storage | str) -> None:
        self.storage = storage if isinstance(storage, Storage) else Storage(storage)

    @property
    def aliases(self) -> Any:
        """This registry's aliases (``wow_ray.registry.aliases.Aliases``)."""
        from wow_ray.registry.aliases import Aliases

        return Aliases(self)

    # -- reading -------------------------------------------------------------------------

    def entries(
        self, kind: EntryKind | None = None, name: str | None = None
    ) -> list[RegistryEntry]:
        """All recorded versions, oldest first within each name."""
        kinds = [kind] if kind else list(EntryKind)
        found = []
        for k in kinds:
            names = [name] if name else self.storage.list_names(f"{_RECORDS}/{k}")
            for n in names:
                for file in self.storage.list_names(f"{_RECORDS}/{k}/{n}"):
                    if _RECORD_FILE.match(file):
                        found.append(self._read_record(f"{_RECORDS}/{k}/{n}/{file}"))
        return found

    def get(self, kind: EntryKind, ref: str) -> RegistryEntry:
        """The entry that ``ref`` names: 'name:vN', 'name@alias' (where the alias points), or
        the newest version for a bare 'name'."""
        if "@" in ref:
            return self.aliases.entry(kind, *_split_alias(ref))
        name, version = parse_ref(ref)
        versions = self.entries(kind, name)
        if not versions:
            known = sorted({e.name for e in self.entries(kind)})
            raise RegistryError(
                f"no {kind} named {name!r} in the registry at {self.storage.root} "
                f"(registered: {', '.join(known) or 'none'})"
            )
        if version is None:
            return versions[-1]
        for entry in versions:
            if entry.version == version:
                return entry
        have = ", ".join(f"v{e.version}" for e in versions)
        raise RegistryError(f"{kind} {name!r} has no version v{version} (has {have})")

    def find_by_source(self, kind: EntryKind, name: str, source: str) -> RegistryEntry | None:
        """The newest version of ``name`` registered from ``source``, for idempotent registration."""
        matches = [e for e in self.entries(kind, name) if e.source == source]
        return matches[-1] if matches else None

    def _read_record(self, rel: str) -> RegistryEntry:
        try:
            return RegistryEntry.model_validate_json(self.storage.read_text(rel))
        except ValidationError as exc:
            raise RegistryError(
                f"registry record {self.storage.uri(rel)} is invalid: {exc}"
            ) from None

    # -- writing -------------------------------------------------------------------------

    def register(
        self,
        kind: EntryKind,
        name: str,
        local_dir: Path,
        *,
        source: str,
        base_model: str | None = None,
        lineage: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> RegistryEntry:
        """Copy ``local_dir`` into storage as the next version of ``name`` and record it."""
        if not re.match(NAME_PATTERN, name):
            raise RegistryError(
                f"{name!r} is not a valid registry name: lower-case letters, digits, '.', '_', '-'"
            )
        local_dir = Path(local_dir)
        if not local_dir.is_dir() or not any(local_dir.iterdir()):
            raise RegistryError(f"{local_dir} is not a folder with files in it")
        files = {
            str(p.relative_to(local_dir)): sha256_file(p)
            for p in sorted(local_dir.rglob("*"))
            if p.is_file()
        }
        version = self._claim_next_version(kind, name)
        path = f"{kind}s/{name}/v{version}"
        self.storage.remove_dir(path)  # files of a registration from before claims existed
        self.storage.upload_dir(local_dir, path)
        entry = RegistryEntry(
            kind=kind,
            name=name,
            version=version,
            path=path,
            source=source,
            files=files,
            created_at=datetime.now(UTC),
            base_model=base_model,
            lineage=lineage or {},
            metadata=metadata or {},
        )
        self.storage.write_text(
            f"{_RECORDS}/{kind}/{name}/v{version:06d}.json",
            entry.model_dump_json(indent=2),
            exclusive=True,
        )
        return entry

    def _claim_next_version(self, kind: EntryKind, name: str) -> int:
        """The next free version number of ``name``, claimed for this registration alone."""
        folder = f"{_RECORDS}/{kind}/{name}"
        claim = json.dumps({"host": socket.gethostname(), "pid": os.getpid(),
                            "claimed_at": datetime.now(UTC).isoformat()})
        for _ in range(_CLAIM_ATTEMPTS):
            taken = [
                int(match.group(1))
                for file in self.storage.list_names(folder)
                if (match := _TAKEN_FILE.match(file))
            ]
            version = max(taken, default=0) + 1
            try:
                self.storage.create_if_absent(f"{folder}/v{version:06d}.claim", claim)
                return version
            except FileExistsError:
                continue  # another registration claimed it after we listed: look again
        raise RegistryError(
            f"could not claim a version of {kind} {name!r} at {self.storage.uri(folder)} "
            f"in {_CLAIM_ATTEMPTS} attempts"
        )

    # -- checking and using --------------------------------------------------------------

    def verify(self, entry: RegistryEntry) -> None:
        """Raise RegistryError naming every file that is missing or differs from its hash."""
        problems = []
        present = (
            set(self.storage.list_files(entry.path)) if self.storage.exists(entry.path) else set()
        )
        for rel, expected in entry.files.items():
            if rel not in present:
                problems.append(f"{rel} is missing")
                continue
            actual = self.storage.file_sha256(f"{entry.path}/{rel}")
            if actual != expected:
                problems.append(f"{rel} has sha256 {actual[:12]}…, recorded {expected[:12]}…")
        if problems:
            raise RegistryError(
                f"{entry.kind} {entry.ref} at {self.storage.uri(entry.path)} is corrupted: "
                + "; ".join(problems)
                + ". It will not be used; register it again (for the embedded model: "
                "`wow-ray model prepare --force`)."
            )

    def artifact_uri(self, entry: RegistryEntry) -> str:
        return self.storage.uri(entry.path)

    def local_dir(self, entry: RegistryEntry, cache_root: Path | None = None) -> Path:
        """A local folder holding the artifact: itself on local storage, else a cached copy."""
        if self.storage.is_local:
            return self.storage.local_path(entry.path)
        cache_root = cache_root or Path.home() / ".cache" / "wow_ray"
        target = cache_root / entry.kind / entry.name / f"v{entry.version}"
        if not (target / ".complete").exists():
            self.storage.download_dir(entry.path, target)
            (target / ".complete").touch()
        return target
