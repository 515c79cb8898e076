"""Single-process tests: the tuner, the configuration and the flat layout."""

from __future__ import annotations

import math
import random

import pytest
import torch
from torch import nn

from wow_ray.dear import BucketSizeTuner, DeARConfig
from wow_ray.dear.layout import build_spaces, make_buckets, make_segments


def _tune(objective, trials: int = 10) -> BucketSizeTuner:
    tuner = BucketSizeTuner(trials=trials, warmup_iters=1, iters_per_trial=2)
    while not tuner.done:
        if tuner.record(objective(tuner.current_mb)):
            tuner.accept(tuner.finish_trial(tuner.trial_seconds))
    return tuner


def test_tuner_finds_the_fastest_bucket_size_despite_noise():
    rng = random.Random(0)
    # Iteration time with a minimum at 32 MB (log-quadratic), plus 1% noise.
    tuner = _tune(lambda mb: (1.0 + 0.05 * (math.log2(mb) - 5) ** 2) * rng.gauss(1, 0.01))
    assert len(tuner.observations) == 10
    assert 16 <= tuner.best_mb <= 64
    assert tuner.current_mb == tuner.best_mb


def test_tuner_stays_in_bounds_and_tries_new_sizes():
    tuner = _tune(lambda mb: 1.0 / mb, trials=6)  # bigger is always better here
    sizes = [size for size, _ in tuner.observations]
    assert all(1.0 <= s <= 256.0 for s in sizes)
    assert len(set(sizes)) == len(sizes)
    assert tuner.best_mb >= 128


def test_tuner_state_round_trips():
    tuner = _tune(lambda mb: abs(math.log2(mb) - 3) + 1, trials=4)
    again = BucketSizeTuner()
    again.load_state_dict(tuner.state_dict())
    assert again.done and again.best_mb == tuner.best_mb
    assert again.observations == tuner.observations


@pytest.mark.parametrize("field, value", [
    ("bucket_size_mb", 0), ("tune_bounds_mb", (8, 4)), ("tune_trials", 0),
    ("all_gather_lookahead", 0), ("collective", "mpi"), ("tune_warmup_iters", -1),
])
def test_config_rejects_invalid_values_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        DeARConfig(**{field: value})


def _tied_model() -> nn.Module:
    model = nn.Sequential(nn.Embedding(10, 6), nn.Linear(6, 30), nn.Linear(30, 10, bias=False))
    model[2].weight = nn.Parameter(torch.randn(10, 6))
    model[0].weight = model[2].weight  # tied: one parameter, two modules
    return model


@pytest.mark.parametrize("world", [1, 2, 3, 4])
def test_layout_covers_every_element_exactly_once_across_ranks(world):
    model = _tied_model()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    named = [(n, p, int(p.dim() == 1)) for n, p in model.named_parameters()]
    assert len(named) == 3  # the tied weight appears once
    slots, spaces = build_spaces(named, world)
    for name, param in model.named_parameters():
        assert torch.equal(param, before[name])  # values kept, storage now in the space
        assert param.data_ptr() >= spaces[0].params.data_ptr()
    buckets = make_buckets(slots, spaces, bucket_size_mb=0.0005, world=world)
    assert len(buckets) > 1 and all((b.stop - b.start) % world == 0 for b in buckets)
    assert any(len(s.buckets) > 1 for s in slots)  # some tensor spans buckets
    owned = torch.zeros(spaces[0].numel, dtype=torch.int64)
    for rank in range(world):
        for segment in make_segments(slots, spaces, buckets, world, rank):
            owned[segment.start:segment.stop] += 1
            groups = {s.group for s in slots
                      if s.offset < segment.stop and segment.start < s.offset + s.numel}
            assert groups == {segment.group}  # a segment never mixes optimizer groups
    assert torch.all(owned == 1)
