"""Fixtures for the fine-tuning tests: a tiny random Llama, datasets built by the issue-8
pipeline (and preference pairs made from them), and a job config factory.

Everything lives in the session's ``embedded_storage``, so an adapter trained here is one the
session's LLM app (``served_llm``) can serve by name.
"""

from __future__ import annotations

import pytest

from wow_ray.registry import EntryKind, Registry


@pytest.fixture(scope="session")
def registry(embedded_storage) -> Registry:
    return Registry(embedded_storage)


@pytest.fixture(scope="session")
def tiny_model(registry):
    """A randomly initialised Llama (width 32, two layers, about 6 MB) with SmolLM2's tokenizer."""
    from wow_ray.training import register_random_llama

    return register_random_llama(registry, "tiny-llama")


@pytest.fixture(scope="session")
def tokenizer(registry):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(
        registry.local_dir(registry.get(EntryKind.MODEL, "smollm2-135m")))


@pytest.fixture(scope="session")
def sft_dataset(ray_session, registry):
    """A small cold-start dataset, built and registered by ``wow_ray.data`` on Ray Data."""
    from wow_ray.data import BuildConfig, build_cold_start, register_build

    result = build_cold_start(BuildConfig(situations=6, seed=5, concurrency=2,
                                          name="ft-cold-start"))
    entry, _ = register_build(registry, result)
    return entry


@pytest.fixture(scope="session")
def preference_dataset(registry, sft_dataset):
    """Preference pairs over the built dataset's prompts: the oracle's target is chosen, the
    target of a different sample of the same agent (a wrong answer in the right form) rejected."""
    from wow_ray.data import PreferenceSample, load_dataset, register_samples

    version = load_dataset(registry, sft_dataset.ref)
    samples = list(version.records())
    pairs = []
    for i, sample in enumerate(samples):
        other = next((s for s in samples[i + 1:] + samples[:i]
                      if s.meta.agent == sample.meta.agent and s.target != sample.target), None)
        if other is None:
            continue
        pairs.append(PreferenceSample(id=f"pair-{sample.id}", prompt=sample.prompt,
                                      chosen=sample.target, rejected=other.target,
                                      meta=sample.meta.model_copy(update={"source": "failure"})))
        if len(pairs) == 48:
            break
    entry, _ = register_samples(registry, "ft-preferences", "preference", pairs,
                                version.manifest.sources, source="tests: pairs from ft-cold-start",
                                eval_fraction=0.25)
    return entry


@pytest.fixture(scope="session")
def job_config(registry, tiny_model):
    """A FinetuneConfig for the tiny model, small and fast; keyword arguments override."""
    from wow_ray.training import FinetuneConfig

    def make(**overrides):
        base = dict(base_model=tiny_model.ref, output_name="tiny-sft",
                    storage_path=registry.storage.root, workers=2, seq_len=512,
                    max_steps=4, checkpoint_every=2, warmup_steps=1, lr=1e-3,
                    eval_max_rows=4, progress=False)
        return FinetuneConfig(**{**base, **overrides})

    return make
