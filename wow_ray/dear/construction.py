"""What DeAR checks and agrees on while it is built: the parameter groups the optimizer gets,
that the optimizer is built over exactly them, and rank 0's weights on every rank."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.distributed as dist
from torch import nn
from torch.optim import Optimizer

from .collectives import broadcast_coalesced
from .config import DeARConfig
from .layout import FlatSpace, Segment
from .tuner import BucketSizeTuner


def trainable_parameters(module: nn.Module, param_group_fn: Callable | None,
                         ) -> tuple[list[tuple[str, nn.Parameter, int]], list[dict]]:
    """The trainable parameters as (name, parameter, group index), and each group's options
    (`param_group_fn(name, parameter)`; equal options share a group)."""
    options_of_groups: list[dict] = []

    def group_of(name: str, param: nn.Parameter) -> int:
        options = dict(param_group_fn(name, param)) if param_group_fn is not None else {}
        if options not in options_of_groups:
            options_of_groups.append(options)
        return options_of_groups.index(options)

    named = [(name, p, group_of(name, p)) for name, p in module.named_parameters()
             if p.requires_grad]
    return named, options_of_groups


def broadcast_from_rank0(spaces: Sequence[FlatSpace], frozen: Sequence[nn.Parameter],
                         module: nn.Module, process_group: dist.ProcessGroup) -> None:
    """Every rank starts from rank 0's parameters (frozen ones too) and buffers, as DDP."""
    with torch.no_grad():
        for space in spaces:
            dist.broadcast(space.params, group=process_group, group_src=0)
        broadcast_coalesced([*frozen, *module.buffers()], process_group)


def check_optimizer(optimizer: object, segments: Sequence[Segment], n_groups: int) -> None:
    """The factory's optimizer is a torch one over exactly the groups it was given, in order."""
    if not isinstance(optimizer, Optimizer):
        raise TypeError("optimizer_factory must return a torch.optim.Optimizer, got "
                        f"{type(optimizer).__name__}")
    ours = [[id(s.tensor) for s in segments if s.group == g] for g in range(n_groups)]
    theirs = [[id(p) for p in group["params"]] for group in optimizer.param_groups]
    if ours != theirs:
        raise ValueError("optimizer_factory must build the optimizer over exactly the "
                         "parameter groups it is given, in the same order")


def make_tuner(config: DeARConfig) -> BucketSizeTuner:
    return BucketSizeTuner(config.tune_bounds_mb, config.tune_trials, config.tune_warmup_iters,
                           config.tune_iters_per_trial, initial_mb=config.bucket_size_mb)
