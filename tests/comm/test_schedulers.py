"""Every scheduler of the comparison trains exactly like plain single-process training: two
gloo ranks (loopback) with half a batch each end, after two SGD-momentum steps, with the
parameters of one process that trained on the whole batch."""

from __future__ import annotations

import pytest
import torch

from benchmarks.comm.models import ModelSpec, build_model, loss_fn, make_batches
from benchmarks.comm.schedulers import METHODS
from tests.dear.cluster import GlooCluster

SPEC = ModelSpec(name="gpt", width=32, layers=2, vocab=64, seq_len=8, batch=2)
STEPS = 2


def _optimizer(params):
    return torch.optim.SGD(params, lr=0.1, momentum=0.9)


def _train_rank(method: str, unit_mb: float | None = None) -> dict[str, torch.Tensor]:
    import torch.distributed as dist

    from benchmarks.comm.schedulers import build_scheduler

    rank = dist.get_rank()
    model = build_model(SPEC)
    n = len(list(model.parameters()))
    groups = [list(range(n - 1, n // 2 - 1, -1)), list(range(n // 2 - 1, -1, -1))]
    sched = build_scheduler(method, model, _optimizer, bucket_mb=0.01, mg_groups=groups,
                            unit_mb=unit_mb,
                            tune={"tune_trials": 2, "tune_warmup_iters": 0,
                                  "tune_iters_per_trial": 1, "tune_bounds_mb": (0.01, 0.1)})
    for step in range(STEPS):
        x, y = make_batches(SPEC, rank, count=STEPS)[step]
        loss_fn(sched.module(x), y).backward()
        sched.step()
    sched.close()
    out = {}
    for name, p in model.named_parameters():
        full = p.full_tensor() if hasattr(p, "full_tensor") else p  # FSDP2's DTensors
        out[name] = full.detach().clone()
    return out


def _reference() -> dict[str, torch.Tensor]:
    model = build_model(SPEC)
    opt = _optimizer(list(model.parameters()))
    for step in range(STEPS):
        parts = [make_batches(SPEC, rank, count=STEPS)[step] for rank in range(2)]
        x = torch.cat([p[0] for p in parts])
        y = torch.cat([p[1] for p in parts])
        loss_fn(model(x), y).backward()
        opt.step()
        opt.zero_grad()
    return {name: p.detach().clone() for name, p in model.named_parameters()}


@pytest.fixture(scope="module")
def two_ranks():
    cluster = GlooCluster(2)
    yield cluster
    cluster.close()


@pytest.mark.parametrize(("method", "unit_mb"), [(m, None) for m in METHODS]
                         + [("fsdp2_tuned", 1.0)])  # both blocks in one FSDP2 unit
def test_scheduler_matches_single_process_training(two_ranks, method, unit_mb):
    reference = _reference()
    start = dict(build_model(SPEC).named_parameters())
    results = two_ranks.run(_train_rank, method, unit_mb, timeout=120)
    for rank_params in results:
        assert rank_params.keys() == reference.keys()
        for name, expected in reference.items():
            torch.testing.assert_close(rank_params[name], expected, rtol=1e-5, atol=1e-6,
                                       msg=f"{method}: {name}")
    assert any(not torch.equal(start[n], reference[n]) for n in reference)  # it trained
