"""The communication schedulers compared, behind one small interface.

Each wraps a freshly built model and an optimizer factory; the training loop is the same for
all of them (`sched.module(x)`, `loss.backward()`, `sched.step()`), so they differ only in how
and when gradients travel:

- `bsp`: backward, then one all-reduce of all gradients fused into one buffer, then the step
  (bulk synchronous, no overlap).
- `wfbp`: wait-free backpropagation: each tensor's all-reduce starts (async) as soon as its
  gradient exists, overlapping the rest of backward.
- `mgwfbp`: WFBP with merged gradients: consecutive tensors are fused into groups chosen by
  the alpha-beta model (`perfmodel.mgwfbp_groups`), so startup costs are paid once per group.
- `ddp`: PyTorch DistributedDataParallel, 25 MB buckets (its default), gradients as views
  of the buckets (`gradient_as_bucket_view`, zeroed rather than freed after each step, so
  no copy), buffers broadcast only when the model has buffers.
- `fsdp2`: `torch.distributed.fsdp.fully_shard` per block and at the root, parameters kept
  after forward (`reshard_after_forward=False`: the ZeRO-2-like setting closest to DeAR).
  With `unit_mb`, consecutive blocks share one unit of up to that many MB (FSDP2's only
  fusion knob: what one `fully_shard` call holds).
- `dear`, `dear_tuned`: wow_ray.dear.DeAR with a fixed bucket size, and with the bucket size
  tuned online by Bayesian optimisation (the harness runs the tuning before timing).
- `ddp_tuned`, `mgwfbp_tuned`, `fsdp2_tuned`: the same schedulers with their fusion knob
  (`KNOBS`) chosen by the same Bayesian search DeAR uses (wow_ray.dear.BucketSizeTuner, the
  same trials and iterations per trial; the harness rebuilds the scheduler per trial), so
  DeAR is compared with tuned baselines, not with defaults.

BSP, WFBP and MG-WFBP are written here (about 30 lines each) because torch has no
implementation of them; they use gloo's own asynchronous all-reduce.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import torch
import torch.distributed as dist
from torch import nn
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

from wow_ray.dear import DeAR, DeARConfig

from .models import fsdp_units
from .perfmodel import group_by_size

METHODS = ("bsp", "wfbp", "mgwfbp", "mgwfbp_tuned", "ddp", "ddp_tuned", "fsdp2",
           "fsdp2_tuned", "dear", "dear_tuned")
# The knob each tuned method searches: build_scheduler's keyword for it.
KNOBS = {"mgwfbp_tuned": "merge_s", "ddp_tuned": "bucket_mb", "fsdp2_tuned": "unit_mb",
         "dear_tuned": "bucket_mb"}
OptimizerFactory = Callable[[list], torch.optim.Optimizer]


class Scheduler:
    """`module` runs forward; `step()` after backward synchronises and updates; `close()`."""

    name = "base"

    def __init__(self, module: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        self.module = module
        self.optimizer = optimizer

    def step(self) -> None:
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def close(self) -> None:
        """Complete anything in flight (untimed) and release hooks and threads."""


class _Manual(Scheduler):
    """Shared by BSP/WFBP/MG-WFBP: rank 0's parameters at start, averaging, the update."""

    def __init__(self, module: nn.Module, make_optimizer: OptimizerFactory) -> None:
        self.params = [p for p in module.parameters() if p.requires_grad]
        with torch.no_grad():
            for p in self.params:
                dist.broadcast(p, src=0)
        super().__init__(module, make_optimizer(self.params))
        self.world = dist.get_world_size()

    def _update(self) -> None:
        for p in self.params:
            if p.grad is not None:
                p.grad.div_(self.world)
        super().step()


class BSP(_Manual):
    name = "bsp"

    def step(self) -> None:
        grads = [p.grad for p in self.params if p.grad is not None]
        flat = _flatten_dense_tensors(grads)
        dist.all_reduce(flat)
        for grad, reduced in zip(grads, _unflatten_dense_tensors(flat, grads), strict=True):
            grad.copy_(reduced)
        self._update()


class WFBP(_Manual):
    name = "wfbp"

    def __init__(self, module: nn.Module, make_optimizer: OptimizerFactory) -> None:
        super().__init__(module, make_optimizer)
        self._works: list[dist.Work] = []
        self._hooks = [p.register_post_accumulate_grad_hook(self._ready) for p in self.params]

    def _ready(self, param: torch.Tensor) -> None:
        self._works.append(dist.all_reduce(param.grad, async_op=True))

    def step(self) -> None:
        for work in self._works:
            work.wait()
        self._works = []
        self._update()

    def close(self) -> None:
        for hook in self._hooks:
            hook.remove()


