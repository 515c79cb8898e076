"""One turn of the loop with the real stages, at the smallest scale that still does every step:
the LLM app (vLLM serving the embedded model, adapters by name), food_delivery, two train and
two dev tasks, k = 1, a few DeAR steps. What the tiny model learns is noise; what is asserted
is what the loop guarantees whatever it learns: each step recorded with its numbers, data and
an adapter registered, the gate's decision and reason recorded, the aliases moved accordingly,
no held-out content in the data it built, an interrupted turn resumed where it stopped, and
the main job's before/after scorecard on two test tasks."""

from __future__ import annotations

import pytest

from wow_ray.data.formats import ChatSample
from wow_ray.data.situations import LeakGuard
from wow_ray.data.store import load_dataset
from wow_ray.evaluation import EvalReport
from wow_ray.flywheel import STEPS, Flywheel, FlywheelBusy
from wow_ray.flywheel.demo import run_demo, scorecard_lines
from wow_ray.flywheel.stages import RealStages, StageOptions
from wow_ray.registry import CANDIDATE, PRODUCTION, EntryKind, Registry
from wow_ray.scenario import load_pack

pytestmark = pytest.mark.slow

AGENTS = ["understanding", "solution", "response"]


class InterruptedOnce(RealStages):
    """The real stages, but the first training is interrupted before it starts (a Ctrl-C)."""

    interrupted = False
    calls: list[str]

    def evaluate(self, adapters, split, label):
        self.calls.append(label)
        return super().evaluate(adapters, split, label)

    def train(self, datasets, init, turn):
        if not self.interrupted:
            type(self).interrupted = True
            raise KeyboardInterrupt("interrupted before training")
        self.calls.append("train")
        return super().train(datasets, init, turn)


def test_a_real_turn_is_recorded_gated_and_resumable(served_llm, embedded_storage):
    registry = Registry(embedded_storage)
    options = StageOptions(
        llm_url=served_llm, agents=AGENTS, tasks=2, trials=1, concurrency=2,
        cold_start_situations=8,
        # seq_len 1024: two workers at 2048 took 5 GB each, beside the session's vLLM app and
        # dialogue service, and the node ran out of memory in the whole suite.
        train={"lora": {"r": 8}, "max_steps": 2, "workers": 2, "seq_len": 1024,
               "synchroniser": "dear", "warmup_steps": 0, "checkpoint_every": 2,
               "eval_max_rows": 2, "progress": False})
    stages = InterruptedOnce(registry, options)
    stages.calls = []
    loop = Flywheel(registry, "food_delivery", stages, progress=print)

    with pytest.raises(KeyboardInterrupt):
        loop.run(turns=1)
    assert set(loop.records(1)) == {"evaluate_production", "score_traffic", "build_data"}
    assert registry.storage.list_names("registry/flywheel/food_delivery").count("lock.json") == 0

    # The main job (`wow-ray flywheel demo`): the turn, resumed at train (production is not
    # evaluated again), then the scorecard on the test split's first two tasks.
    demo = run_demo(loop, RealStages(registry, options))
    records = loop.records(1)
    assert stages.calls == ["production", "train", "baseline", "candidate"]
    assert list(records) == list(STEPS)
    for step in STEPS:
        assert records[step].seconds >= 0 and records[step].turn == 1
    for step in ("evaluate_production", "evaluate_baseline", "evaluate_candidate"):
        out = records[step].outputs
        assert out["episodes"] == 2 and 0 <= out["success"] <= 1 and "compliance" in out
        report = EvalReport.model_validate_json(registry.storage.read_text(out["report"]))
        # Every model call answered: a failed one (an adapter the app could not load) would
        # fall back to the rules silently and the candidate would be judged on them.
        assert not sum(s.errors for s in report.model_share.values()), (step, report.model_share)
    assert records["evaluate_production"].inputs == {"adapters": {}, "split": "train"}
    assert records["evaluate_candidate"].inputs["split"] == "dev"

    # Data: the cold start (and this turn's failures, if any) registered, nothing held out in it.
    datasets = records["build_data"].outputs["datasets"]
    assert datasets[0]["dataset"].startswith("food_delivery-cold-start:v")
    guard = LeakGuard.from_pack(load_pack("food_delivery"), ("dev", "test"))
    for part in datasets:
        version = load_dataset(registry, part["dataset"])
        samples = list(version.records())
        assert samples
        for sample in samples:
            assert isinstance(sample, ChatSample)
            assert sample.meta.situation_id not in guard.task_ids, sample.id
            assert not guard.leaks_in("\n".join(m.content for m in sample.messages)), sample.id

    # A candidate adapter registered per agent, from a training job on those datasets.
    candidate = records["train"].outputs["adapters"]
    assert set(candidate) == set(AGENTS)
    for agent, ref in candidate.items():
        entry = registry.get(EntryKind.ADAPTER, ref)
        assert entry.name == f"food_delivery-{agent}"
        assert entry.lineage["trained"] == records["train"].outputs["trained"]

    # The gate decided, with its reason; the aliases moved accordingly.
    gate = records["gate"].outputs
    assert gate["reason"] and gate["tasks"] == 2
    promote = records["promote"].outputs
    assert promote["alias"] == (PRODUCTION if gate["promote"] else CANDIDATE)
    assert promote["reason"] == gate["reason"]
    if not gate["promote"]:
        assert "noise" in gate["reason"] or "worse" in gate["reason"] \
            or "less compliant" in gate["reason"]
    for ref in candidate.values():
        name, version = ref.rsplit(":v", 1)
        moved = registry.aliases.current(EntryKind.ADAPTER, name, promote["alias"])
        assert moved is not None and moved.version == int(version)
        if not gate["promote"]:
            assert registry.aliases.current(EntryKind.ADAPTER, name, PRODUCTION) is None

    # The scorecard: production before and the candidate on the test split; production after
    # only if it moved.
    assert demo.split == "test" and len(demo.tasks) == 2
    assert {t.id for t in load_pack("food_delivery").tasks_in("test")} >= set(demo.tasks)
    assert [r.label for r in demo.rows] == ["before", "candidate"] + (
        ["after"] if gate["promote"] else [])
    assert demo.rows[1].adapters == candidate and demo.rows[1].numbers["episodes"] == 2
    assert len(scorecard_lines(demo)) == len(demo.rows) + 1

    # A finished turn is not redone; a second loop on the same scenario is refused.
    assert loop.run_turn(1) == records and stages.calls[-1] == "candidate"
    lock = "registry/flywheel/food_delivery/lock.json"
    registry.storage.create_if_absent(lock, '{"host": "elsewhere", "pid": 1, "since": "now"}')
    try:
        with pytest.raises(FlywheelBusy):
            loop.run(turns=1)
    finally:  # the session's storage is shared: later loop tests must find no lock
        registry.storage.remove_file(lock)
