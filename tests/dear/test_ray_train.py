"""DeAR inside Ray Train: a TorchTrainer loop on gloo CPU workers, checkpointed through
`ray.train.report` half-way and resumed from that checkpoint, ends where the uninterrupted
run ends."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow


def _fit(storage, name: str, config: dict):
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from train_jobs.dear_example import train_loop

    trainer = TorchTrainer(
        train_loop,
        train_loop_config=config,
        scaling_config=ScalingConfig(num_workers=2, use_gpu=False),
        run_config=RunConfig(storage_path=str(storage), name=name),
    )
    return trainer.fit()


def test_checkpoint_and_resume_through_ray_train_match_an_uninterrupted_run(ray_session,
                                                                           tmp_path):
    straight = _fit(tmp_path, "straight", {"steps": 8, "checkpoint_at": 4,
                                           "final_state": str(tmp_path / "straight.pt")})
    assert straight.error is None
    assert straight.checkpoint is not None
    files = sorted(p.name for p in Path(straight.checkpoint.path).iterdir())
    assert files == ["model.pt", "optimizer_rank0.pt", "optimizer_rank1.pt"]

    resumed = _fit(tmp_path, "resumed", {"steps": 8, "resume_from": straight.checkpoint.path,
                                         "final_state": str(tmp_path / "resumed.pt")})
    assert resumed.error is None
    a, b = torch.load(tmp_path / "straight.pt"), torch.load(tmp_path / "resumed.pt")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    start = torch.load(straight.checkpoint.path + "/model.pt")
    assert any(not torch.equal(start[k], a[k]) for k in a)  # the second half trained
