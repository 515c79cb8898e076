"""The registry: versions, references, hashes, idempotent registration, corruption detection."""

import json

import pytest

from wow_ray.errors import RegistryError
from wow_ray.registry import EntryKind, Registry, parse_ref, register_model


def make_model_folder(path, weights=b"\x00" * 1024):
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (path / "model.safetensors").write_bytes(weights)
    return path


def make_adapter_folder(path):
    path.mkdir(parents=True, exist_ok=True)
    (path / "adapter_config.json").write_text(json.dumps({"r": 8, "peft_type": "LORA"}))
    (path / "adapter_model.safetensors").write_bytes(b"\x01" * 256)
    return path


@pytest.fixture
def registry(tmp_path):
    return Registry(str(tmp_path / "storage"))


def test_versions_count_up_and_refs_resolve(registry, tmp_path):
    folder = make_model_folder(tmp_path / "m")
    first = registry.register(EntryKind.MODEL, "m", folder, source="test")
    (folder / "model.safetensors").write_bytes(b"\x02" * 1024)
    second = registry.register(EntryKind.MODEL, "m", folder, source="test")
    assert (first.version, second.version) == (1, 2)
    assert registry.get(EntryKind.MODEL, "m") == second
    assert registry.get(EntryKind.MODEL, "m:latest") == second
    assert registry.get(EntryKind.MODEL, "m:1") == first
    assert registry.get(EntryKind.MODEL, "m:v1") == first
    assert [e.ref for e in registry.entries(EntryKind.MODEL)] == ["m:v1", "m:v2"]


def test_artifact_files_are_copied_and_hashed(registry, tmp_path):
    entry = registry.register(EntryKind.MODEL, "m", make_model_folder(tmp_path / "m"), source="t")
    stored = registry.local_dir(entry)
    assert (stored / "model.safetensors").read_bytes() == b"\x00" * 1024
    assert set(entry.files) == {"config.json", "model.safetensors"}
    registry.verify(entry)  # untouched: no error


def test_a_corrupted_weights_file_is_detected_and_named(registry, tmp_path):
    entry = registry.register(EntryKind.MODEL, "m", make_model_folder(tmp_path / "m"), source="t")
    weights = registry.local_dir(entry) / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[100] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(RegistryError, match="model.safetensors has sha256") as err:
        registry.verify(entry)
    assert "corrupted" in str(err.value)


def test_a_missing_file_is_detected(registry, tmp_path):
    entry = registry.register(EntryKind.MODEL, "m", make_model_folder(tmp_path / "m"), source="t")
    (registry.local_dir(entry) / "config.json").unlink()
    with pytest.raises(RegistryError, match="config.json is missing"):
        registry.verify(entry)


def test_unknown_names_and_versions_are_explained(registry, tmp_path):
    registry.register(EntryKind.MODEL, "m", make_model_folder(tmp_path / "m"), source="t")
    with pytest.raises(RegistryError, match=r"no model named 'other'.*registered: m"):
        registry.get(EntryKind.MODEL, "other")
    with pytest.raises(RegistryError, match="has no version v7"):
        registry.get(EntryKind.MODEL, "m:v7")


@pytest.mark.parametrize("ref", ["Bad Name", "m:v0", "m:x1", ":v1", ""])
def test_malformed_refs_are_rejected(ref):
    with pytest.raises(RegistryError):
        parse_ref(ref)


def test_invalid_names_are_rejected_before_anything_is_written(registry, tmp_path):
    with pytest.raises(RegistryError, match="not a valid registry name"):
        registry.register(
            EntryKind.MODEL, "Has Spaces", make_model_folder(tmp_path / "m"), source="t"
        )
    assert registry.entries() == []


def test_records_are_immutable(registry, tmp_path):
    entry = registry.register(EntryKind.MODEL, "m", make_model_folder(tmp_path / "m"), source="t")
    with pytest.raises(FileExistsError):
        registry.storage.write_text(
            f"registry/model/m/v{entry.version:06d}.json", "{}", exclusive=True
        )
    assert registry.get(EntryKind.MODEL, "m:v1") == entry


def test_a_damaged_record_is_reported_with_its_path(registry, tmp_path):
    registry.register(EntryKind.MODEL, "m", make_model_folder(tmp_path / "m"), source="t")
    registry.storage.write_text("registry/model/m/v000002.json", "{not json")
    with pytest.raises(RegistryError, match="v000002.json is invalid"):
        registry.entries(EntryKind.MODEL)


def test_registering_the_same_folder_twice_is_idempotent(registry, tmp_path):
    folder = make_model_folder(tmp_path / "m")
    first = register_model(registry, "m", str(folder))
    assert register_model(registry, "m", str(folder)) == first
    (folder / "model.safetensors").write_bytes(b"\x03" * 1024)
    assert register_model(registry, "m", str(folder)).version == 2


def test_adapters_need_a_registered_base(registry, tmp_path):
    adapter = make_adapter_folder(tmp_path / "a")
    with pytest.raises(RegistryError, match="name its base model"):
        register_model(registry, "a", str(adapter))
    with pytest.raises(RegistryError, match="no model named 'base'"):
        register_model(registry, "a", str(adapter), base_model="base")
    register_model(registry, "base", str(make_model_folder(tmp_path / "base")))
    entry = register_model(registry, "a", str(adapter), base_model="base")
    assert entry.kind == EntryKind.ADAPTER
    assert entry.base_model == "base:v1"


def test_a_folder_that_is_neither_model_nor_adapter_is_refused(registry, tmp_path):
    folder = tmp_path / "junk"
    folder.mkdir()
    (folder / "notes.txt").write_text("hello")
    with pytest.raises(RegistryError, match="neither a Hugging Face model folder"):
        register_model(registry, "junk", str(folder))


def test_an_unreachable_hub_id_is_reported(registry, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(RegistryError, match="could not be downloaded"):
        register_model(registry, "x", "some-org/some-model-that-is-not-here")


def test_registry_works_on_a_pyarrow_uri(tmp_path):
    """Storage by URI (as on a cluster: s3://, gs://), exercised with pyarrow's file:// scheme."""
    registry = Registry(f"file://{tmp_path}/remote")
    assert not registry.storage.is_local
    entry = registry.register(EntryKind.MODEL, "m", make_model_folder(tmp_path / "m"), source="t")
    registry.verify(entry)
    assert registry.get(EntryKind.MODEL, "m") == entry
    copy = registry.local_dir(entry, cache_root=tmp_path / "cache")
    assert copy.is_relative_to(tmp_path / "cache")
    assert (copy / "model.safetensors").read_bytes() == b"\x00" * 1024
