"""The Ray side: the simulator actor pool, and the continuous evaluator noticing a new version."""

from __future__ import annotations

import pytest

from wow_ray.registry import EntryKind, Registry


def test_the_actor_pool_plays_tasks_x_trials(ray_session):
    from evaluators.pool import PoolConfig, run_pool

    jobs = [("fd-009", 0), ("fd-009", 1), ("fd-018", 0)]
    results = run_pool(PoolConfig(model="none"), jobs, actors=2, progress=False)
    assert [(s.task_id, s.trial) for s, _ in results] == [("fd-009", 0), ("fd-009", 1), ("fd-018", 0)]
    assert all(d.simulated and d.schema_version == 2 for _, d in results)


def test_the_continuous_evaluator_reports_on_a_new_version(ray_session, tmp_path):
    import ray

    from evaluators.continuous import ContinuousConfig, ContinuousEvaluator

    registry = Registry(str(tmp_path / "store"))
    folder = tmp_path / "adapter"
    folder.mkdir()
    (folder / "adapter_config.json").write_text("{}")
    adapter = registry.register(EntryKind.ADAPTER, "food-delivery-response", folder, source="test",
                                base_model="smollm2-135m:v1")
    config = ContinuousConfig(storage_path=str(tmp_path / "store"), split="dev", llm_url=None)
    actor = ContinuousEvaluator.remote(config.model_dump())
    made = ray.get(actor.tick.remote(), timeout=300)
    assert len(made) == 1
    report = registry.entries(EntryKind.REPORT)[0]
    assert report.lineage["judged"] == f"adapter:{adapter.ref}" and report.metadata["success"] is not None
    assert ray.get(actor.tick.remote(), timeout=60) == []  # judged once
    ray.kill(actor)


pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def test_an_actor_killed_mid_split_is_restarted_and_its_episode_played_again(ray_session):
    """A simulator actor's process dies (as on a lost node) while it plays: Ray restarts it,
    the episode is played again, and the report holds every (task, trial) once."""
    import os
    import signal

    from ray._private.state import actors as actor_table

    from evaluators.pool import PoolConfig, run_pool

    killed: list[int] = []

    def kill_one_actor(done: int, total: int) -> None:
        if done == 3 and not killed:
            alive = [a for a in actor_table().values() if a["ActorClassName"] == "SimulatorActor"
                     and a["State"] == "ALIVE"]
            killed.append(alive[0]["Pid"])
            os.kill(killed[0], signal.SIGKILL)

    jobs = [(task, trial) for trial in range(6) for task in ("fd-009", "fd-018", "fd-004")]
    replayed: list[tuple[str, int, str]] = []
    results = run_pool(PoolConfig(model="none"), jobs, actors=2, progress=False,
                       on_done=kill_one_actor,
                       on_replayed=lambda *episode: replayed.append(episode))
    assert killed
    assert [(s.task_id, s.trial) for s, _ in results] == jobs
    assert all(d.transcript.turns for _, d in results)
    # the killed actor held an episode (each actor always holds one while the queue lasts)
    assert 1 <= len(replayed) <= 2 and {(t, k) for t, k, _ in replayed} <= set(jobs)

