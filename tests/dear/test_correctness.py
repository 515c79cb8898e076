"""Silent divergences DeAR must not have: a parameter read without its module's forward,
ranks that start apart, a half-reduced gradient read through p.grad, and a bad argument that
fails only after the model was rebuilt around DeAR's buffers (tests/dear/scenarios_correctness.py)."""

from __future__ import annotations

import pytest

from . import scenarios_correctness as scenarios

TOLERANCE = 2e-6
pytestmark = pytest.mark.slow


@pytest.mark.parametrize("config", [{}, {"all_gather_lookahead": 1}, {"collective": "native"}])
def test_attention_reading_out_proj_directly_trains_like_ddp(gloo, config):
    for result in gloo(2).run(scenarios.attention_vs_ddp, "adamw", config):
        assert result["diff"] <= TOLERANCE, result
        assert result["moved"] > 100 * TOLERANCE and result["buckets"] > 4, result


def test_every_parameter_frozen_or_not_and_every_buffer_starts_as_rank_0s(gloo):
    for same in gloo(2).run(scenarios.broadcast_covers_frozen_parameters):
        assert same and all(same.values()), same
        assert "frozen.weight" in same and "norm.running_mean" in same


def test_bad_arguments_are_refused_before_the_model_is_touched(gloo):
    refused = gloo(2).run(scenarios.bad_arguments_are_refused_before_anything_moves)[0]
    assert "optimizer_factory" in refused["instance"], refused
    assert "optimizer_factory" in refused["returns_none"], refused
    assert "optimizer_factory" in refused["foreign"], refused
    assert "learning rate" in refused["raises"], refused
    assert "DeARConfig" in refused["config"], refused


def test_a_gradient_read_between_backward_and_step_is_refused_clearly(gloo):
    for outcome in gloo(2).run(scenarios.gradient_reads_between_backward_and_step):
        assert outcome["no_sync_readable"], outcome
        for read in ("clip_grad_norm_", "grad_norm", "grad_clone"):
            assert "model.clip_grad_norm_" in outcome[read], (read, outcome)
        assert outcome["trains_on"] and outcome["grad_after_close"], outcome


def test_batchnorm_buffers_follow_ddp(gloo):
    for result in gloo(2).run(scenarios.batchnorm_vs_ddp, "sgd", {}):
        assert result["diff"] <= TOLERANCE and result["buffer_diff"] <= TOLERANCE, result
    # Without the broadcast, rank 1 keeps statistics of its own data only.
    apart = gloo(2).run(scenarios.batchnorm_vs_ddp, "sgd", {"broadcast_buffers": False})
    assert apart[1]["buffer_diff"] > 1e-3, apart


def test_reduce_scatters_overlap_backward_and_all_gathers_overlap_the_next_forward(gloo):
    for result in gloo(2).run(scenarios.overlap_timeline):
        buckets, events = result["buckets"], result["events"]
        assert buckets >= 10, result
        iterations = [[]]
        for name in events:
            if name.startswith("forward_start") and iterations[-1]:
                iterations.append([])
            iterations[-1].append(name)
        assert len(iterations) == 4
        for number, names in enumerate(iterations):
            end = names.index("backward_end")
            # All but the last-completed bucket start while gradients are still arriving.
            assert names[:end].count("rs") >= buckets - 1, (number, names)
            if number == 0:
                continue  # no step before the first forward: nothing to gather
            in_flight = int(names[0].split()[1])
            waits_in_forward = names[:names.index("forward_end")].count("ag_wait")
            assert in_flight >= 1 and waits_in_forward >= buckets - 1, (number, names)


@pytest.mark.parametrize("net", ["reversed", "mixed"])
def test_buckets_follow_the_order_of_use_not_of_registration(gloo, net):
    """Half-way through backward, half the buckets are on their way (registration order: none
    for `reversed`, a third for `mixed`, whose float32 buckets queued behind float64 ones)."""
    for result in gloo(2).run(scenarios.reduce_scatters_by_mid_backward, net):
        assert result["diff"] <= 1e-6, result
        buckets = result["buckets"]
        assert buckets >= 12, result
        assert all(count >= 0.45 * buckets for count in result["launched_by_mid_backward"]), \
            result
