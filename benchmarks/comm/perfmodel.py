"""A performance model of one training iteration for each scheduler, on P workers.

Inputs, all measured or derived from known shapes:
- a `Workload`: the trainable tensors in forward order, each with its size, the forward time
  spent from its module's start to the next tensor's module's start, and the backward time
  from the previous gradient (in backward order) to its own; plus the optimizer step's time;
- a `Network`: the alpha-beta model of one link, `alpha` per message and step, `beta` seconds
  per byte, so a ring all-reduce of m bytes on P workers costs 2(P-1)alpha + 2(P-1)/P m beta,
  and a ring reduce-scatter or all-gather half of that (Thakur et al.; the survey's eq. 2).

Each scheduler is a small timeline simulation with one communication channel (collectives
run one after another, FIFO, as gloo's and NCCL's queues do) and one compute stream:

- bsp: F + B + allreduce(M) + U.
- wfbp / mgwfbp / ddp: messages (tensors, merged groups, buckets) become ready in backward
  order and are all-reduced back to back; the iteration ends when backward and the last
  message are done, plus U. ddp's buckets: 1 MB first, then `bucket_mb`, in backward order.
- fsdp2 (parameters kept after forward): each unit's all-gather precedes its forward (no
  prefetch on CPU), reduce-scatters run during backward, each rank steps 1/P of the model;
  `native_factor` scales torch's own reduce-scatter/all-gather (gloo's cost about twice a ring
  half, docs/design.md; NCCL's 1).
- ddp_tuned, mgwfbp_tuned, fsdp2_tuned, dear_tuned: the best of the method's knob over the
  same grid (bucket or unit bytes: `tuning_grid`; MG-WFBP's merge threshold: `merge_grid`),
  as the harness tunes each of them with the same search.
- dear: in steady state the iteration starts at the previous step's end, when all buckets'
  all-gathers are queued in forward order; a tensor's forward waits for its bucket; buckets
  are reduce-scattered, last first, as their gradients complete; the step (1/P of the model)
  follows the last reduce-scatter.

Compute that runs while the channel is busy is stretched by the workload's `comm_slowdown`
(measured on CPU, where communication takes cycles from the compute; 1 for GPUs).

The lower bound is max(F + B + U, 2(P-1)/P M / bandwidth): compute alone, or the bytes of one
ring all-reduce at the link's bandwidth.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, Field

FIRST_BUCKET_MB = 1.0  # DDP's first bucket (torch.distributed._DEFAULT_FIRST_BUCKET_BYTES)


class Tensor(BaseModel):
    name: str
    bytes: int
    fwd_s: float = Field(0.0, description="forward time attributed to this tensor")
    bwd_s: float = Field(0.0, description="backward time from the previous gradient to this one")


class Workload(BaseModel):
    """Tensors in forward order (backward visits them in reverse) and the optimizer step."""

    name: str
    tensors: list[Tensor]
    update_s: float = Field(0.0, description="optimizer step over the whole model")
    comm_slowdown: float = Field(1.0, ge=1.0, description="compute runs this many times "
                                 "slower while communication is in flight (CPU: measured)")
    batch: int = Field(1, description="samples per worker per iteration")
    fsdp_units: list[list[int]] = Field(default_factory=list,
                                        description="tensor indices per FSDP unit, forward order")

    @property
    def fwd(self) -> float:
        return sum(t.fwd_s for t in self.tensors)

    @property
    def bwd(self) -> float:
        return sum(t.bwd_s for t in self.tensors)

    @property
    def model_bytes(self) -> int:
        return sum(t.bytes for t in self.tensors)

    @property
    def compute(self) -> float:
        return self.fwd + self.bwd + self.update_s


class Network(BaseModel):
    name: str
    alpha: float = Field(description="seconds per message per ring step (latency, startup)")
    beta: float = Field(description="seconds per byte on one link (1 / bandwidth)")
    native_factor: float = Field(1.0, description="torch's native reduce-scatter/all-gather "
                                 "cost relative to a ring half (gloo ~2, NCCL 1)")

    def allreduce(self, nbytes: float, p: int) -> float:
        if p <= 1:
            return 0.0
        return 2 * (p - 1) * self.alpha + 2 * (p - 1) / p * nbytes * self.beta

    def half(self, nbytes: float, p: int) -> float:
        """A ring reduce-scatter or all-gather."""
        return self.allreduce(nbytes, p) / 2

    @classmethod
    def from_allreduce_fit(cls, name: str, intercept: float, slope: float, p: int,
                           native_factor: float = 1.0) -> Network:
        """From a fit t(m) = intercept + slope * m of all-reduce times measured on P ranks."""
        return cls(name=name, alpha=max(intercept, 0.0) / (2 * (p - 1)),
                   beta=slope * p / (2 * (p - 1)), native_factor=native_factor)


def fit_line(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least-squares (intercept, slope)."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    return my - slope * mx, slope


def _ready_times(w: Workload) -> list[float]:
    """Seconds after backward starts at which each tensor's gradient exists (forward order),
    with no communication in flight."""
    ready, clock = [0.0] * len(w.tensors), 0.0
    for i in reversed(range(len(w.tensors))):
        clock += w.tensors[i].bwd_s
        ready[i] = clock
    return ready


def _compute(clock: float, seconds: float, busy_until: float, slowdown: float) -> float:
    """When `seconds` of compute started at `clock` end, if it runs `slowdown` times slower
    while the channel is busy (until `busy_until`)."""
    if busy_until <= clock:
        return clock + seconds
    slow = busy_until - clock
    if seconds * slowdown <= slow:
        return clock + seconds * slowdown
    return busy_until + seconds - slow / slowdown


def _backward(w: Workload, messages: list[tuple[list[int], float]], clock: float = 0.0,
              free: float = 0.0) -> tuple[float, float]:
    """Backward from `clock`, the channel busy until `free`: each message (tensor indices,
    seconds; in launch order) is sent, FIFO, once all its gradients exist; compute is slowed
    while the channel is busy. Returns (backward's end, the last message's end)."""
    pending = [(set(g), seconds) for g, seconds in messages]
    done: set[int] = set()
    for i in reversed(range(len(w.tensors))):
        clock = _compute(clock, w.tensors[i].bwd_s, free, w.comm_slowdown)
        done.add(i)
        while pending and pending[0][0] <= done:
            free = max(free, clock) + pending.pop(0)[1]
    for _, duration in pending:  # groups of tensors the backward never reached
        free = max(free, clock) + duration
    return clock, free


def _overlapped(w: Workload, groups: list[list[int]], cost) -> float:
    """Backward with `groups` (launch order) all-reduced as they complete, then the step."""
    end, last = _backward(w, [(g, cost(sum(w.tensors[i].bytes for i in g))) for g in groups])
    return w.fwd + max(end, last) + w.update_s


def backward_order(w: Workload) -> list[int]:
    return list(reversed(range(len(w.tensors))))


def mgwfbp_groups(ready: list[float], sizes: list[float], a: float, b: float) -> list[list[int]]:
    """MG-WFBP's merge rule (Shi et al., INFOCOM 2019) for messages costing a + b*m, given in
    the order their gradients arrive: merge the next tensor into the current group when the
    current group's all-reduce could not start at least `a` before that tensor is ready, since
    then waiting for it and paying one startup is never slower. Returns positions in `ready`."""
    groups: list[list[int]] = [[0]] if ready else []
    free = 0.0  # when the channel is done with the groups already closed
    for i in range(1, len(ready)):
        current = groups[-1]
        start = max(ready[current[-1]], free)
        if start + a > ready[i]:
            current.append(i)
        else:
            free = start + a + b * sum(sizes[j] for j in current)
            groups.append([i])
    return groups


def _cut(w: Workload, bucket_bytes: float) -> list[list[int]]:
    """DeAR's buckets: contiguous byte ranges of the flat parameter buffer (forward order);
    a tensor belongs to every bucket it overlaps."""
    count = max(1, math.ceil(w.model_bytes / bucket_bytes))
    buckets: list[list[int]] = [[] for _ in range(count)]
    offset = 0
    for i, t in enumerate(w.tensors):
        first = int(offset // bucket_bytes)
        last = int(max(offset, offset + t.bytes - 1) // bucket_bytes)
        for k in range(first, min(last, count - 1) + 1):
            buckets[k].append(i)
        offset += t.bytes
    return [b for b in buckets if b]


def _ddp_buckets(w: Workload, bucket_mb: float) -> list[list[int]]:
    buckets: list[list[int]] = [[]]
    limit, filled = FIRST_BUCKET_MB * 2**20, 0.0
    for i in backward_order(w):
        if buckets[-1] and filled + w.tensors[i].bytes > limit:
            buckets.append([])
            limit, filled = bucket_mb * 2**20, 0.0
        buckets[-1].append(i)
        filled += w.tensors[i].bytes
    return buckets


def predict(method: str, w: Workload, net: Network, p: int, bucket_mb: float = 25.0,
            mg_groups: list[list[int]] | None = None, merge_s: float | None = None,
            unit_mb: float | None = None) -> float:
    """Seconds per iteration of `method` (schedulers.METHODS) on `p` workers. The knobs:
    `bucket_mb` (ddp, dear), `mg_groups` or `merge_s` (mgwfbp), `unit_mb` (fsdp2); a
    `*_tuned` method is its base method at the best knob of the grid."""
    if method.endswith("_tuned"):
        return min(predict(method[:-len("_tuned")], w, net, p, **knob)
                   for knob in knob_grid(method, w, net, p))
    if method == "bsp":
        return w.compute + net.allreduce(w.model_bytes, p)
    if method == "wfbp":
        return _overlapped(w, [[i] for i in backward_order(w)], lambda m: net.allreduce(m, p))
    if method == "mgwfbp":
        groups = mg_groups if mg_groups is not None else mgwfbp_plan(w, net, p, merge_s)
        return _overlapped(w, groups, lambda m: net.allreduce(m, p))
    if method == "ddp":
        return _overlapped(w, _ddp_buckets(w, bucket_mb), lambda m: net.allreduce(m, p))
    if method == "fsdp2":
        return _fsdp2(w, net, p, unit_mb)
    if method == "dear":
        return _dear(w, net, p, bucket_mb)
    raise ValueError(f"unknown method {method!r}")


def knob_grid(method: str, w: Workload, net: Network, p: int) -> list[dict]:
    """The knob values the model tries for a tuned method, as keyword arguments of predict."""
    if method in ("ddp_tuned", "dear_tuned"):
        return [{"bucket_mb": mb} for mb in tuning_grid(w)]
    if method == "fsdp2_tuned":
        return [{"unit_mb": mb} for mb in tuning_grid(w)]
    if method == "mgwfbp_tuned":
        return [{"merge_s": s} for s in merge_grid(w, net, p)]
    raise ValueError(f"no knob for {method!r}")


def mgwfbp_plan(w: Workload, net: Network, p: int,
                merge_s: float | None = None) -> list[list[int]]:
    """MG-WFBP's groups as tensor indices, from the workload's gradient-ready times. The
    merge threshold `merge_s` is the rule's startup cost (default: the link's, as in the
    paper); a larger one merges more."""
    order = backward_order(w)
    ready = _ready_times(w)
    a = net.allreduce(0, p)
    b = net.allreduce(1, p) - a
    groups = mgwfbp_groups([ready[i] for i in order], [w.tensors[i].bytes for i in order],
                           a if merge_s is None else merge_s, b)
    return [[order[j] for j in g] for g in groups]


def merge_bounds_s(w: Workload) -> tuple[float, float]:
    """The range MG-WFBP's merge threshold is searched in: from 10 us (almost no merging)
    to the whole backward (everything in one message)."""
    return 1e-5, max(2e-5, w.bwd)


def merge_grid(w: Workload, net: Network, p: int) -> list[float]:
    """Merge thresholds (seconds) the model considers: the link's startup and powers of two
    over merge_bounds_s."""
    low, high = merge_bounds_s(w)
    grid, s = [net.allreduce(0, p)], low
    while s < 2 * high:
        grid.append(s)
        s *= 2
    return sorted(set(grid))


def group_by_size(sizes: list[int], limit_bytes: float) -> list[list[int]]:
    """Consecutive positions grouped so that a group exceeds `limit_bytes` only when one
    item alone does (FSDP2's units of several blocks)."""
    groups: list[list[int]] = []
    filled = 0.0
    for i, size in enumerate(sizes):
        if groups and filled + size <= limit_bytes:
            groups[-1].append(i)
            filled += size
        else:
            groups.append([i])
            filled = size
    return groups


def tuning_grid(w: Workload) -> list[float]:
    """Bucket sizes (MB) the model considers for dear_tuned: powers of two up to the model."""
    top = max(1.0, w.model_bytes / 2**20)
    grid, mb = [25.0], 0.25
    while mb < 2 * top:
        grid.append(mb)
        mb *= 2
    return sorted(set(grid))


def best_dear_bucket(w: Workload, net: Network, p: int) -> float:
    return min(tuning_grid(w), key=lambda mb: _dear(w, net, p, mb))


def _dear(w: Workload, net: Network, p: int, bucket_mb: float) -> float:
    bucket_bytes = bucket_mb * 2**20
    buckets = _cut(w, bucket_bytes)
    size = [min(bucket_bytes, w.model_bytes - k * bucket_bytes) for k in range(len(buckets))]
    # the all-gathers queued at the previous step's end, in forward order
    ag_end, clock = [], 0.0
    for s in size:
        clock += net.half(s, p)
        ag_end.append(clock)
    bucket_of: dict[int, int] = {}
    for k in reversed(range(len(buckets))):  # a tensor split over buckets needs all of them
        for i in buckets[k]:
            bucket_of.setdefault(i, k)
    t = 0.0
    for i, tensor in enumerate(w.tensors):
        t = _compute(max(t, ag_end[bucket_of[i]]), tensor.fwd_s, ag_end[-1], w.comm_slowdown)
    # reduce-scatters, last bucket first, each once all its gradients exist (a bucket's
    # bytes, not its tensors': a tensor may straddle two buckets)
    rs = [(buckets[k], net.half(size[k], p)) for k in reversed(range(len(buckets)))]
    end, last = _backward(w, rs, clock=t, free=ag_end[-1])
    return max(end, last) + w.update_s / p


def fsdp2_units(w: Workload, unit_mb: float | None = None) -> list[list[int]]:
    """The workload's FSDP units (the root's first), blocks merged into units of up to
    `unit_mb` (None: one block per unit)."""
    units = w.fsdp_units or [list(range(len(w.tensors)))]
    if unit_mb is None or len(units) < 3:
        return units
    blocks = units[1:]
    sizes = [sum(w.tensors[i].bytes for i in u) for u in blocks]
    return [units[0]] + [[i for b in g for i in blocks[b]]
                         for g in group_by_size(sizes, unit_mb * 2**20)]


def _fsdp2(w: Workload, net: Network, p: int, unit_mb: float | None = None) -> float:
    units = fsdp2_units(w, unit_mb)
    gathers = sum(net.native_factor * net.half(sum(w.tensors[i].bytes for i in u), p)
                  for u in units)
    end, last = _backward(w, [(u, net.native_factor * net.half(
        sum(w.tensors[i].bytes for i in u), p)) for u in reversed(units)])
    return w.fwd + gathers + max(end, last) + w.update_s / p


def lower_bound(w: Workload, net: Network, p: int) -> float:
    """max(compute, the bytes of one ring all-reduce at the link's bandwidth)."""
    if p <= 1:
        return w.compute
    return max(w.compute, 2 * (p - 1) / p * w.model_bytes * net.beta)