class MGWFBP(_Manual):
    """`groups`: indices into the trainable parameters, in the order their gradients arrive;
    a group is all-reduced as one buffer once all its gradients exist, groups in order."""

    name = "mgwfbp"

    def __init__(self, module: nn.Module, make_optimizer: OptimizerFactory,
                 groups: list[list[int]]) -> None:
        super().__init__(module, make_optimizer)
        if sorted(i for g in groups for i in g) != list(range(len(self.params))):
            raise ValueError("MG-WFBP groups must cover every trainable parameter once")
        self.groups = groups
        self._group_of = {i: g for g, members in enumerate(groups) for i in members}
        self._hooks = [p.register_post_accumulate_grad_hook(lambda p, i=i: self._ready(i))
                       for i, p in enumerate(self.params)]
        self._reset()

    def _reset(self) -> None:
        self._remaining = [len(g) for g in self.groups]
        self._next = 0
        self._inflight: list[tuple[list[int], torch.Tensor, dist.Work]] = []

    def _ready(self, index: int) -> None:
        self._remaining[self._group_of[index]] -= 1
        while self._next < len(self.groups) and self._remaining[self._next] == 0:
            members = self.groups[self._next]
            flat = _flatten_dense_tensors([self.params[i].grad for i in members])
            self._inflight.append((members, flat, dist.all_reduce(flat, async_op=True)))
            self._next += 1

    def step(self) -> None:
        for members, flat, work in self._inflight:
            work.wait()
            grads = [self.params[i].grad for i in members]
            for grad, reduced in zip(grads, _unflatten_dense_tensors(flat, grads), strict=True):
                grad.copy_(reduced)
        self._reset()
        self._update()

    def close(self) -> None:
        for hook in self._hooks:
            hook.remove()


class DDPScheduler(Scheduler):
    name = "ddp"

    def __init__(self, module: nn.Module, make_optimizer: OptimizerFactory,
                 bucket_mb: float = 25.0) -> None:
        has_buffers = any(True for _ in module.buffers())
        # torch 2.13 renamed broadcast_buffers (still accepted, with a warning)
        sync = ("forward_sync_buffers" if "forward_sync_buffers" in
                inspect.signature(nn.parallel.DistributedDataParallel).parameters
                else "broadcast_buffers")
        ddp = nn.parallel.DistributedDataParallel(
            module, bucket_cap_mb=bucket_mb, gradient_as_bucket_view=True,
            **{sync: has_buffers})
        super().__init__(ddp, make_optimizer(list(ddp.parameters())))

    def step(self) -> None:
        self.optimizer.step()
        # keep the gradients as views of DDP's buckets: freeing them would cost a copy
        self.optimizer.zero_grad(set_to_none=False)


class FSDP2Scheduler(Scheduler):
    name = "fsdp2"

    def __init__(self, module: nn.Module, make_optimizer: OptimizerFactory,
                 unit_mb: float | None = None) -> None:
        from torch.distributed.fsdp import fully_shard

        blocks = fsdp_units(module)
        sizes = [sum(p.numel() * p.element_size() for p in b.parameters()) for b in blocks]
        groups = ([[i] for i in range(len(blocks))] if unit_mb is None
                  else group_by_size(sizes, unit_mb * 2**20))
        for group in groups:
            units = [blocks[i] for i in group]
            fully_shard(units[0] if len(units) == 1 else units, reshard_after_forward=False)
        fully_shard(module, reshard_after_forward=False)
        super().__init__(module, make_optimizer(list(module.parameters())))


class DeARScheduler(Scheduler):
    name = "dear"

    def __init__(self, module: nn.Module, make_optimizer: OptimizerFactory,
                 config: DeARConfig) -> None:
        self.dear = DeAR(module, make_optimizer, config)
        super().__init__(self.dear, self.dear.optimizer)

    def step(self) -> None:
        self.dear.step()  # DeAR clears its own gradient buffers

    def close(self) -> None:
        self.dear.close(unflatten=False)


class Local(Scheduler):
    """No communication at all: the compute-alone baseline of the lower bound."""

    name = "local"


def build_scheduler(method: str, module: nn.Module, make_optimizer: OptimizerFactory, *,
                    bucket_mb: float = 25.0, mg_groups: list[list[int]] | None = None,
                    unit_mb: float | None = None, tune: dict | None = None) -> Scheduler:
    """`method` (one of METHODS) around `module`. `mg_groups` is needed for mgwfbp (and
    mgwfbp_tuned: its merge threshold acts through the groups the caller plans with it);
    `bucket_mb` is DDP's and DeAR's knob, `unit_mb` FSDP2's; `tune` holds DeARConfig's
    tuning fields for dear_tuned."""
    if method == "local":
        return Local(module, make_optimizer(list(module.parameters())))
    if method == "bsp":
        return BSP(module, make_optimizer)
    if method == "wfbp":
        return WFBP(module, make_optimizer)
    if method in ("mgwfbp", "mgwfbp_tuned"):
        if mg_groups is None:
            raise ValueError("mgwfbp needs mg_groups (perfmodel.mgwfbp_groups)")
        return MGWFBP(module, make_optimizer, mg_groups)
    if method in ("ddp", "ddp_tuned"):
        return DDPScheduler(module, make_optimizer, bucket_mb)
    if method in ("fsdp2", "fsdp2_tuned"):
        return FSDP2Scheduler(module, make_optimizer, unit_mb)
    if method == "dear":
        return DeARScheduler(module, make_optimizer, DeARConfig(bucket_size_mb=bucket_mb))
    if method == "dear_tuned":
        sched = DeARScheduler(module, make_optimizer,
                              DeARConfig(bucket_size_mb=bucket_mb, tune_bucket_size=True,
                                         **(tune or {})))
        sched.name = "dear_tuned"
        return sched
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")
