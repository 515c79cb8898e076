"""The real work behind the loop's steps: evaluation in this process against the LLM app
(adapters by name), data construction, and a fine-tuning job on Ray Train with DeAR.

The LLM app (``wow-ray serve``) must be running at ``llm_url``: it serves every registered
adapter by name without a restart, so production and a fresh candidate are evaluated by the
same engine, each agent's calls naming its adapter version.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from wow_ray.agents import DialogueConfig, ModelSettings
from wow_ray.evaluation import EvalReport, build_report, evaluate_split, local_target
from wow_ray.registry import EntryKind, Registry


class StageOptions(BaseModel):
    scenario: str = "food_delivery"
    llm_url: str = "http://127.0.0.1:8000"
    base_model: str = "smollm2-135m"
    agents: list[str] = Field(
        default_factory=lambda: ["understanding", "response", "handoff"],
        description="Agents whose samples train the adapter, and which are served it: those that "
        "call the model in the default configuration (add 'solution' with the model planner).")
    tasks: int | None = Field(None, description="At most this many tasks per split (small scale).")
    trials: int = Field(1, ge=1, description="k: trials per task.")
    concurrency: int = 4
    database_url: str | None = Field(None, description="The service's sessions database, whose "
                                     "live sessions the loop scores; None: not scored.")
    traffic_sample: int = Field(20, ge=1, description="Live sessions scored per turn.")
    cold_start_situations: int = 60
    train: dict[str, Any] = Field(
        # lr 1e-3 and 512-token rows: on 2 CPU cores a step of 2 x 512 tokens takes about 7 s,
        # so 150 steps see about one epoch of these agents' samples (~140k tokens).
        default_factory=lambda: {"lora": {"r": 8}, "lr": 1e-3, "max_steps": 150, "workers": 2,
                                 "seq_len": 512, "synchroniser": "dear", "progress": False},
        description="FinetuneConfig fields for the candidate's job (DeAR by default).")


class RealStages:
    """``wow_ray.flywheel.Stages`` over the real evaluation, data and training."""

    def __init__(self, registry: Registry, options: StageOptions,
                 progress: Callable[[str], Any] | None = None) -> None:
        self.registry, self.options = registry, options
        self.agents = tuple(options.agents)
        self.progress = progress or (lambda message: None)

    def _config(self, adapters: dict[str, str]) -> DialogueConfig:
        o = self.options
        return DialogueConfig(
            scenario=o.scenario, adapters={a: None for a in self.agents},
            models={a: ModelSettings(model=f"{o.base_model}:{ref}") for a, ref in adapters.items()})

    def evaluate(self, adapters: dict[str, str], split: str, label: str) -> EvalReport:
        from wow_ray.data.formats import write_jsonl
        from wow_ray.llm.client import AsyncOpenAIChatClient
        from wow_ray.scenario import load_pack

        o = self.options
        pack = load_pack(o.scenario)
        tasks = pack.tasks_in(split)[: o.tasks]
        client = AsyncOpenAIChatClient(o.llm_url, model=o.base_model)
        config = self._config(adapters)
        results = asyncio.run(evaluate_split(
            pack, tasks, lambda: local_target(pack, client, config), trials=o.trials,
            concurrency=o.concurrency,
            on_episode=lambda done, total: self.progress(f"{label} on {split}: {done}/{total} episodes")))
        report = build_report([s for s, _ in results], scenario=pack.name, split=split,
                              trials=o.trials, model=",".join(sorted(adapters.values())) or o.base_model)
        rel = f"registry/flywheel/{o.scenario}/dialogues/{label}-{report.created_at:%Y%m%dT%H%M%S}.jsonl"
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "d.jsonl"
            write_jsonl(path, [d for _, d in results])
            self.registry.storage.write_text(rel, path.read_text())
        report.meta["dialogues"] = rel
        return report

    def score_traffic(self) -> dict[str, Any]:
        """Compliance, claim consistency and model share of recent live sessions (no gold), and
        the report registered; the failures for training come from simulated customers."""
        from wow_ray.evaluation import score_live_sessions
        from wow_ray.evaluation.publish import save_and_register
        from wow_ray.scenario import load_pack

        o = self.options
        if o.database_url is None:
            return {"skipped": "no sessions database given to the loop"}
        report = asyncio.run(score_live_sessions(load_pack(o.scenario), o.database_url,
                                                 sample=o.traffic_sample))
        if report is None:
            return {"sessions": 0}
        entry = save_and_register(self.registry, report, [], judged="live sessions",
                                  source="flywheel score_traffic")
        return {"sessions": report.episodes, "report": entry.ref, "compliance": report.compliance,
                "claims_consistent": report.claims_consistent,
                "model_share": {a: s.share for a, s in report.model_share.items()}}

    def cold_start_dataset(self) -> str:
        name = f"{self.options.scenario}-cold-start"
        if self.registry.entries(EntryKind.DATASET, name):
            return self.registry.get(EntryKind.DATASET, name).ref
        from wow_ray.config import load_settings
        from wow_ray.data.pipeline import BuildConfig, build_cold_start
        from wow_ray.data.store import register_build
        from wow_ray.ray_runtime import init_ray

        init_ray(load_settings(storage_path=self.registry.storage.root),
                 include_dashboard=False, log_to_driver=False)
        config = BuildConfig(scenario=self.options.scenario,
                             situations=self.options.cold_start_situations)
        entry, _ = register_build(self.registry, build_cold_start(config))
        return entry.ref

    def failures_dataset(self, report: EvalReport, turn: int) -> str | None:
        from wow_ray.data.failures import EvaluatedDialogue, register_failures
        from wow_ray.scenario import load_pack

        rel = report.meta["dialogues"]
        items = [EvaluatedDialogue.model_validate_json(line)
                 for line in self.registry.storage.read_text(rel).splitlines() if line.strip()]
        registered = register_failures(
            self.registry, load_pack(self.options.scenario), items,
            name=f"{self.options.scenario}-failures", inputs=[self.registry.storage.uri(rel)],
            source=f"flywheel turn {turn}")
        return registered["sft"].ref if "sft" in registered else None

    def train(self, datasets: list[dict[str, Any]], init: dict[str, str], turn: int
              ) -> dict[str, Any]:
        """One adapter trained on every agent's samples, registered under each agent's name."""
        from wow_ray.training import run_finetune
        from wow_ray.training.config import FinetuneConfig

        o = self.options
        config = FinetuneConfig(
            base_model=o.base_model, datasets=datasets, agents=list(self.agents),
            output_name=f"{o.scenario}-flywheel", init_adapter=next(iter(init.values()), None),
            run_name=f"{o.scenario}-flywheel-t{turn}", storage_path=self.registry.storage.root,
            **o.train)
        from wow_ray.config import load_settings

        self.progress(f"training {config.max_steps} steps on {len(datasets)} dataset(s) "
                      f"({config.workers} Ray Train workers, {config.synchroniser})")
        result = run_finetune(config, load_settings(storage_path=self.registry.storage.root))
        folder = self.registry.local_dir(result.entry)
        adapters = {}
        for agent in self.agents:
            entry = self.registry.register(
                EntryKind.ADAPTER, f"{o.scenario}-{agent}", folder, source=f"flywheel turn {turn}",
                base_model=result.entry.base_model,
                lineage={"trained": result.entry.ref, **result.entry.lineage})
            adapters[agent] = entry.ref
        return {"adapters": adapters, "trained": result.entry.ref, "metrics": result.metrics,
                "job": result.entry.lineage.get("job_id")}
