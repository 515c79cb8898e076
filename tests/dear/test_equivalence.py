"""DeAR against PyTorch DDP: same seeds, data and optimizer on real gloo ranks, the parameters
must agree within fp32 round-off after many steps (tests/dear/scenarios.py has the runs)."""

from __future__ import annotations

import pytest

from . import scenarios

# Summation order differs between gloo's all-reduce and the ring; a few ulps per step.
TOLERANCE = 2e-6

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("world", [2, 4])
@pytest.mark.parametrize("kind", ["sgd", "adamw"])
def test_dear_trains_like_ddp(gloo, world, kind):
    cluster = gloo(world)
    runs = {
        # tied embedding/output weights, an unused layer, tensors split across buckets
        "tied_unused": dict(steps=16),
        # gradient accumulation through no_sync() and global-norm clipping
        "accumulation_clipping": dict(steps=10, accum=3, clip=0.5),
    }
    if kind == "sgd":  # a layer used only every third forward (see UnusedGuard for AdamW)
        runs["sometimes_used"] = dict(steps=10, accum=2, clip=0.5, model_kw={"sometimes": True})
    for name, kwargs in runs.items():
        results = cluster.run(scenarios.ddp_vs_dear, kind,
                              config={"find_unused_parameters": True}, **kwargs)
        for rank, result in enumerate(results):
            assert result["diff"] <= TOLERANCE, (name, rank, result)
            assert result["moved"] > 100 * TOLERANCE, (name, result)  # training did something
            assert result["steps"] == kwargs["steps"]
            assert result["buckets"] > 1 and result["split_params"] > 0
            assert result["unused_untouched"], (name, result)
            assert result["plain_after_close"], result  # own storage again, same values


def test_without_find_unused_an_unused_layer_is_stepped_with_zero_gradient(gloo):
    """The documented difference: AdamW's decoupled weight decay still moves it."""
    result = gloo(2).run(scenarios.ddp_vs_dear, "adamw", steps=4)[0]
    assert not result["unused_untouched"]


@pytest.mark.parametrize("world", [2, 4])
def test_native_collectives_and_bounded_lookahead_train_like_ddp(gloo, world):
    config = {"find_unused_parameters": True, "collective": "native", "all_gather_lookahead": 1}
    for result in gloo(world).run(scenarios.ddp_vs_dear, "adamw", steps=8, clip=0.5,
                                  config=config):
        assert result["diff"] <= TOLERANCE, result


@pytest.mark.parametrize("checkpointing, find_unused", [("reentrant", False),
                                                        ("non_reentrant", True)])
def test_activation_checkpointing_trains_like_ddp(gloo, checkpointing, find_unused):
    """Reentrant checkpointing runs nested backward passes inside the outer one."""
    model_kw = {"checkpointing": checkpointing, "with_unused": False}
    for result in gloo(2).run(scenarios.ddp_vs_dear, "sgd", steps=6, accum=2,
                              model_kw=model_kw,
                              config={"find_unused_parameters": find_unused}):
        assert result["diff"] <= TOLERANCE, result
