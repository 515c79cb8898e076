"""The run's JSON Lines metrics log, ``<storage>/runs/<run>/metrics.jsonl``, written by rank 0.

One line per step (and one per start or restart, ``{"event": "started", "step": N}``), so a
run's whole history, restarts included, can be read without Ray. After a restart from the
checkpoint at step N, steps N+1... appear again: ``latest_per_step`` keeps the last of each,
and the earlier ones show what the failed attempt did (a resumed step repeats it exactly).
The file is rewritten whole on each write: object stores (s3://, gs://) cannot append, and a
run's log is small.
"""

from __future__ import annotations

import json
import time

from wow_ray.registry import Storage


class MetricsLog:
    def __init__(self, storage: Storage, rel: str, *, enabled: bool) -> None:
        self.storage, self.rel, self.enabled = storage, rel, enabled
        self.lines: list[str] = []

    def start(self, step: int) -> None:
        """Begin (step 0) or continue after a restart from a checkpoint at ``step``."""
        if not self.enabled:
            return
        if self.storage.exists(self.rel):
            self.lines = self.storage.read_text(self.rel).splitlines()
        self._append({"event": "started", "step": step, "time": time.time()})

    def write(self, metrics: dict) -> None:
        if self.enabled:
            self._append({**metrics, "time": time.time()})

    def _append(self, record: dict) -> None:
        self.lines.append(json.dumps(record))
        self.storage.write_text(self.rel, "\n".join(self.lines) + "\n")


def read_metrics(storage: Storage, rel: str) -> list[dict]:
    return [json.loads(line) for line in storage.read_text(rel).splitlines() if line.strip()]


def latest_per_step(records: list[dict]) -> dict[int, dict]:
    """The last logged metrics of each step (a resumed run logs the repeated steps again)."""
    return {r["step"]: r for r in records if "event" not in r}
