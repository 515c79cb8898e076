"""Several Ray nodes on one machine (benchmarks/multinode.py): a head and two workers, each in
its own network namespace. A DeAR Ray Train job runs one worker on each worker node (gloo over
the emulated links); one worker node is killed mid-training, comes back, and the job resumes
from its last checkpoint on the two worker nodes and finishes. Before that, the two worker
nodes register versions of one model into one registry at the same moment and get distinct
versions. Then a Serve deployment with a replica on each worker node keeps answering through
the head's proxy while one worker node dies. Then nothing is left behind.

Needs root (namespaces, veths); skipped with the reason otherwise. CI runs it as root.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

STEPS, KILL_AFTER_STEP = 8, 3
T = TypeVar("T")


def _namespaces_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "needs root: network namespaces and veths (CI runs it as root)"
    if shutil.which("ip") is None or shutil.which("tc") is None:
        return "needs iproute2 (ip, tc)"
    probe = f"wowrprobe{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    if made.returncode != 0:
        return f"network namespaces unavailable here: {made.stderr.strip()}"
    return None


@pytest.fixture(scope="module")
def three_nodes():
    reason = _namespaces_unavailable()
    if reason:
        pytest.skip(reason)
    from benchmarks.multinode import MultiNodeRay

    with MultiNodeRay(3) as nodes:
        yield nodes
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not any(n in namespaces for n in (h.netns for h in nodes.hosts))


def _kill_and_replace_node(nodes, index: int) -> None:
    assert nodes.kill_node(index), f"node {index} had no processes to kill"
    time.sleep(3)  # the head sees the node dead (health checks every second)
    nodes.start_node(index)  # a replacement machine joins


def _progress(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


def _wait_for(condition, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def _run_driver_while(nodes, job_args: list[str], meanwhile: Callable[[], T],
                      timeout_s: float) -> tuple[dict, T]:
    """Run ``benchmarks.multinode_jobs <job_args>`` as a driver on the head, call
    ``meanwhile()`` while it runs, then wait for it: its last stdout line (JSON) and what
    ``meanwhile`` returned. The driver is killed and reaped whatever fails on the way."""
    driver = nodes.driver([sys.executable, "-m", "benchmarks.multinode_jobs", *job_args],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        during = meanwhile()
        out, err = driver.communicate(timeout=timeout_s)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
    assert driver.returncode == 0, err[-4000:]
    return json.loads(out.splitlines()[-1]), during


def test_two_nodes_register_at_once_and_training_resumes_after_a_worker_node_dies(
        three_nodes, tmp_path):
    nodes = three_nodes
    checked = nodes.run_driver([sys.executable, "-m", "benchmarks.multinode_jobs", "nodes",
                                "--address", nodes.head_address, "--expect", "3"],
                               timeout_s=90)
    assert checked.returncode == 0, checked.stderr[-3000:]
    workers = {nodes.node_ip(1), nodes.node_ip(2)}
    assert json.loads(checked.stdout.splitlines()[-1])["tasks_ran_on"] == sorted(
        [nodes.node_ip(0), *workers])

    registered = nodes.run_driver([sys.executable, "-m", "benchmarks.multinode_jobs", "register",
                                   "--address", nodes.head_address, "--storage",
                                   str(tmp_path / "registry")], timeout_s=120)
    assert registered.returncode == 0, registered.stderr[-3000:]
    registry = json.loads(registered.stdout.splitlines()[-1])
    assert registry["nodes"] == sorted(workers)
    assert registry["versions"] == list(range(1, 9))  # no version twice, none skipped
    assert registry["unmixed"]  # each version holds its own writer's weights

    progress = tmp_path / "progress.jsonl"

    def kill_a_worker_node_mid_training() -> int:
        def both_ranks_past_kill_step():
            done = [p for p in _progress(progress) if p["step"] >= KILL_AFTER_STEP]
            return {p["rank"] for p in done} == {0, 1}

        _wait_for(both_ranks_past_kill_step, 150, f"both ranks to finish step {KILL_AFTER_STEP}")
        killed_at = max(p["step"] for p in _progress(progress))
        _kill_and_replace_node(nodes, 2)
        return killed_at

    result, killed_at = _run_driver_while(
        nodes, ["train", "--address", nodes.head_address, "--storage", str(tmp_path / "storage"),
                "--steps", str(STEPS), "--step-seconds", "1.0", "--progress-file", str(progress),
                "--max-failures", "1"],
        kill_a_worker_node_mid_training, timeout_s=180)
    assert result["error"] is None
    assert result["metrics"]["step"] == STEPS

    lines = _progress(progress)
    first = [p for p in lines if p["start"] == 0]
    resumed = [p for p in lines if p["start"] > 0]
    assert {p["node"] for p in first} == workers  # one worker on each worker node
    assert resumed, "training restarted from step 0, not from its checkpoint"
    starts = {p["start"] for p in resumed}
    assert len(starts) == 1 and 0 < starts.pop() <= killed_at
    assert {p["node"] for p in resumed} == workers
    assert {p["rank"] for p in resumed if p["step"] == STEPS} == {0, 1}


def test_a_service_on_two_nodes_keeps_answering_when_one_dies(three_nodes, tmp_path):
    """One replica on each worker node behind the head's proxy; node 1 dies mid-way. Every
    request is answered (a client's one retry allowed), by the surviving node after the kill."""
    nodes = three_nodes
    progress = tmp_path / "answers.jsonl"

    def kill_node_1_once_both_answer() -> float:
        _wait_for(lambda: {p["node"] for p in _progress(progress)} == {
            nodes.node_ip(1), nodes.node_ip(2)}, 120, "answers from both worker nodes")
        killed_at = time.monotonic()
        assert nodes.kill_node(1), "node 1 had no processes to kill"
        return killed_at

    result, killed_at = _run_driver_while(
        nodes, ["serve", "--address", nodes.head_address, "--progress-file", str(progress),
                "--seconds", "25"],
        kill_node_1_once_both_answer, timeout_s=150)
    assert result["failed"] == [], result
    after = [p for p in _progress(progress) if p["t"] > killed_at + 5]
    assert after, "no answer after the kill"
    assert {p["node"] for p in after} == {nodes.node_ip(2)}
    nodes.start_node(1)
