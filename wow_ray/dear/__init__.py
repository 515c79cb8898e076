"""DeAR: decoupled all-reduce for data-parallel training (arXiv 2302.12445), on torch.distributed.

    from wow_ray.dear import DeAR, DeARConfig
    model = DeAR(model, lambda groups: torch.optim.AdamW(groups, lr=3e-4), DeARConfig())
    loss = model(batch).loss; loss.backward(); model.clip_grad_norm_(1.0); model.step()
    model.save_checkpoint(folder)   # every rank; model.load_checkpoint(folder) resumes

Each all-reduce becomes a reduce-scatter overlapped with backward and an all-gather overlapped
with the next forward; each rank keeps optimizer state for its shard only (ZeRO-2). Knows only
torch (and numpy): no Ray here; the Ray Train glue lives in wow_ray.training.
"""

from .config import DeARConfig

# Imported on first use, so that configs embedding DeARConfig do not pay for importing torch.
_LAZY = {
    "BucketSizeTuner": ".tuner",
    "Communicator": ".collectives",
    "DeAR": ".synchroniser",
    "Handle": ".collectives",
    "ring_all_gather": ".collectives",
    "ring_reduce_scatter": ".collectives",
}


def __getattr__(name: str) -> object:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_LAZY[name], __name__), name)


__all__ = ["DeARConfig", *_LAZY]
