"""The cold-start build as Ray Data pipelines, and writing a dataset version to the registry.

Three passes, the first and second on Ray Data so they scale out over a cluster:

1. ``sign``: candidate situations (sampled on the driver: cheap, seeded) are solved by the
   oracle in parallel; the driver keeps a balanced set per intent and outcome class;
2. ``render`` + ``check``: each kept situation becomes a dialogue and its samples, and every
   sample goes through the per-sample quality filters (fused into one task per block);
3. the near-duplicate pass over every kept sample's MinHash (global, on the driver), the
   train/eval split by dialogue, and the files written and registered.

Workers are stateless tasks; each worker process loads the pack once (``_worker``) and keeps
it, so ``concurrency`` (tasks at once, ``num_cpus`` each) is what the benchmark varies.
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from wow_ray.data.formats import ChatSample, FilterReport
from wow_ray.data.paraphrase import ParaphraseConfig
from wow_ray.data.situations import (
    LeakGuard,
    SamplerConfig,
    candidate_cases,
    select_balanced,
    sign_cases,
    train_task_cases,
)
from wow_ray.scenario import ScenarioPack, Situation, load_pack, resolve_pack_path

Progress = Callable[[str, int, int], None]  # (stage, done, total)


class BuildConfig(BaseModel):
    """One cold-start build; recorded in the manifest, so a build can be repeated exactly."""

    model_config = ConfigDict(extra="forbid")

    scenario: str = Field("food_delivery", description="A built-in pack name or a pack folder.")
    name: str | None = Field(None, description="Dataset name; default '<scenario>-cold-start'.")
    situations: int = Field(300, ge=1, description="Sampled situations kept after balancing.")
    oversample: float = Field(3.0, ge=1, description="Candidates solved per situation kept.")
    train_tasks: bool = Field(True, description="Also render the train split's own situations.")
    held_out_splits: list[str] = Field(["dev", "test"], description="Task splits kept out.")
    seed: int = Field(0, description="Seeds sampling, rendering and the split.")
    eval_fraction: float = Field(0.1, ge=0, lt=1, description="Dialogues held out as eval.jsonl.")
    max_tokens: int = Field(2048, ge=64, description="Longest sample, estimated tokens.")
    dedup_threshold: float = Field(0.9, gt=0, le=1, description="MinHash Jaccard for near-dups.")
    num_perm: int = Field(64, ge=16, le=512, description="MinHash permutations.")
    concurrency: int = Field(2, ge=1, description="Ray Data tasks at once per stage.")
    num_cpus: float = Field(1.0, gt=0, description="CPUs each task reserves.")
    batch_size: int = Field(8, ge=1, description="Situations per Ray Data batch.")
    paraphrase: ParaphraseConfig | None = Field(None, description="LLM rewording; off if None.")

    @property
    def dataset_name(self) -> str:
        base = Path(self.scenario).name if "/" in self.scenario else self.scenario
        return self.name or f"{base}-cold-start"


@dataclass
class BuildResult:
    """What a build produced, before it is written."""

    config: BuildConfig
    pack: ScenarioPack
    samples: list[ChatSample]
    report: FilterReport
    guard: LeakGuard
    situations: int
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def samples_per_s(self) -> float:
        busy = self.seconds.get("render_check", 0.0)
        return self.report.stats[0].checked / busy if busy else 0.0


def pack_fingerprint(pack: ScenarioPack) -> str:
    """sha256 over every file of the pack folder (path and bytes), 16 hex digits."""
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(pack.path).rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(str(path.relative_to(pack.path)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


# --------------------------------------------------------------------------- worker side


@functools.lru_cache(maxsize=4)
def _worker(pack_path: str, config_json: str) -> Any:
    """Per worker process: the pack, its builder and checker, loaded once and kept."""
    from wow_ray.data.dialogues import DialogueBuilder
    from wow_ray.data.filters import FilterConfig, SampleChecker
    from wow_ray.data.paraphrase import Paraphraser

    config = BuildConfig.model_validate_json(config_json)
    pack = load_pack(pack_path)
    guard = LeakGuard.from_pack(pack, tuple(config.held_out_splits))
    para = Paraphraser(config.paraphrase, config.seed) if config.paraphrase else None
    builder = DialogueBuilder(pack, pack_fingerprint(pack), paraphrase=para)
    checker = SampleChecker(pack, guard, FilterConfig(config.max_tokens, config.dedup_threshold,
                                                      config.num_perm))
    return pack, builder, checker


def sign_batch(batch: dict[str, Any], pack_path: str, config_json: str) -> dict[str, Any]:
    """Oracle outcome class of each candidate situation."""
    pack, builder, _ = _worker(pack_path, config_json)
    cases = [(cid, Situation.model_validate_json(s)) for cid, s in zip(batch["case_id"], batch["situation"], strict=True)]
    signed = sign_cases(pack, cases, builder.oracle)
    return {"case_id": [c for c, _, _ in signed], "situation": list(batch["situation"]),
            "signature": [sig for _, _, sig in signed]}


def render_batch(batch: dict[str, Any], pack_path: str, config_json: str, seed: int) -> dict[str, Any]:
    """Every sample of each situation's dialogue, as JSON rows."""
    _, builder, _ = _worker(pack_path, config_json)
    out: dict[str, list[Any]] = {"id": [], "agent": [], "dialogue": [], "sample": []}
    for cid, raw in zip(batch["case_id"], batch["situation"], strict=True):
        for sample in builder.build(str(cid), Situation.model_validate_json(raw), seed):
            out["id"].append(sample.id)
            out["agent"].append(sample.meta.agent)
            out["dialogue"].append(sample.meta.dialogue_id)
            out["sample"].append(sample.model_dump_json(exclude_none=True))
    return out


