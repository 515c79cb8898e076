"""`python -m train_jobs.comm_benchmark --small` on a local Ray with two Ray Train workers: the
schedulers run on the workers and the driver writes the report. Three of the seven, to keep
the test short on a loaded machine: DDP (the report's baseline), MG-WFBP (its merge plan is
decided on rank 0 and broadcast) and DeAR tuned (Bayesian tuning across workers); all seven
run on two gloo ranks in test_schedulers.py."""

from __future__ import annotations

import json

import pytest

METHODS = ["ddp", "mgwfbp", "dear_tuned"]

pytestmark = pytest.mark.slow


def test_job_entry_runs_every_scheduler_on_ray_train_workers(ray_session, tmp_path):
    from train_jobs.comm_benchmark import main

    out = main(["--small", "--workers", "2", "--spread", "PACK", "--methods", *METHODS,
                "--out", str(tmp_path / "report"), "--storage", str(tmp_path / "storage")])
    saved = json.loads((out / "results.json").read_text())
    result = saved["results"][0]
    assert result["world"] == 2
    assert set(result["methods"]) == set(METHODS)
    assert all(len(m["times"]) == 2 for m in result["methods"].values())
    text = (out / "report.md").read_text()
    for label in ("MG-WFBP", "DDP (25 MB)", "DeAR (tuned)"):
        assert f"| {label}" in text
    assert (out / "comm.png").stat().st_size > 0
