"""Where DeAR keeps parameters, gradients and optimizer shards: flat buffers cut into buckets.

Every trainable parameter (deduplicated by identity, so tied weights appear once) is moved into
a flat buffer of its dtype and device: a *space*. The parameter becomes a view of that buffer,
and its `.grad` a view of a second flat buffer of the same shape, so autograd accumulates
gradients straight into the buffer that is communicated (no copy into buckets, as DDP's
`gradient_as_bucket_view`). A space is then cut into *buckets*: contiguous ranges whose length
is a multiple of the world size, in parameter order (which approximates forward order), so a
bucket may split a tensor, and a tensor may span buckets.

Rank r owns chunk r of every bucket. Its optimizer steps *segments*: the parts of its chunks
that hold parameters, split where the optimizer group changes. A segment is a leaf tensor
aliasing the parameter buffer, so any `torch.optim` optimizer updates the model in place and
keeps state only for this rank's shard (as ZeRO-2). Re-bucketing (the tuner) only changes the
bucket ranges; parameters never move again.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

ALIGN = 64  # elements: chunk boundaries fall on 256-byte multiples for fp32, as GPUs like


@dataclass(eq=False)
class ParamSlot:
    """One trainable parameter's place in its space."""

    index: int
    name: str
    param: nn.Parameter
    space: int
    offset: int
    numel: int
    group: int
    grad_view: torch.Tensor | None = None
    buckets: list[int] = field(default_factory=list)


@dataclass(eq=False)
class FlatSpace:
    """Flat parameter and gradient buffers for one (dtype, device), padded so that any bucket
    cut at multiples of world * ALIGN fits; `shard_grads` holds this rank's reduced chunks."""

    dtype: torch.dtype
    device: torch.device
    numel: int
    params: torch.Tensor
    grads: torch.Tensor
    shard_grads: torch.Tensor


@dataclass(eq=False)
class Bucket:
    """A range [start, stop) of one space, reduce-scattered and all-gathered as one."""

    index: int
    space: int
    start: int
    stop: int
    params: list[int]

    def chunk_range(self, world: int, rank: int) -> tuple[int, int]:
        size = (self.stop - self.start) // world
        return self.start + rank * size, self.start + (rank + 1) * size


@dataclass(eq=False)
class Segment:
    """One optimizer tensor: the part of this rank's chunk of a bucket in one optimizer group."""

    bucket: int
    space: int
    group: int
    start: int
    stop: int
    tensor: nn.Parameter
    grad: torch.Tensor


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def build_spaces(named_params: list[tuple[str, nn.Parameter, int]],
                 world: int) -> tuple[list[ParamSlot], list[FlatSpace]]:
    """Move each (name, parameter, optimizer group) into the flat buffer of its dtype/device."""
    slots, spaces = allocate_spaces(named_params, world)
    attach_spaces(slots, spaces)
    return slots, spaces


