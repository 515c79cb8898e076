"""DeAR's training state: the complete model, the optimizer shard(s), and DeAR's own layout.

Two forms of the optimizer state:
- sharded (default): this rank's `optimizer.state_dict()`; each rank saves its own, nothing is
  communicated, and it loads back on the same rank of the same world size;
- full (`full_optimizer=True`): every rank's state assembled into flat tensors laid out like
  the model's parameters (a collective); it loads at any world size and bucket size.
In both, the saved bucket size is adopted on load, so a tuned size carries over.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import optimizer_state as ostate

if TYPE_CHECKING:
    from .synchronizer import DeAR


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
                 "tuner": dear._tuner.state_dict() if dear._tuner else None},
    }


def load_training_state(dear: DeAR, state: dict, strict: bool = True) -> None:
    """Restore `training_state()`'s result on every rank (a collective)."""
    meta = state["dear"]
    if not meta["full_optimizer"] and (meta["world_size"], meta["rank"]) != (
            dear.world_size, dear.rank):
        raise ValueError(
            f"this optimizer shard was saved by rank {meta['rank']} of {meta['world_size']}; "
            f"this is rank {dear.rank} of {dear.world_size}. Save with "
            "state_dict(full_optimizer=True) to change the world size")
    dear._quiesce()
    dear.module.load_state_dict(state["model"], strict=strict)
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