def check_batch(batch: dict[str, Any], pack_path: str, config_json: str) -> dict[str, Any]:
    """Per-sample filters, and the MinHash signature for the global near-duplicate pass."""
    from wow_ray.data.filters import distinctive_text, minhash_signature

    _, _, checker = _worker(pack_path, config_json)
    config = checker.config
    rejected, reasons, hashes, texts = [], [], [], []
    for raw in batch["sample"]:
        sample = ChatSample.model_validate_json(raw)
        name, why = checker.check(sample)
        text = distinctive_text(sample)
        rejected.append(name)
        reasons.append(why)
        texts.append(text[-400:])
        hashes.append(minhash_signature(text, config.num_perm).tobytes())
    return {**batch, "rejected_by": rejected, "reason": reasons, "minhash": hashes, "text": texts}


# --------------------------------------------------------------------------- driver side


def _map(ds: Any, fn: Callable, config: BuildConfig, **kwargs: Any) -> Any:
    import ray.data

    return ds.map_batches(fn, batch_size=config.batch_size,
                          compute=ray.data.TaskPoolStrategy(size=config.concurrency),
                          num_cpus=config.num_cpus, fn_kwargs=kwargs, batch_format="default")


def _collect(ds: Any, stage: str, total: int, progress: Progress | None) -> list[dict[str, Any]]:
    rows = []
    for row in ds.iter_rows():
        rows.append(row)
        if progress is not None:
            progress(stage, len(rows), total)
    return rows


def build_cold_start(config: BuildConfig, progress: Progress | None = None) -> BuildResult:
    """Sample, solve, render and filter on Ray Data; needs ``ray.init`` done (``init_ray``)."""
    import ray.data

    from wow_ray.data.filters import build_report, near_duplicates

    seconds: dict[str, float] = {}
    pack_path = str(resolve_pack_path(config.scenario))
    pack = load_pack(pack_path)
    guard = LeakGuard.from_pack(pack, tuple(config.held_out_splits))
    config_json = config.model_dump_json()
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # ours is the one the user sees

    started = time.perf_counter()
    count = int(config.situations * config.oversample)
    candidates = candidate_cases(pack, count, config.seed, guard, SamplerConfig())
    items = [{"case_id": c, "situation": s.model_dump_json()} for c, s in candidates]
    signed_ds = _map(ray.data.from_items(items, override_num_blocks=max(1, len(items) // config.batch_size)),
                     sign_batch, config, pack_path=pack_path, config_json=config_json)
    signed = [(r["case_id"], Situation.model_validate_json(r["situation"]), r["signature"])
              for r in _collect(signed_ds, "solve candidates", len(items), progress)]
    chosen = select_balanced(signed, config.situations, config.seed)
    if config.train_tasks:
        chosen += train_task_cases(pack, guard)
    seconds["sign"] = time.perf_counter() - started

    started = time.perf_counter()
    items = [{"case_id": c, "situation": s.model_dump_json()} for c, s in chosen]
    ds = ray.data.from_items(items, override_num_blocks=max(1, len(items) // config.batch_size))
    ds = _map(ds, render_batch, config, pack_path=pack_path, config_json=config_json, seed=config.seed)
    ds = _map(ds, check_batch, config, pack_path=pack_path, config_json=config_json)
    rows = _collect(ds, "render and check", 0, progress)
    seconds["render_check"] = time.perf_counter() - started

    started = time.perf_counter()
    rows.sort(key=lambda r: r["id"])
    removals: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if row["rejected_by"]:
            removals[row["rejected_by"]].append(row)
    passed = [r for r in rows if not r["rejected_by"]]
    dups = near_duplicates(passed, config.dedup_threshold, config.num_perm)
    for row in passed:
        if row["id"] in dups:
            removals["near_duplicate"].append({**row, "reason": f"near-copy of {dups[row['id']]}"})
    kept = [ChatSample.model_validate_json(r["sample"]) for r in passed if r["id"] not in dups]
    seconds["dedup"] = time.perf_counter() - started
    return BuildResult(config, pack, kept, build_report(len(rows), removals), guard, len(chosen), seconds)


def split_of(dialogue_id: str, seed: int, eval_fraction: float) -> str:
    """train or eval, by a hash of the dialogue: a dialogue never straddles the two."""
    h = int.from_bytes(hashlib.sha256(f"{seed}:{dialogue_id}".encode()).digest()[:8], "big")
    return "eval" if h / 2**64 < eval_fraction else "train"


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2, default=str)
