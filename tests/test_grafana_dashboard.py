"""The Grafana dashboard (ops/grafana/wow_ray.json) queries only metrics that are exported:
the project's own (wow_ray/serving/metrics.py, with Ray's ``ray_`` prefix) and names that
Ray's own dashboards query (Serve, vLLM, nodes)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import ray

from wow_ray.serving.metrics import METRICS

ROOT = Path(__file__).resolve().parent.parent
RAY_DASHBOARDS = Path(ray.__file__).parent / "dashboard/modules/metrics/dashboards"
NAME = re.compile(r"\b((?:ray|autoscaler)_[a-z0-9_]+)")


def exported_names() -> set[str]:
    ours = set()
    for spec in METRICS.values():
        base = f"ray_{spec.name}"
        ours |= {base, f"{base}_bucket", f"{base}_sum", f"{base}_count"} if spec.kind == "histogram" else {base}
    rays = {n for f in RAY_DASHBOARDS.glob("*_panels.py") for n in NAME.findall(f.read_text())}
    return ours | rays


def test_every_query_names_an_exported_metric_and_every_own_metric_is_shown():
    dashboard = json.loads((ROOT / "ops/grafana/wow_ray.json").read_text())
    queried = {n for p in dashboard["panels"] for t in p["targets"] for n in NAME.findall(t["expr"])}
    assert queried, "no queries found"
    assert queried <= exported_names(), queried - exported_names()
    shown = {n.removesuffix("_bucket") for n in queried}
    assert {f"ray_{name}" for name in METRICS} <= shown
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
