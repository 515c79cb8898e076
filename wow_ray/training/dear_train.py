"""Ray Train glue for DeAR: wrap the model in a worker, checkpoint and resume through Ray Train.

Inside a `TorchTrainer` training function Ray Train has already initialised torch.distributed
(gloo on CPU workers, NCCL on GPU workers); DeAR picks its collectives from that backend.

    def train_loop(config):
        model = prepare_dear(build_model(), lambda groups: torch.optim.AdamW(groups, lr=1e-4))
        start = resume_dear(model, ray.train.get_checkpoint())
        for step in range(start, config["steps"]):
            loss = model(batch(step)).loss
            loss.backward()
            model.clip_grad_norm_(1.0)
            model.step()
            if step + 1 == config["checkpoint_at"]:
                report_dear(model, {"step": step + 1, "loss": loss.item()})
        model.flush()

A checkpoint is one folder, merged by Ray Train from every worker: `model.pt` (the complete
model, written by rank 0) and `optimizer_rank<r>.pt` (each rank's optimizer shard and DeAR's
layout), so saving costs each rank only its shard.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import ray.train
import ray.train.torch
import torch
from torch import nn

from wow_ray.dear import DeAR, DeARConfig
from wow_ray.dear.synchronizer import OptimizerFactory

MODEL_FILE = "model.pt"


def _shard_file(rank: int) -> str:
    return f"optimizer_rank{rank}.pt"


def prepare_dear(model: nn.Module, optimizer_factory: OptimizerFactory,
                 config: DeARConfig | None = None, **kwargs: object) -> DeAR:
    """Move `model` to this worker's device and wrap it in DeAR (a collective: every worker)."""
    model.to(ray.train.torch.get_device())
    return DeAR(model, optimizer_factory, config, **kwargs)


def report_dear(dear: DeAR, metrics: dict) -> None:
    """`ray.train.report` with a DeAR checkpoint; call it on every worker at the same step."""
    state = dear.state_dict()
    with tempfile.TemporaryDirectory() as folder:
        if dear.rank == 0:
            torch.save(state["model"], Path(folder) / MODEL_FILE)
        torch.save({"optimizer": state["optimizer"], "dear": state["dear"]},
                   Path(folder) / _shard_file(dear.rank))
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(folder))


def resume_dear(dear: DeAR, checkpoint: ray.train.Checkpoint | None) -> int:
    """Restore a checkpoint written by `report_dear` (if any); returns the steps already done."""
    if checkpoint is None:
        return 0
    device = dear._spaces[0].device
    with checkpoint.as_directory() as folder:
        model = torch.load(Path(folder) / MODEL_FILE, map_location=device)
        shard = torch.load(Path(folder) / _shard_file(dear.rank), map_location=device,
                           weights_only=False)
    dear.load_state_dict({"model": model, **shard})
    return dear.steps
