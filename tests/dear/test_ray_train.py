"""DeAR inside Ray Train: a TorchTrainer loop on gloo CPU workers checkpoints through
`ray.train.report` half-way, then fails; Ray Train restarts the workers, they resume from that
checkpoint (`ray.train.get_checkpoint()`) and end where the uninterrupted first attempt ended.
One `fit` with one restart: starting Ray Train workers is the slow part on a small machine."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow


def test_checkpoint_and_resume_through_ray_train_match_an_uninterrupted_run(ray_session,
                                                                           tmp_path):
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from train_jobs.dear_example import train_loop

    config = {"steps": 8, "checkpoint_at": 4, "final_state": str(tmp_path / "from{start}.pt"),
              "fail_once_marker": str(tmp_path / "failed-once")}
    result = TorchTrainer(
        train_loop,
        train_loop_config=config,
        scaling_config=ScalingConfig(num_workers=2, use_gpu=False),
        run_config=RunConfig(storage_path=str(tmp_path), name="dear",
                             failure_config=FailureConfig(max_failures=1)),
    ).fit()
    assert result.error is None
    assert (tmp_path / "failed-once").exists()  # the first attempt did fail
    files = sorted(p.name for p in Path(result.checkpoint.path).iterdir())
    assert files == ["model.pt", "optimizer_rank0.pt", "optimizer_rank1.pt"]

    straight, resumed = torch.load(tmp_path / "from0.pt"), torch.load(tmp_path / "from4.pt")
    assert straight.keys() == resumed.keys()
    for key in straight:
        assert torch.equal(straight[key], resumed[key]), key
    start = torch.load(Path(result.checkpoint.path) / "model.pt")
    assert any(not torch.equal(start[k], straight[k]) for k in straight)  # steps 5-8 trained
