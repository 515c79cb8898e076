"""Synchronisers: how data-parallel workers agree on gradients. The loop asks for one and gets
DeAR itself (wow_ray.dear: sharded optimizer, reduce-scatter in backward, all-gather in forward)
or PyTorch DDP (through Ray Train's ``prepare_model``) behind the same small surface.

Checkpoints have one layout (wow_ray.dear.checkpoint): ``model.pt`` holds the model without its
frozen parameters (for LoRA, the adapter: megabytes, not the frozen base), written by rank 0;
the optimizer state is DeAR's shard per rank (``optimizer_rank<r>.pt``) or DDP's one
``optimizer.pt``. Every worker loads it back after a restart.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Protocol

import torch
import torch.distributed as dist
from torch import nn

from wow_ray.dear.checkpoint import MODEL_FILE, model_state
from wow_ray.training.config import FinetuneConfig

DDP_OPTIMIZER_FILE = "optimizer.pt"


def no_decay(name: str, param: nn.Parameter) -> dict:
    """Norm weights and biases get no weight decay (the usual AdamW practice)."""
    return {"weight_decay": 0.0} if param.dim() < 2 else {}


def _adamw(config: FinetuneConfig):
    return lambda groups: torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)


class Synchroniser(Protocol):
    """What the loop uses. `wow_ray.dear.DeAR` is one as it is; DDPSync adapts DDP."""

    module: nn.Module  # the plain model underneath
    optimizer: torch.optim.Optimizer

    def __call__(self, *args: object, **kwargs: object) -> object: ...  # a training forward
    def no_sync(self) -> contextlib.AbstractContextManager: ...
    def clip_grad_norm_(self, max_norm: float) -> torch.Tensor: ...
    def step(self) -> None: ...
    def save_checkpoint(self, folder: str | Path) -> None: ...  # this worker's files
    def load_checkpoint(self, folder: str | Path) -> int: ...
    def close(self) -> None: ...


class DDPSync:
    """PyTorch DistributedDataParallel, as Ray Train prepares it (gloo on CPU, NCCL on GPU)."""

    def __init__(self, model: nn.Module, config: FinetuneConfig) -> None:
        import ray.train.torch

        self.model = ray.train.torch.prepare_model(model, parallel_strategy="ddp")
        self.module = getattr(self.model, "module", self.model)
        decay, flat = [], []
        for name, p in self.module.named_parameters():
            if p.requires_grad:
                (flat if no_decay(name, p) else decay).append(p)
        groups = [{"params": decay}, {"params": flat, "weight_decay": 0.0}]
        self.optimizer = _adamw(config)([g for g in groups if g["params"]])
        self._params = [p for g in self.optimizer.param_groups for p in g["params"]]
        self._rank = dist.get_rank() if dist.is_initialized() else 0

    def __call__(self, *args: object, **kwargs: object) -> object:
        return self.model(*args, **kwargs)

    def no_sync(self) -> contextlib.AbstractContextManager:
        # One worker: Ray Train returns the bare model, which has nothing to synchronise.
        return getattr(self.model, "no_sync", contextlib.nullcontext)()

    def clip_grad_norm_(self, max_norm: float) -> torch.Tensor:
        return torch.nn.utils.clip_grad_norm_(self._params, max_norm)

    def step(self) -> None:
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def save_checkpoint(self, folder: str | Path) -> None:
        if self._rank == 0:  # every rank holds the same model and optimizer state
            torch.save({k: v.detach() for k, v in model_state(self.module).items()},
                       Path(folder) / MODEL_FILE)
            torch.save(self.optimizer.state_dict(), Path(folder) / DDP_OPTIMIZER_FILE)

    def load_checkpoint(self, folder: str | Path) -> int:
        device = next(self.module.parameters()).device
        self.module.load_state_dict(torch.load(Path(folder) / MODEL_FILE, map_location=device),
                                    strict=False)
        self.optimizer.load_state_dict(
            torch.load(Path(folder) / DDP_OPTIMIZER_FILE, map_location=device))
        return 0  # the loop keeps the position (trainer_state.json)

    def close(self) -> None:
        pass


def make_synchroniser(model: nn.Module, config: FinetuneConfig) -> Synchroniser:
    """The synchroniser the config names, wrapping ``model`` (a collective: every worker)."""
    if config.synchroniser == "dear":
        from wow_ray.dear import DeAR

        return DeAR(model, _adamw(config), config.dear, param_group_fn=no_decay)
    return DDPSync(model, config)
