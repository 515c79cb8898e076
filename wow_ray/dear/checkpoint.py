"""DeAR's training state: the complete model, the optimizer shard(s), and DeAR's own layout.

Two forms of the optimizer state:
- sharded (default): this rank's `optimizer.state_dict()`; each rank saves its own, nothing is
  communicated, and it loads back on the same rank of the same world size;
- full (`full_optimizer=True`): every rank's state assembled into flat tensors laid out like
  the model's parameters (a collective); it loads at any world size and bucket size.
In both, the saved bucket size is adopted on load, so a tuned size carries over.

On disk (`save_folder`, `load_folder`: the one layout every caller uses, Ray Train's included)
a checkpoint is a folder: `model.pt`, written by rank 0, holds the model's state without its
frozen parameters (for LoRA, the adapter and the buffers: megabytes, not the frozen base,
which comes from the model as built), and `optimizer_rank<r>.pt`, written by every rank, its
optimizer shard and DeAR's layout. Several ranks' files can be merged into one folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from . import optimizer_state as ostate

if TYPE_CHECKING:
    from .synchroniser import DeAR


def training_state(dear: DeAR, full_optimizer: bool = False) -> dict:
    """{"model", "optimizer", "dear"} for `torch.save`; a collective if full_optimizer."""
    dear.flush()
    if full_optimizer:
        full = ostate.gather_full_state(dear.optimizer, dear._segments, dear._spaces,
                                        dear.process_group)
        optimizer = ostate.full_state_to_checkpoint(full, dear._spaces, dear.optimizer)
    else:
        optimizer = dear.optimizer.state_dict()
    return {
        "model": dear.module.state_dict(),
        "optimizer": optimizer,
        "dear": {"world_size": dear.world_size, "rank": dear.rank, "steps": dear.steps,
                 "bucket_size_mb": dear.bucket_size_mb, "full_optimizer": full_optimizer,
                 "use_order": dear.use_order,
                 "tuner": dear._tuner.state_dict() if dear._tuner else None},
    }


MODEL_FILE = "model.pt"


def optimizer_file(rank: int) -> str:
    return f"optimizer_rank{rank}.pt"


def model_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """`module.state_dict()` without its frozen parameters (tied names all kept)."""
    frozen = {id(p) for p in module.parameters() if not p.requires_grad}
    return {name: value for name, value in module.state_dict(keep_vars=True).items()
            if id(value) not in frozen}


def save_folder(dear: DeAR, folder: str | Path) -> None:
    """Write this rank's files of a checkpoint into `folder` (call on every rank)."""
    folder = Path(folder)
    state = training_state(dear)
    if dear.rank == 0:
        torch.save({k: v.detach() for k, v in model_state(dear.module).items()},
                   folder / MODEL_FILE)
    torch.save({"optimizer": state["optimizer"], "dear": state["dear"]},
               folder / optimizer_file(dear.rank))


def load_folder(dear: DeAR, folder: str | Path) -> int:
    """Restore what `save_folder` wrote (a collective); returns the optimizer steps done."""
    folder = Path(folder)
    model = torch.load(folder / MODEL_FILE, map_location=dear.device)
    shard = torch.load(folder / optimizer_file(dear.rank), map_location=dear.device,
                       weights_only=False)
    load_training_state(dear, {"model": model, **shard})
    return dear.steps


def _load_model(module: nn.Module, state: dict, strict: bool) -> None:
    """Load the model; frozen parameters may be missing (they are not training state)."""
    result = module.load_state_dict(state, strict=False)
    frozen = {name for name, p in module.named_parameters(remove_duplicate=False)
              if not p.requires_grad}
    missing = [k for k in result.missing_keys if k not in frozen]
    if strict and (missing or result.unexpected_keys):
        raise RuntimeError(f"the checkpoint does not fit the model: missing {missing}, "
                           f"unexpected {result.unexpected_keys}")


def load_training_state(dear: DeAR, state: dict, strict: bool = True) -> None:
    """Restore `training_state()`'s result on every rank (a collective); with `strict`, every
    key but the frozen parameters' must match."""
    meta = state["dear"]
    if not meta["full_optimizer"] and (meta["world_size"], meta["rank"]) != (
            dear.world_size, dear.rank):
        raise ValueError(
            f"this optimizer shard was saved by rank {meta['rank']} of {meta['world_size']}; "
            f"this is rank {dear.rank} of {dear.world_size}. Save with "
            "state_dict(full_optimizer=True) to change the world size")
    dear._quiesce()
    # The saved layout (older checkpoints: registration order), before the optimizer state.
    dear._adopt_use_order(meta.get("use_order") or list(range(len(dear._slots))))
    _load_model(dear.module, state["model"], strict)
    if meta["bucket_size_mb"] != dear.bucket_size_mb:
        dear.rebucket(meta["bucket_size_mb"])
    if meta["full_optimizer"]:
        saved = state["optimizer"]
        for group, options in zip(dear.optimizer.param_groups, saved["param_groups"],
                                  strict=True):
            group.update(options)
        ostate.scatter_full_state(dear.optimizer, dear._segments,
                                  ostate.full_state_from_checkpoint(saved, dear._spaces))
    else:
        dear.optimizer.load_state_dict(state["optimizer"])
    dear._steps = meta["steps"]
    if dear._tuner is not None and meta.get("tuner"):
        dear._tuner.load_state_dict(meta["tuner"])
