"""The continuous evaluator: a detached, named Ray actor that keeps measuring the service.

- each model or adapter version newly registered is evaluated on the dev split (tasks x k
  trials, simulated customers), and the report is registered, linked to that version;
- on a schedule, a sample of recent live sessions from the sessions database is scored
  without gold (compliance, claim consistency, model share, usage; tone with the judge), and
  that report is registered too. Simulated sessions are never sampled.

    from evaluators.continuous import start
    start(ContinuousConfig(storage_path=..., llm_url=..., database_url=...))   # returns the handle
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import ray
from pydantic import BaseModel, Field

from wow_ray.evaluation import build_report, evaluate_split, local_target, publish
from wow_ray.evaluation.live import score_live_sessions
from wow_ray.llm.client import AsyncOpenAIChatClient
from wow_ray.registry import EntryKind, Registry, RegistryEntry
from wow_ray.scenario import load_pack
from wow_ray.serving.metrics import record_evaluation

ACTOR_NAME = "wow-ray-continuous-evaluator"
NAMESPACE = "wow_ray"


class ContinuousConfig(BaseModel):
    storage_path: str
    scenario: str = "food_delivery"
    split: str = "dev"
    trials: int = 1
    llm_url: str | None = Field(None, description="The served LLM; None evaluates the deterministic path only.")
    database_url: str | None = Field(None, description="Sessions database; None: no live-session scoring.")
    poll_s: float = 60.0
    sessions_every_s: float = 3600.0
    sessions_sample: int = 20
    sessions_window_h: float = 24.0
    judge: bool = False
    concurrency: int = 2


def model_id(entry: RegistryEntry) -> str:
    """The id the LLM app serves a registered version under ('<base>:<adapter>:vN' for an adapter)."""
    if entry.kind == EntryKind.ADAPTER and entry.base_model:
        return f"{entry.base_model.split(':')[0]}:{entry.name}:v{entry.version}"
    return entry.name


@ray.remote(num_cpus=0.25)
class ContinuousEvaluator:
    def __init__(self, config: dict[str, Any]) -> None:
        self.config = ContinuousConfig.model_validate(config)
        self.registry = Registry(self.config.storage_path)
        self.pack = load_pack(self.config.scenario)
        self.last_sessions = 0.0
        self.log: list[dict[str, Any]] = []
        self._loop: asyncio.Task | None = None

    async def tick(self) -> list[str]:
        """One round: evaluate every unjudged version, and live sessions when due. Returns the
        refs of the reports registered."""
        made = []
        judged = publish.judged_refs(self.registry)
        for entry in self.registry.entries(EntryKind.MODEL) + self.registry.entries(EntryKind.ADAPTER):
            ref = f"{entry.kind}:{entry.ref}"
            if ref not in judged:
                made.append(await self._evaluate_version(entry, ref))
        due = time.monotonic() - self.last_sessions >= self.config.sessions_every_s
        if self.config.database_url and due:
            self.last_sessions = time.monotonic()
            report = await self._evaluate_sessions()
            if report:
                made.append(report)
        return made

    async def _evaluate_version(self, entry: RegistryEntry, ref: str) -> str:
        c = self.config
        client = AsyncOpenAIChatClient(c.llm_url, model=model_id(entry)) if c.llm_url else None
        results = await evaluate_split(self.pack, self.pack.tasks_in(c.split),
                                       lambda: local_target(self.pack, client), trials=c.trials,
                                       concurrency=c.concurrency, client=client, judge=c.judge and client is not None)
        report = build_report([s for s, _ in results], scenario=c.scenario, split=c.split, trials=c.trials,
                              model=model_id(entry) if client else "none",
                              meta={"judged": ref, "by": ACTOR_NAME})
        for scores, _ in results:  # evaluation success per model version, beside the service's
            if scores.success is not None:
                record_evaluation(c.scenario, ref, scores.success.success)
        return self._register(report, [d for _, d in results], ref)

    async def _evaluate_sessions(self) -> str | None:
        c = self.config
        client = AsyncOpenAIChatClient(c.llm_url) if c.llm_url and c.judge else None
        report = await score_live_sessions(self.pack, c.database_url, sample=c.sessions_sample,
                                           window_h=c.sessions_window_h, judge_client=client,
                                           meta={"by": ACTOR_NAME})
        if report is None:
            return None
        return self._register(report, [], f"sessions:{c.database_url}")

    def _register(self, report, dialogues, judged: str) -> str:
        entry = publish.save_and_register(self.registry, report, dialogues, judged=judged,
                                          source=ACTOR_NAME)
        self.log.append({"report": entry.ref, "judged": judged})
        return entry.ref

    async def run_forever(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception as exc:  # noqa: BLE001 - a bad round is logged; the schedule goes on
                self.log.append({"error": f"{type(exc).__name__}: {exc}"[:500]})
            await asyncio.sleep(self.config.poll_s)

    def start_loop(self) -> bool:
        if self._loop is None:
            self._loop = asyncio.get_event_loop().create_task(self.run_forever())
        return True

    def history(self) -> list[dict[str, Any]]:
        return list(self.log)


def start(config: ContinuousConfig, *, loop: bool = True):
    """The detached evaluator (created once, found by name afterwards), its schedule running."""
    actor = ContinuousEvaluator.options(name=ACTOR_NAME, namespace=NAMESPACE, lifetime="detached",
                                        get_if_exists=True, max_concurrency=4).remote(config.model_dump())
    if loop:
        ray.get(actor.start_loop.remote())
    return actor
