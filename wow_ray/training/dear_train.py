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

A checkpoint is one folder, merged by Ray Train from every worker, in DeAR's one layout
(`DeAR.save_checkpoint`, wow_ray/dear/checkpoint.py): `model.pt` (the model without its frozen
parameters, written by rank 0) and `optimizer_rank<r>.pt` (each rank's optimizer shard and
DeAR's layout), so saving costs each rank only its shard.
"""

from __future__ import annotations

import tempfile

import ray.train
import ray.train.torch
from torch import nn

from wow_ray.dear import DeAR, DeARConfig
from wow_ray.dear.synchroniser import OptimizerFactory


def prepare_dear(model: nn.Module, optimizer_factory: OptimizerFactory,
                 config: DeARConfig | None = None, **kwargs: object) -> DeAR:
    """Move `model` to this worker's device and wrap it in DeAR (a collective: every worker)."""
    model.to(ray.train.torch.get_device())
    return DeAR(model, optimizer_factory, config, **kwargs)


def report_dear(dear: DeAR, metrics: dict) -> None:
    """`ray.train.report` with a DeAR checkpoint; call it on every worker at the same step."""
    with tempfile.TemporaryDirectory() as folder:
        dear.save_checkpoint(folder)
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(folder))


def resume_dear(dear: DeAR, checkpoint: ray.train.Checkpoint | None) -> int:
    """Restore a checkpoint written by `report_dear` (if any); returns the steps already done."""
    if checkpoint is None:
        return 0
    with checkpoint.as_directory() as folder:
        return dear.load_checkpoint(folder)
