"""The rules that keep every step right: evaluation, checkpoints, no_sync, repeated steps,
re-bucketing and the tuner, the collectives themselves, and refused misuse."""

from __future__ import annotations

import pytest

from . import scenarios, scenarios_misc

TOLERANCE = 2e-6
pytestmark = pytest.mark.slow


@pytest.mark.parametrize("world, kind", [(2, "sgd"), (4, "adamw")])
def test_eval_state_dict_and_repeated_steps_follow_ddp_iteration_by_iteration(gloo, world, kind):
    for result in gloo(world).run(scenarios.lockstep, kind):
        assert result["eval_diff"] <= 10 * TOLERANCE, result  # outputs, not parameters
        assert result["state_diff"] <= TOLERANCE, result
        assert result["final"] <= TOLERANCE, result
        assert result["extra_steps"] == 0, result  # an update is applied exactly once
        assert result["steps"] == 8
        assert result["no_sync_deferred"], result


@pytest.mark.parametrize("world, kind, full", [(4, "adamw", False), (2, "sgd", True)])
def test_resuming_from_a_checkpoint_gives_the_uninterrupted_parameters(gloo, world, kind, full):
    for result in gloo(world).run(scenarios.checkpoint_resume, kind, full):
        assert result["identical"], result
        assert result["steps"] == 10
        assert result["bucket_size_mb"] == 0.004  # the saved layout is adopted


def test_a_full_checkpoint_moves_between_world_sizes(gloo, tmp_path):
    path = str(tmp_path / "full.pt")
    assert all(gloo(4).run(scenarios.save_full_state, path))
    for result in gloo(2).run(scenarios.reload_full_state, path):
        assert (result["saved_world"], result["world"]) == (4, 2)
        assert result["same_model"] and result["same_optimizer"], result
        assert result["keys"] == ["exp_avg", "exp_avg_sq"] and result["steps"] == 4


@pytest.mark.parametrize("world, kind", [(2, "adamw"), (4, "sgd")])
def test_rebucketing_and_tuning_keep_ddp_equivalence(gloo, world, kind):
    results = gloo(world).run(scenarios.rebucket_and_tune, kind)
    for result in results:
        assert result["by_hand"] <= TOLERANCE, result
        assert result["tuned"] <= TOLERANCE, result
        assert result["tuner_done"] and len(result["trials"]) == 3
        assert result["bucket_size_mb"] == result["chosen"]
    assert len({r["chosen"] for r in results}) == 1  # every rank took rank 0's choice
    logged = results[0]["logged"]  # rank 0 logs the choice, ready to reuse
    assert len(logged) == 1 and f"DeARConfig(bucket_size_mb={results[0]['chosen']:g})" in logged[0]
    assert all(not r["logged"] for r in results[1:])


@pytest.mark.parametrize("world", [2, 4])
def test_ring_and_native_collectives_match_all_reduce(gloo, world):
    cluster = gloo(world)
    # 1_600_001 float64 per chunk: three uneven pipelined pieces (collectives.PIECE_BYTES)
    assert all(cluster.run(scenarios_misc.collectives, [1, 3, 64, 1000, 1_600_001], "ring"))
    assert all(cluster.run(scenarios_misc.collectives, [1, 1000], "native"))
    if world == 4:  # three ranks: an odd ring, on a subgroup
        assert all(cluster.run(scenarios_misc.collectives, [5, 300], "ring", [0, 1, 2]))


def test_misuse_is_refused(gloo):
    for refused in gloo(2).run(scenarios_misc.misuse_is_refused):
        assert all(refused.values()), refused


def test_a_checkpoint_folder_resumes_exactly_and_leaves_the_frozen_base_out(gloo, tmp_path):
    for result in gloo(2).run(scenarios_misc.folder_checkpoint, str(tmp_path)):
        assert result["files"] == ["model.pt", "optimizer_rank0.pt", "optimizer_rank1.pt"]
        assert result["done"] == 3 and result["differ"] == [], result["differ"]
        assert result["saved"] == ["0.weight", "2.bias", "2.num_batches_tracked",
                                   "2.running_mean", "2.running_var", "2.weight", "3.weight"]


def test_evaluation_on_some_ranks_only_does_not_hang(gloo):
    assert all(gloo(2).run(scenarios_misc.evaluation_on_one_rank_only, timeout=60))
