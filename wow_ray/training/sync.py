"""Synchronisers: how data-parallel workers agree on gradients. The loop asks for one and gets
DeAR (wow_ray.dear: sharded optimizer, reduce-scatter in backward, all-gather in forward) or
PyTorch DDP (through Ray Train's ``prepare_model``), behind the same small surface.

Checkpoints hold the trainable parameters only (for LoRA, the adapter: megabytes, not the
frozen base), the optimizer state (DeAR: one shard file per rank; DDP: one file) and are
loaded back on every worker after a restart.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Protocol

import torch
from torch import nn

from wow_ray.training.config import FinetuneConfig

MODEL_FILE = "trainable.pt"


def no_decay(name: str, param: nn.Parameter) -> dict:
    """Norm weights and biases get no weight decay (the usual AdamW practice)."""
    return {"weight_decay": 0.0} if param.dim() < 2 else {}


def _adamw(config: FinetuneConfig):
    return lambda groups: torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)


def trainable_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """Copies of the trainable parameters, by state-dict name."""
    return {n: p.detach().clone() for n, p in module.named_parameters() if p.requires_grad}


class Synchroniser(Protocol):
    model: nn.Module  # call this for training forwards
    module: nn.Module  # the plain model underneath
    optimizer: torch.optim.Optimizer

    def no_sync(self) -> contextlib.AbstractContextManager: ...
    def clip_grad_norm_(self, max_norm: float) -> torch.Tensor: ...
    def step(self) -> None: ...
    def save(self, folder: Path, rank: int) -> None: ...
    def load(self, folder: Path, rank: int) -> None: ...
    def close(self) -> None: ...


class DeARSync:
    """DeAR: each rank keeps and steps only its shard of the optimizer state."""

    def __init__(self, model: nn.Module, config: FinetuneConfig) -> None:
        from wow_ray.dear import DeARConfig
        from wow_ray.training.dear_train import prepare_dear

        dear_config = DeARConfig(bucket_size_mb=config.dear.bucket_size_mb,
                                 tune_bucket_size=config.dear.tune_bucket_size)
        self.dear = prepare_dear(model, _adamw(config), dear_config, param_group_fn=no_decay)
        self.model, self.module, self.optimizer = self.dear, model, self.dear.optimizer

    def no_sync(self) -> contextlib.AbstractContextManager:
        return self.dear.no_sync()

    def clip_grad_norm_(self, max_norm: float) -> torch.Tensor:
        return self.dear.clip_grad_norm_(max_norm)

    def step(self) -> None:
        self.dear.step()

    def save(self, folder: Path, rank: int) -> None:
        state = self.dear.state_dict()  # flushes pending all-gathers first
        if rank == 0:
            torch.save(trainable_state(self.module), folder / MODEL_FILE)
        torch.save({"optimizer": state["optimizer"], "dear": state["dear"]},
                   folder / f"optimizer_rank{rank}.pt")

    def load(self, folder: Path, rank: int) -> None:
        device = next(self.module.parameters()).device
        model = torch.load(folder / MODEL_FILE, map_location=device)
        shard = torch.load(folder / f"optimizer_rank{rank}.pt", map_location=device,
                           weights_only=False)
        self.dear.load_state_dict({"model": model, **shard}, strict=False)

    def close(self) -> None:
        self.dear.close()


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

    def no_sync(self) -> contextlib.AbstractContextManager:
        # One worker: Ray Train returns the bare model, which has nothing to synchronise.
        return getattr(self.model, "no_sync", contextlib.nullcontext)()

    def clip_grad_norm_(self, max_norm: float) -> torch.Tensor:
        return torch.nn.utils.clip_grad_norm_(self._params, max_norm)

    def step(self) -> None:
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def save(self, folder: Path, rank: int) -> None:
        if rank == 0:  # every rank holds the same model and optimizer state
            torch.save(trainable_state(self.module), folder / MODEL_FILE)
            torch.save(self.optimizer.state_dict(), folder / "optimizer.pt")

    def load(self, folder: Path, rank: int) -> None:
        device = next(self.module.parameters()).device
        self.module.load_state_dict(torch.load(folder / MODEL_FILE, map_location=device),
                                    strict=False)
        self.optimizer.load_state_dict(torch.load(folder / "optimizer.pt", map_location=device))

    def close(self) -> None:
        pass


def make_synchroniser(model: nn.Module, config: FinetuneConfig) -> Synchroniser:
    """The synchroniser the config names, wrapping ``model`` (a collective: every worker)."""
    if config.synchroniser == "dear":
        return DeARSync(model, config)
    return DDPSync(model, config)
