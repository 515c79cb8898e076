"""`python -m train_jobs.bench_comm --small` on a local Ray with two Ray Train workers: every
scheduler runs on the workers and the driver writes the report."""

from __future__ import annotations

import json

import pytest

from benchmarks.comm.schedulers import METHODS

pytestmark = pytest.mark.slow


def test_job_entry_runs_every_scheduler_on_ray_train_workers(ray_session, tmp_path):
    from train_jobs.bench_comm import main

    out = main(["--small", "--workers", "2", "--spread", "PACK", "--out",
                str(tmp_path / "report"), "--storage", str(tmp_path / "storage")])
    saved = json.loads((out / "results.json").read_text())
    result = saved["results"][0]
    assert result["world"] == 2
    assert set(result["methods"]) == set(METHODS)
    assert all(len(m["times"]) == 2 for m in result["methods"].values())
    text = (out / "report.md").read_text()
    for label in ("BSP", "MG-WFBP", "DDP (25 MB)", "FSDP2", "DeAR (tuned)"):
        assert f"| {label}" in text
    assert (out / "comm.png").stat().st_size > 0
