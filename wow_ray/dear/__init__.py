"""DeAR: decoupled all-reduce for data-parallel training (arXiv 2302.12445), on torch.distributed.

    from wow_ray.dear import DeAR, DeARConfig
    model = DeAR(model, lambda groups: torch.optim.AdamW(groups, lr=3e-4), DeARConfig())
    loss = model(batch).loss; loss.backward(); model.clip_grad_norm_(1.0); model.step()

Each all-reduce becomes a reduce-scatter overlapped with backward and an all-gather overlapped
with the next forward; each rank keeps optimizer state for its shard only (ZeRO-2). Knows only
torch (and numpy): no Ray here; the Ray Train glue lives in wow_ray.training.
"""

from .collectives import Communicator, Handle, ring_all_gather, ring_reduce_scatter
from .config import DeARConfig
from .synchronizer import DeAR
from .tuner import BucketSizeTuner

__all__ = [
    "BucketSizeTuner",
    "Communicator",
    "DeAR",
    "DeARConfig",
    "Handle",
    "ring_all_gather",
    "ring_reduce_scatter",
]
