"""The performance model's arithmetic on a two-tensor case worked out by hand."""

from __future__ import annotations

import pytest

from benchmarks.comm import perfmodel as pm
from benchmarks.comm.shapes import parameter_count, survey_workload

# forward order: A (100 bytes) then B (300 bytes); backward meets B first (3 s), then A (1 s)
W = pm.Workload(name="hand", update_s=0.5, batch=1, tensors=[
    pm.Tensor(name="A", bytes=100, fwd_s=1.0, bwd_s=1.0),
    pm.Tensor(name="B", bytes=300, fwd_s=2.0, bwd_s=3.0)])
NET = pm.Network(name="hand", alpha=0.1, beta=0.01)  # all-reduce on 2: 0.2 + 0.01 m


def test_collective_costs():
    assert NET.allreduce(400, 2) == pytest.approx(0.2 + 4.0)
    assert NET.half(200, 2) == pytest.approx(0.1 + 1.0)
    assert NET.allreduce(400, 1) == 0.0
    net = pm.Network.from_allreduce_fit("fit", intercept=6e-3, slope=1.5e-8, p=4)
    assert (net.alpha, net.beta) == (pytest.approx(1e-3), pytest.approx(1e-8))
    assert pm.fit_line([1, 2, 3], [3, 5, 7]) == (pytest.approx(1.0), pytest.approx(2.0))


def test_schedulers_by_hand():
    # BSP: F 3 + B 4 + U 0.5 + all-reduce(400) 4.2
    assert pm.predict("bsp", W, NET, 2) == pytest.approx(11.7)
    # WFBP: B ready at 3, reduced 3-6.2; A ready at 4, reduced 6.2-7.4; 3 + 7.4 + 0.5
    assert pm.predict("wfbp", W, NET, 2) == pytest.approx(10.9)
    # DDP: both tensors fit DDP's 1 MB first bucket: one all-reduce once A is ready (4-8.2)
    assert pm.predict("ddp", W, NET, 2) == pytest.approx(11.7)
    # DeAR, 200-byte buckets [A, B] and [B]: all-gathers end at 1.1 and 2.2; A's forward
    # 1.1-2.1, B's 2.2-4.2; gradients B at 7.2, A at 8.2; reduce-scatters 7.2-8.3, 8.3-9.4;
    # then half the update (each rank steps its shard)
    assert pm.predict("dear", W, NET, 2, bucket_mb=200 / 2**20) == pytest.approx(9.65)
    # FSDP2, one unit: gather 2.1 before forward, reduce-scatter 4-6.1, then half the update
    assert pm.predict("fsdp2", W, NET, 2) == pytest.approx(3 + 2.1 + 6.1 + 0.25)
    assert pm.lower_bound(W, NET, 2) == pytest.approx(7.5)  # compute 7.5 > 400 * 0.01


def test_compute_slows_only_while_the_channel_is_busy():
    slowed = W.model_copy(update={"comm_slowdown": 2.0})
    # BSP never overlaps: unchanged
    assert pm.predict("bsp", slowed, NET, 2) == pytest.approx(11.7)
    # DeAR: A's forward starts at 1.1 at half speed until the gathers end at 2.2 (0.55 s of
    # work done), the rest by 2.65; B's 2.65-4.65; B's gradient at 7.65, reduce-scattered
    # 7.65-8.75 while A's backward runs at half speed until 8.75, the rest by 9.2; A's
    # bucket 9.2-10.3; half the update
    assert pm.predict("dear", slowed, NET, 2, bucket_mb=200 / 2**20) == pytest.approx(10.55)
    # WFBP on a fast link: B's all-reduce 3-3.3 slows A's backward for 0.3 s (ends 4.15),
    # A's all-reduce 4.15-4.25: 3 + 4.25 + 0.5
    fast = pm.Network(name="fast", alpha=0.0, beta=0.001)
    assert pm.predict("wfbp", W, fast, 2) == pytest.approx(3 + 4.1 + 0.5)
    assert pm.predict("wfbp", slowed, fast, 2) == pytest.approx(3 + 4.25 + 0.5)


def test_mgwfbp_merges_only_when_a_startup_is_saved():
    # startup 0.2: B's all-reduce starts at 3, more than 0.2 before A is ready at 4: no merge
    assert pm.mgwfbp_plan(W, NET, 2) == [[1], [0]]
    assert pm.predict("mgwfbp", W, NET, 2) == pytest.approx(10.9)
    # startup 2: waiting for A (ready at 4 < 3 + 2) and sending once is faster
    slow = pm.Network(name="slow", alpha=1.0, beta=0.01)
    assert pm.mgwfbp_plan(W, slow, 2) == [[1, 0]]
    assert pm.predict("mgwfbp", W, slow, 2) == pytest.approx(3 + (4 + 2 + 4) + 0.5)
    assert pm.predict("wfbp", W, slow, 2) == pytest.approx(3 + (3 + 5 + 3) + 0.5)


def test_survey_shapes_are_the_published_architectures():
    assert parameter_count("resnet50") == 25_557_032
    assert parameter_count("bert_base") == 109_482_240
    w = survey_workload("resnet50")
    assert w.fwd + w.bwd == pytest.approx(64 / 253.1)
    assert w.bwd == pytest.approx(2 * w.fwd)


def test_a_tuned_method_is_its_base_at_the_best_knob_of_the_grid():
    for method in ("ddp_tuned", "dear_tuned", "fsdp2_tuned", "mgwfbp_tuned"):
        grid = pm.knob_grid(method, W, NET, 2)
        assert len(grid) > 3
        best = min(pm.predict(method.removesuffix("_tuned"), W, NET, 2, **k) for k in grid)
        assert pm.predict(method, W, NET, 2) == pytest.approx(best)
    # the merge threshold: a large one merges everything into one message
    assert pm.mgwfbp_plan(W, NET, 2, merge_s=10.0) == [[1, 0]]


def test_fsdp2_units_merge_consecutive_blocks_up_to_the_unit_size():
    assert pm.group_by_size([3, 3, 3, 10, 1], 6) == [[0, 1], [2], [3], [4]]
    w = W.model_copy(update={"tensors": [*W.tensors, W.tensors[0]],
                             "fsdp_units": [[0], [1], [2]]})  # the root, two blocks
    assert pm.fsdp2_units(w) == [[0], [1], [2]]
    assert pm.fsdp2_units(w, unit_mb=1.0) == [[0], [1, 2]]  # 400 bytes fit in one MB
    # one unit fewer: one all-gather and one reduce-scatter startup fewer, which pays where
    # startups are dear; where they are cheap the merged unit's reduce-scatter waits longer
    costly = pm.Network(name="costly", alpha=2.0, beta=0.01)
    assert pm.predict("fsdp2", w, costly, 2, unit_mb=1.0) < pm.predict("fsdp2", w, costly, 2)
    assert pm.predict("fsdp2", w, NET, 2, unit_mb=1.0) > pm.predict("fsdp2", w, NET, 2)
