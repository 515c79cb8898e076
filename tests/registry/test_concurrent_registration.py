"""Two nodes registering at once: version numbers by compare-and-set on the shared storage.

No lock is held across processes any more (a host-local lock means nothing to another node
sharing the storage over NFS or S3), so these tests use real processes with no lock between
them, and a listing made stale on purpose, as a second node would see it.
"""

from __future__ import annotations

import multiprocessing
import os

import pytest

from wow_ray.registry import EntryKind, Registry
from wow_ray.registry.storage import Storage

WRITERS = 6
VERSIONS_EACH = 3


def register_some(root: str, writer: int, start) -> list[int]:  # noqa: ANN001 - a Barrier
    """One 'node': waits for the others, then registers versions whose weights name it."""
    from pathlib import Path
    from tempfile import mkdtemp

    registry = Registry(root)
    start.wait()
    versions = []
    for i in range(VERSIONS_EACH):
        folder = Path(mkdtemp())
        (folder / "config.json").write_text('{"model_type": "llama"}')
        (folder / "model.safetensors").write_bytes(f"writer {writer} copy {i}".encode() * 64)
        entry = registry.register(
            EntryKind.MODEL, "shared", folder, source=f"writer-{writer}-{i}"
        )
        versions.append(entry.version)
    return versions


@pytest.mark.parametrize("scheme", ["", "file://"])
def test_processes_registering_at_once_get_distinct_versions_and_keep_their_files(
    tmp_path, scheme
):
    root = f"{scheme}{tmp_path / 'shared-storage'}"
    context = multiprocessing.get_context("spawn")  # fresh interpreters, as on other nodes
    with context.Manager() as manager:
        start = manager.Barrier(WRITERS)
        with context.Pool(WRITERS) as pool:
            results = pool.starmap(register_some, [(root, w, start) for w in range(WRITERS)])
    allocated = sorted(v for versions in results for v in versions)
    assert allocated == list(range(1, WRITERS * VERSIONS_EACH + 1))  # no duplicates, no gaps

    registry = Registry(root)
    entries = registry.entries(EntryKind.MODEL, "shared")
    assert [e.version for e in entries] == allocated
    assert len({e.source for e in entries}) == len(entries)
    for entry in entries:
        registry.verify(entry)  # each artifact folder holds its own writer's files, unmixed
        writer, copy = entry.source.removeprefix("writer-").split("-")
        weights = registry.local_dir(entry, cache_root=tmp_path / "cache") / "model.safetensors"
        assert weights.read_bytes() == f"writer {writer} copy {copy}".encode() * 64


def test_a_version_claimed_after_our_listing_is_skipped(tmp_path, monkeypatch):
    """The race itself, made certain: another node claims v2 between our listing and our claim."""
    registry = Registry(str(tmp_path / "storage"))
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    registry.register(EntryKind.MODEL, "m", folder, source="first")

    real_list_names = Storage.list_names
    raced = []

    def list_then_lose_the_race(self, rel):  # noqa: ANN001
        names = real_list_names(self, rel)
        if rel == "registry/model/m" and not raced:
            raced.append(True)  # the other node writes its claim right after our listing
            Storage.create_if_absent(self, "registry/model/m/v000002.claim", "{}")
        return names

    monkeypatch.setattr(Storage, "list_names", list_then_lose_the_race)
    entry = registry.register(EntryKind.MODEL, "m", folder, source="second")
    assert entry.version == 3
    assert registry.get(EntryKind.MODEL, "m") == entry


def test_a_registration_that_died_after_claiming_leaves_a_gap_not_a_record(tmp_path):
    registry = Registry(str(tmp_path / "storage"))
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    registry.register(EntryKind.MODEL, "m", folder, source="first")
    registry.storage.create_if_absent("registry/model/m/v000002.claim", '{"pid": 1}')
    (registry.storage.local_path("models/m/v2")).mkdir(parents=True)  # half-uploaded files
    entry = registry.register(EntryKind.MODEL, "m", folder, source="after the crash")
    assert [e.version for e in registry.entries(EntryKind.MODEL, "m")] == [1, 3]
    assert entry.version == 3


def test_create_if_absent_is_atomic_and_refuses_to_replace(tmp_path):
    storage = Storage(str(tmp_path / "s"))
    storage.create_if_absent("a/b.json", "first")
    with pytest.raises(FileExistsError):
        storage.create_if_absent("a/b.json", "second")
    assert storage.read_text("a/b.json") == "first"
    assert os.listdir(storage.local_path("a")) == ["b.json"]  # no temporary file left behind
