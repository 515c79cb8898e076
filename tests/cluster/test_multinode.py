"""Several Ray nodes on one machine (benchmarks/multinode.py): a head and two workers, each in
its own network namespace. A DeAR Ray Train job runs one worker on each worker node (gloo over
the emulated links); one worker node is killed mid-training, comes back, and the job resumes
from its last checkpoint on the two worker nodes and finishes. Before that, the two worker
nodes register versions of one model into one registry at the same moment and get distinct
versions. Then the dialogue service, its gateway and agents with a replica on each worker node
behind the head's proxy and sessions in a PostgreSQL server on the head, loses no session and
no turn when worker node 1 dies mid-way (node 2 is the replacement that joined after the
training kill), and an evaluation job submitted to the cluster completes against it. Then
nothing is left behind. All of it on one cluster, started once for the module.

Needs root (namespaces, veths); skipped with the reason otherwise. CI runs it as root.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from benchmarks.multinode import progress_lines, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

STEPS, KILL_AFTER_STEP = 8, 3


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

    with MultiNodeRay(3, dashboard=True) as nodes:  # the dashboard serves the Jobs API
        yield nodes
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not any(n in namespaces for n in (h.netns for h in nodes.hosts))


def _kill_and_replace_node(nodes, index: int) -> None:
    assert nodes.kill_node(index), f"node {index} had no processes to kill"
    time.sleep(3)  # the head sees the node dead (health checks every second)
    nodes.start_node(index)  # a replacement machine joins


def _run_driver_while(nodes, job_args: list[str], meanwhile, timeout_s: float):
    return nodes.run_driver_while([sys.executable, "-m", "benchmarks.multinode_jobs", *job_args],
                                  meanwhile, timeout_s)


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
            done = [p for p in progress_lines(progress) if p["step"] >= KILL_AFTER_STEP]
            return {p["rank"] for p in done} == {0, 1}

        wait_for(both_ranks_past_kill_step, 150, f"both ranks to finish step {KILL_AFTER_STEP}")
        killed_at = max(p["step"] for p in progress_lines(progress))
        _kill_and_replace_node(nodes, 2)
        return killed_at

    result, killed_at = _run_driver_while(
        nodes, ["train", "--address", nodes.head_address, "--storage", str(tmp_path / "storage"),
                "--steps", str(STEPS), "--step-seconds", "1.0", "--progress-file", str(progress),
                "--max-failures", "1"],
        kill_a_worker_node_mid_training, timeout_s=180)
    assert result["error"] is None
    assert result["metrics"]["step"] == STEPS

    lines = progress_lines(progress)
    first = [p for p in lines if p["start"] == 0]
    resumed = [p for p in lines if p["start"] > 0]
    assert {p["node"] for p in first} == workers  # one worker on each worker node
    assert resumed, "training restarted from step 0, not from its checkpoint"
    starts = {p["start"] for p in resumed}
    assert len(starts) == 1 and 0 < starts.pop() <= killed_at
    assert {p["node"] for p in resumed} == workers
    assert {p["rank"] for p in resumed if p["step"] == STEPS} == {0, 1}


@pytest.fixture(scope="module")
def sessions_db(three_nodes):
    """PostgreSQL in the head's namespace on the head's address (multinode_dialogue.py)."""
    import importlib.util

    from benchmarks.multinode_dialogue import sessions_database
    from benchmarks.postgres_server import postgres_binaries

    if postgres_binaries() is None or importlib.util.find_spec("psycopg") is None:
        pytest.skip("needs PostgreSQL's server binaries and psycopg (scripts/install.sh dev)")
    with sessions_database(three_nodes) as db:
        yield db


@pytest.mark.timeout(600)
def test_the_dialogue_service_on_two_nodes_loses_no_session_when_one_dies_without_the_model(
        three_nodes, sessions_db, tmp_path):
    """The gateway and every agent with one replica on each worker node, the head's proxy in
    front, sessions in PostgreSQL; no LLM (a stand-in refuses every call, so the agents take
    their deterministic fallbacks). Six customers hold eight-turn sessions; worker node 1 dies
    once each has two answers. Every turn is answered (one retry allowed, after reading the
    transcript), and PostgreSQL holds every session's turns once each, in order, with the
    session row's version agreeing. Then `evaluators.run`, submitted as a Ray job, completes."""
    from benchmarks.multinode_dialogue import DEPLOYMENTS, run_dialogue_under_fault, summary

    nodes = three_nodes
    result = run_dialogue_under_fault(nodes, sessions_db, tmp_path, kill=1, sessions=6, turns=8)
    print(json.dumps(summary(result)))
    workers = sorted([nodes.node_ip(1), nodes.node_ip(2)])
    assert result["placement"] == {name: workers for name in DEPLOYMENTS}  # none on the head
    sessions = result["sessions"]
    assert [s["failed"] for s in sessions] == [[]] * 6, summary(result)
    assert [s["answered"] for s in sessions] == [8] * 6
    assert result["turns_after_kill"] > 0
    for session in sessions:
        held = result["stored"][session["session_id"]]
        assert held["customer"] == session["sent"]  # every turn stored once, in order
        assert held["indices"] == list(range(8))
        assert held["version"] == 8  # the session row saved with each turn: none half-written

    evaluation = result["evaluation"]
    assert evaluation["status"] == "SUCCEEDED", evaluation
    report = evaluation["report"]
    assert report["episodes"] == 2 and report["meta"]["mode"] == "http"
    assert {row["task_id"] for row in report["per_task"]} == {"fd-004", "fd-009"}
