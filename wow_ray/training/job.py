"""The driver side of a fine-tuning job: resolve inputs in the registry, tokenise, run Ray
Train's ``TorchTrainer``, and register the result with its lineage.

Tokenisation happens once, here, and reaches the workers through Ray's object store: every
worker then knows every row, so the step plan (and a restart's position in it) needs no
coordination. Checkpoints go to ``<storage>/runs/<run name>/`` (Ray Train's own layout) and
the log to ``<storage>/runs/<run name>/metrics.jsonl``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from wow_ray.config import WowSettings, load_settings
from wow_ray.errors import WowRayError
from wow_ray.registry import EntryKind, Registry, RegistryEntry, resolve_model
from wow_ray.training.config import FinetuneConfig

RUNS = "runs"


class FinetuneError(WowRayError):
    """The job cannot run as configured, or its training failed."""


@dataclass
class FinetuneResult:
    entry: RegistryEntry  # the registered adapter or model
    metrics: dict[str, Any]  # the last step's metrics (loss, eval_loss, tokens_per_s, ...)
    run_path: str  # Ray Train's run folder (checkpoints, metrics.jsonl)
    data: dict[str, Any]  # rows, samples, dropped, tokens


def weighted(records: list, weight: float, seed: int) -> list:
    """``records`` repeated ``int(weight)`` times plus a seeded sample of the fraction left."""
    import random

    whole, fraction = divmod(weight, 1.0)
    out = list(records) * int(whole)
    if fraction > 0 and records:
        keep = round(len(records) * fraction)
        out += random.Random(seed).sample(list(records), keep)
    return out


def mixed_records(config: FinetuneConfig, versions: list, split: str) -> list:
    """The split's records of every dataset of the mix, weighted (train only), filtered by agent."""
    records = []
    for index, (part, version) in enumerate(zip(config.parts(), versions, strict=True)):
        found = [r for r in version.records(split)
                 if config.agents is None or r.meta.agent in config.agents]
        records += weighted(found, part.weight, config.seed + index) if split == "train" else found
    return records


def prepare_data(config: FinetuneConfig, tokenizer, versions) -> dict[str, Any]:
    """Tokenised train and eval splits of the job's datasets, in the form the method needs."""
    from wow_ray.training.dpo import tokenise_pairs
    from wow_ray.training.sft_data import pack, tokenise_chat

    versions = versions if isinstance(versions, list) else [versions]
    want = "sft" if config.method == "sft" else "preference"
    for version in versions:
        if version.manifest.kind != want:
            raise FinetuneError(f"method {config.method!r} trains on {want!r} datasets; "
                                f"{version.manifest.name} is {version.manifest.kind!r}")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    out: dict[str, Any] = {}
    for split in ("train", "eval"):
        records = mixed_records(config, versions, split)
        if config.method == "sft":
            samples = [tokenise_chat(tokenizer, [m.model_dump() for m in r.messages],
                                     config.loss_on) for r in records]
            out[split] = pack(samples, config.seq_len, pad, packing=config.packing)
        else:
            out[split] = tokenise_pairs(tokenizer, records, seq_len=config.seq_len,
                                        max_prompt_tokens=config.dpo.max_prompt_tokens)
    if len(out["train"]) == 0:
        raise FinetuneError(f"no training {'rows' if config.method == 'sft' else 'pairs'} left "
                            f"(all samples longer than seq_len={config.seq_len}?)")
    return out


def data_stats(data: dict[str, Any]) -> dict[str, Any]:
    stats = {}
    for split, part in data.items():
        entry = {"items": len(part), "dropped": part.dropped, "target_tokens": part.target_tokens}
        if hasattr(part, "samples"):
            entry["samples"] = part.samples
            entry["tokens"] = int(part.lengths.sum())
        stats[split] = entry
    return stats


def job_ids() -> dict[str, str | None]:
    """The Ray Jobs submission id (``ray job submit``) if any, and Ray's own job id."""
    import ray

    submission = None
    raw = os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR")
    if raw:
        submission = json.loads(raw).get("metadata", {}).get("job_submission_id")
    ray_job = ray.get_runtime_context().get_job_id() if ray.is_initialized() else None
    return {"job_id": submission or ray_job, "ray_job_id": ray_job}


def run_finetune(config: FinetuneConfig, settings: WowSettings | None = None) -> FinetuneResult:
    """Run the job on the connected (or a new local) Ray and register its result."""
    import ray
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer
    from transformers import AutoTokenizer

    from wow_ray.data import load_dataset
    from wow_ray.ray_runtime import init_ray
    from wow_ray.training.loop import OUTPUT_DIR, train_loop

    settings = settings or load_settings()
    storage_path = config.storage_path or settings.storage_path
    registry = Registry(storage_path)
    base = resolve_model(registry, config.base_model)
    registry.verify(base)
    datasets = [registry.get(EntryKind.DATASET, part.dataset) for part in config.parts()]
    versions = [load_dataset(registry, d.ref) for d in datasets]
    init = None
    if config.init_adapter:
        init = registry.get(EntryKind.ADAPTER, config.init_adapter)
        registry.verify(init)
        if (init.base_model or "").split(":")[0] != base.name:
            raise FinetuneError(f"init_adapter {init.ref} is over {init.base_model}, not {base.ref}")
    tokenizer = AutoTokenizer.from_pretrained(registry.local_dir(base))
    data = prepare_data(config, tokenizer, versions)

    init_ray(settings)
    run_name = config.run_name or f"{config.output_name}-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    trainer = TorchTrainer(
        train_loop,
        train_loop_config={"config": config.model_dump(mode="json"), "data": ray.put(data),
                           "storage_path": storage_path, "base_ref": base.ref,
                           "init_adapter_ref": init.ref if init else None,
                           "run_rel": f"{RUNS}/{run_name}"},
        scaling_config=ScalingConfig(num_workers=config.workers, use_gpu=config.use_gpu,
                                     resources_per_worker={"CPU": config.cpus_per_worker}),
        run_config=RunConfig(
            name=run_name,
            storage_path=registry.storage.uri(RUNS),
            failure_config=FailureConfig(max_failures=config.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=config.keep_checkpoints),
        ),
    )
    result = trainer.fit()
    if result.error is not None:
        raise FinetuneError(f"training failed: {result.error}") from result.error
    checkpoint = result.checkpoint
    with checkpoint.as_directory() as folder:
        metrics = json.loads((Path(folder) / "metrics.json").read_text())
        lineage = {
            "method": config.method,
            "base_model": base.ref,
            "dataset": datasets[0].ref,
            "datasets": [{"dataset": d.ref, "weight": p.weight}
                         for d, p in zip(datasets, config.parts(), strict=True)],
            "agents": config.agents,
            "init_adapter": init.ref if init else None,
            "dataset_kind": versions[0].manifest.kind,
            "config": config.model_dump(mode="json"),
            "metrics": metrics,
            "data": data_stats(data),
            **job_ids(),
            "run": registry.storage.uri(f"{RUNS}/{run_name}"),
            "checkpoint": checkpoint.path,
        }
        adapter = config.lora is not None and not config.lora.merge
        entry = registry.register(
            EntryKind.ADAPTER if adapter else EntryKind.MODEL,
            config.output_name,
            Path(folder) / OUTPUT_DIR,
            source=f"job:{lineage['job_id']}",
            base_model=base.ref,
            lineage=lineage,
            metadata={"method": config.method, "lora": adapter,
                      "synchroniser": config.synchroniser, "workers": config.workers},
        )
    return FinetuneResult(entry, metrics, lineage["run"], lineage["data"])