def allocate_spaces(named_params: list[tuple[str, nn.Parameter, int]],
                    world: int) -> tuple[list[ParamSlot], list[FlatSpace]]:
    """The flat buffers, holding copies of the parameters' values; the parameters themselves
    are not touched yet (`attach_spaces` does that), so a failure before then leaves the
    model as it was."""
    keys: list[tuple[torch.dtype, torch.device]] = []
    sizes: list[int] = []
    slots = []
    for index, (name, param, group) in enumerate(named_params):
        if param.layout != torch.strided:
            raise ValueError(f"DeAR supports dense parameters only; {name} is {param.layout}")
        key = (param.dtype, param.device)
        if key not in keys:
            keys.append(key)
            sizes.append(0)
        space = keys.index(key)
        slots.append(ParamSlot(index, name, param, space, sizes[space], param.numel(), group))
        sizes[space] += param.numel()
    spaces = []
    for (dtype, device), numel in zip(keys, sizes, strict=True):
        padded = _round_up(max(numel, 1), world * ALIGN)
        spaces.append(FlatSpace(
            dtype, device, numel,
            params=torch.zeros(padded, dtype=dtype, device=device),
            grads=torch.zeros(padded, dtype=dtype, device=device),
            shard_grads=torch.zeros(padded // world, dtype=dtype, device=device),
        ))
    with torch.no_grad():
        for slot in slots:
            space = spaces[slot.space]
            space.params[slot.offset:slot.offset + slot.numel].copy_(
                slot.param.detach().reshape(-1))
            slot.grad_view = space.grads[slot.offset:slot.offset + slot.numel].view_as(slot.param)
    return slots, spaces


def attach_spaces(slots: list[ParamSlot], spaces: list[FlatSpace]) -> None:
    """Make every parameter a view of its space, and its `.grad` a view of the gradients."""
    for slot in slots:
        flat = spaces[slot.space].params[slot.offset:slot.offset + slot.numel]
        slot.param.data = flat.view_as(slot.param)
        slot.param.grad = slot.grad_view


def bucket_numel(bucket_size_mb: float, dtype: torch.dtype, world: int) -> int:
    """Elements per bucket for a size in MB, rounded up to whole aligned chunks."""
    element = torch.empty((), dtype=dtype).element_size()
    return _round_up(max(1, int(bucket_size_mb * 2**20 / element)), world * ALIGN)


def make_buckets(slots: list[ParamSlot], spaces: list[FlatSpace], bucket_size_mb: float,
                 world: int, use_position: list[int] | None = None) -> list[Bucket]:
    """Cut every space into buckets of about `bucket_size_mb`; record each parameter's buckets.
    Buckets are numbered in the order their parameters are first used (`use_position[slot]`,
    registration order by default), across spaces: all-gathers go in that order, and
    reduce-scatters in reverse, as the gradients arrive."""
    ranges: list[tuple[int, int, int]] = []
    for space_index, space in enumerate(spaces):
        step = bucket_numel(bucket_size_mb, space.dtype, world)
        total = space.params.numel()
        ranges += [(space_index, start, min(start + step, total))
                   for start in range(0, total, step)]
    members: dict[tuple[int, int, int], list[int]] = {r: [] for r in ranges}
    for slot in sorted(slots, key=lambda s: s.offset):
        for r in ranges:
            if r[0] == slot.space and r[1] < slot.offset + slot.numel and slot.offset < r[2]:
                members[r].append(slot.index)
    position = use_position or list(range(len(slots)))
    ranges.sort(key=lambda r: min((position[i] for i in members[r]), default=len(position)))
    buckets = [Bucket(index, *r, members[r]) for index, r in enumerate(ranges)]
    for slot in slots:
        slot.buckets = [b.index for b in buckets if slot.index in b.params]
    return buckets


def relayout_spaces(slots: list[ParamSlot], spaces: list[FlatSpace], order: list[int]) -> bool:
    """Place the parameters in each space in `order` (slot indices), values kept, gradients
    (which must be zero) too; False if that is the layout already. Re-attach afterwards."""
    sizes = [0] * len(spaces)
    offsets = {}
    for index in order:
        slot = slots[index]
        offsets[index] = sizes[slot.space]
        sizes[slot.space] += slot.numel
    if all(offsets[s.index] == s.offset for s in slots):
        return False
    fresh = [torch.zeros_like(space.params) for space in spaces]
    with torch.no_grad():
        for slot in slots:
            old = spaces[slot.space].params[slot.offset:slot.offset + slot.numel]
            fresh[slot.space][offsets[slot.index]:offsets[slot.index] + slot.numel].copy_(old)
            slot.offset = offsets[slot.index]
            slot.grad_view = spaces[slot.space].grads[
                slot.offset:slot.offset + slot.numel].view_as(slot.param)
    for space, params in zip(spaces, fresh, strict=True):
        space.params = params
    return True


def make_segments(slots: list[ParamSlot], spaces: list[FlatSpace], buckets: list[Bucket],
                  world: int, rank: int) -> list[Segment]:
    """This rank's optimizer tensors: its chunk of each bucket, cut at optimizer-group changes."""
    segments: list[Segment] = []
    for bucket in buckets:
        lo, hi = bucket.chunk_range(world, rank)
        runs: list[list[int]] = []  # [start, stop, group]
        for index in bucket.params:
            slot = slots[index]
            start, stop = max(lo, slot.offset), min(hi, slot.offset + slot.numel)
            if start >= stop:
                continue
            if runs and runs[-1][1] == start and runs[-1][2] == slot.group:
                runs[-1][1] = stop
            else:
                runs.append([start, stop, slot.group])
        space = spaces[bucket.space]
        for start, stop, group in runs:
            tensor = nn.Parameter(space.params[start:stop], requires_grad=True)
            shard_start = start - lo + bucket.start // world  # chunk r of bucket b, packed
            grad = space.shard_grads[shard_start:shard_start + stop - start]
            segments.append(Segment(bucket.index, bucket.space, group, start, stop, tensor, grad))
    return segments


def shard_grad_chunk(space: FlatSpace, bucket: Bucket, world: int) -> torch.Tensor:
    """This rank's reduced-gradient chunk of `bucket` inside `space.shard_grads`."""
    size = (bucket.stop - bucket.start) // world
    start = bucket.start // world
    return space.shard_grads[start:start + size]
