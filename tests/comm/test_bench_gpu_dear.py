"""benchmarks/bench_gpu_dear.py runs as is; without a GPU it takes its tiny fp32 shape, where
DeAR and DDP must match plain AdamW to fp32 round-off, compiled runs included."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def test_the_single_gpu_script_runs_end_to_end_on_a_cpu(tmp_path):
    out = tmp_path / "gpu_dear.json"
    subprocess.run([sys.executable, "benchmarks/bench_gpu_dear.py", "--tiny", "--steps", "2",
                    "--warmup", "3", "--timed", "1", "--out", str(out)],
                   cwd=ROOT, check=True, timeout=900, capture_output=True)
    result = json.loads(out.read_text())
    for name in ("full", "lora"):
        row = result["equivalence"][name]
        assert row["moved"] > 1e-5, row  # it trained
        assert row["dear_vs_plain"] <= 1e-6 and row["ddp_vs_plain"] <= 1e-6, row
    assert set(result["speed"]) == {"plain", "ddp", "dear", "plain compiled", "ddp compiled",
                                    "dear compiled"}
    assert all(r["tokens_per_s"] > 0 and r["mfu"] > 0 for r in result["speed"].values())
