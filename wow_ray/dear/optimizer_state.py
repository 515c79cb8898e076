"""The sharded optimizer's state: moving it between layouts, and sparing unused parameters.

Each rank's optimizer holds state only for its segments. Two operations need the state of
every rank in one piece:
- re-bucketing (the tuner changes the bucket size, so chunk ownership moves between ranks);
- a world-size-independent ("full") checkpoint.
Both go through the *full flat state*: for every element-wise state tensor (momentum, Adam's
moments: same shape as the segment) one tensor per space, laid out exactly like the flat
parameter buffer, assembled by an all-reduce of zero-filled buffers in which each rank wrote its
own segments (exact: every element has one non-zero contribution). Per-tensor scalars (Adam's
`step`) are the same on every segment, because all segments step together, and are copied.
Optimizers whose state has other shapes (factored second moments, say) are refused here.
"""

from __future__ import annotations

from collections import defaultdict

import torch
import torch.distributed as dist
from torch.optim import Optimizer

from .layout import FlatSpace, ParamSlot, Segment


def _is_elementwise(value: object, segment: Segment) -> bool:
    return torch.is_tensor(value) and value.shape == segment.tensor.shape


def _is_scalar(value: object) -> bool:
    return value is None or isinstance(value, bool | int | float) or (
        torch.is_tensor(value) and value.dim() == 0)


def gather_full_state(optimizer: Optimizer, segments: list[Segment], spaces: list[FlatSpace],
                      group: dist.ProcessGroup) -> dict:
    """Every rank's optimizer state as full flat tensors, on every rank (a collective)."""
    local: dict[str, list[torch.Tensor]] = {}
    scalars: dict[str, object] = {}
    for segment in segments:
        for key, value in optimizer.state.get(segment.tensor, {}).items():
            if _is_elementwise(value, segment):
                if key not in local:
                    local[key] = [torch.zeros_like(space.params, dtype=value.dtype)
                                  for space in spaces]
                local[key][segment.space][segment.start:segment.stop].copy_(value)
            elif _is_scalar(value):
                scalars.setdefault(key, value.detach().cpu() if torch.is_tensor(value) else value)
            else:
                raise NotImplementedError(
                    f"optimizer state {key!r} of shape {tuple(value.shape)} is not element-wise; "
                    "DeAR can only re-shard element-wise optimizer state")
    # Ranks whose shard is empty have no state: agree on keys and scalars first.
    described = ({key: tensors[0].dtype for key, tensors in local.items()}, scalars)
    everyone: list = [None] * dist.get_world_size(group)
    dist.all_gather_object(everyone, described, group=group)
    keys: dict[str, torch.dtype] = {}
    merged_scalars: dict[str, object] = {}
    for rank_keys, rank_scalars in everyone:
        keys.update(rank_keys)
        for key, value in rank_scalars.items():
            merged_scalars.setdefault(key, value)
    tensors = {}
    for key in sorted(keys):
        full = local.get(key) or [torch.zeros_like(space.params, dtype=keys[key])
                                  for space in spaces]
        for tensor in full:
            dist.all_reduce(tensor, group=group)
        tensors[key] = full
    return {"tensors": tensors, "scalars": merged_scalars}


def scatter_full_state(optimizer: Optimizer, segments: list[Segment], full: dict) -> None:
    """Replace the optimizer's state by this rank's segments' share of a full flat state."""
    state: defaultdict = defaultdict(dict)
    if full["tensors"] or full["scalars"]:
        for segment in segments:
            entry = {}
            for key, value in full["scalars"].items():
                entry[key] = value.clone() if torch.is_tensor(value) else value
            for key, per_space in full["tensors"].items():
                entry[key] = per_space[segment.space][segment.start:segment.stop].clone().to(
                    segment.tensor.device)
            state[segment.tensor] = entry
    optimizer.state = state


def use_segments(optimizer: Optimizer, segments: list[Segment]) -> None:
    """Point the optimizer's groups at a new set of segments (group dicts stay the same objects,
    so learning-rate schedulers keep working)."""
    for index, group in enumerate(optimizer.param_groups):
        group["params"] = [s.tensor for s in segments if s.group == index]


def full_state_to_checkpoint(full: dict, spaces: list[FlatSpace],
                             optimizer: Optimizer) -> dict:
    """A world-size-independent optimizer checkpoint: full state cut to the real parameters."""
    return {
        "format": "dear-full-v1",
        "tensors": {key: [t[:space.numel].cpu() for t, space in zip(per, spaces, strict=True)]
                    for key, per in full["tensors"].items()},
        "scalars": full["scalars"],
        "param_groups": [{k: v for k, v in g.items() if k != "params"}
                         for g in optimizer.param_groups],
    }


def full_state_from_checkpoint(saved: dict, spaces: list[FlatSpace]) -> dict:
    """Inverse of `full_state_to_checkpoint` for this run's (possibly differently padded) spaces."""
    tensors = {}
    for key, per in saved["tensors"].items():
        tensors[key] = []
        for tensor, space in zip(per, spaces, strict=True):
            if tensor.numel() != space.numel:
                raise ValueError(f"checkpoint state {key!r} has {tensor.numel()} elements, "
                                 f"the model {space.numel}: not the same model")
            padded = torch.zeros_like(space.params, dtype=tensor.dtype)
            padded[:space.numel].copy_(tensor)
            tensors[key].append(padded)
    return {"tensors": tensors, "scalars": saved["scalars"]}


class UnusedGuard:
    """Undo the optimizer's update of parameters no rank used this iteration.

    DDP leaves such a parameter's gradient None and torch optimizers then skip it; a flat
    shard cannot skip part of itself, so the parameter values and element-wise state in those
    ranges are saved before the step and put back after it. (Per-tensor counters such as
    Adam's `step` still advance: a parameter that is unused only sometimes gets Adam's bias
    correction of its shard, not its own.)
    """

    def __init__(self, optimizer: Optimizer, segments: list[Segment], slots: list[ParamSlot],
                 unused: list[int]) -> None:
        self._optimizer = optimizer
        self._saved: list[tuple[Segment, torch.Tensor, torch.Tensor, dict]] = []
        for segment in segments:
            mask = torch.zeros(segment.stop - segment.start, dtype=torch.bool,
                               device=segment.tensor.device)
            for index in unused:
                slot = slots[index]
                lo = max(slot.offset, segment.start) - segment.start
                hi = min(slot.offset + slot.numel, segment.stop) - segment.start
                if lo < hi:
                    mask[lo:hi] = True
            if mask.any():
                state = optimizer.state.get(segment.tensor, {})
                saved = {k: v[mask].clone() for k, v in state.items()
                         if _is_elementwise(v, segment)}
                self._saved.append((segment, mask, segment.tensor.detach()[mask].clone(), saved))

    def restore(self) -> None:
        with torch.no_grad():
            for segment, mask, param, saved in self._saved:
                segment.tensor[mask] = param
                for key, value in self._optimizer.state.get(segment.tensor, {}).items():
                    if _is_elementwise(value, segment):
                        # State this very step created (a first update) starts from zero.
                        value[mask] = saved.get(key, 0)
