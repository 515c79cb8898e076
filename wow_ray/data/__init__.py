"""Data construction: training data for every agent, from a scenario pack, failures and traffic.

Public surface (everything else is internal)::

    from wow_ray.data import BuildConfig, build_cold_start, register_build, load_dataset

    init_ray(settings)                                   # a local Ray, or the cluster's
    result = build_cold_start(BuildConfig(scenario="food_delivery", situations=300))
    entry, manifest = register_build(Registry(settings.storage_path), result)
    version = load_dataset(registry, "food_delivery-cold-start")   # or name:vN
    for sample in version.records("train"):              # ChatSample, validated per line
        sample.messages, sample.meta.agent, sample.meta.intent

    converter = FailureConverter(pack)                   # from failed evaluated dialogues
    samples, pairs, divergence = converter.convert(EvaluatedDialogue(transcript=t, task_id="fd-006"))

    masked = Masker.for_pack(pack).mask(transcript)      # live traffic, personal data masked
    traffic_samples(masked, pack_fingerprint(pack))

The format (``formats.py``): a dataset version is a folder with ``train.jsonl`` and
``eval.jsonl`` (held out by dialogue), ``manifest.json`` (kind ``sft`` or ``preference``,
counts per split, agent, intent and source, the filters and what each removed, the pack's
content hash, the prompt version, the generator config and seed), ``filter_report.json`` and
``REPORT.md``. A line of an ``sft`` file is a ``ChatSample``: OpenAI ``messages`` whose last,
assistant message is the target, rendered through ``wow_ray.agents.prompts`` exactly as the
agent sends it, and ``meta`` (agent, intent, source, situation, dialogue, turn, the prompt
input). A ``preference`` line holds ``prompt``, ``chosen`` and ``rejected``.

CLI: ``wow-ray data build | show | from-failures | export-traffic``.
"""

from wow_ray.data.failures import Divergence, EvaluatedDialogue, FailureConverter, FailureError
from wow_ray.data.formats import (
    ChatSample,
    DatasetError,
    DatasetManifest,
    DatasetVersion,
    PreferenceSample,
    SampleMeta,
    read_jsonl,
)
from wow_ray.data.pipeline import BuildConfig, BuildResult, build_cold_start, pack_fingerprint
from wow_ray.data.situations import LeakGuard
from wow_ray.data.store import load_dataset, register_build, register_samples, write_dataset
from wow_ray.data.traffic import Masker, read_transcripts, traffic_samples

__all__ = [
    "BuildConfig",
    "BuildResult",
    "ChatSample",
    "DatasetError",
    "DatasetManifest",
    "DatasetVersion",
    "Divergence",
    "EvaluatedDialogue",
    "FailureConverter",
    "FailureError",
    "LeakGuard",
    "Masker",
    "PreferenceSample",
    "SampleMeta",
    "build_cold_start",
    "load_dataset",
    "pack_fingerprint",
    "read_jsonl",
    "read_transcripts",
    "register_build",
    "register_samples",
    "traffic_samples",
    "write_dataset",
]
