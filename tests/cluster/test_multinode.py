"""Several Ray nodes on one machine (benchmarks/multinode.py): a head and two workers, each in
its own network namespace. First the two worker nodes register versions of one model into one
registry at the same moment and get distinct versions. Then one kill hits serving, training
and evaluation at once (benchmarks/multinode_fault.py): the dialogue service (its gateway and
agents with a replica on each worker node behind the head's proxy, sessions in a PostgreSQL
server on the head) holds customers' sessions, a DeAR Ray Train job runs a worker on each
worker node, and an evaluation job submitted to the cluster has simulator actors on both;
worker node 1 dies. No session or turn is lost, training resumes from its checkpoint on the
replacement node and finishes, and the evaluation completes with every episode once, the
killed actor's episode played again. Then PostgreSQL stops for ten seconds under load with
the service spread over the worker nodes: clear 503s, nothing half-written, recovery without a
restart. Then nothing is left behind. All of it on one cluster, started once for the module.

Needs root (namespaces, veths); skipped with the reason otherwise. CI runs it as root.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

STEPS, HOLD_AT = 8, 3
TASKS, TRIALS = ("fd-040", "fd-065", "fd-136", "fd-146"), 2  # dev tasks of 3-5 turns (on the floor)


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


def test_two_nodes_register_versions_at_once(three_nodes, tmp_path):
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
def test_one_node_killed_while_it_serves_trains_and_evaluates(three_nodes, sessions_db, tmp_path):
    """No LLM (a stand-in refuses every call, so the agents take their deterministic
    fallbacks). Six customers hold eight-turn sessions (every other one streamed), training is
    held after step 3, the evaluation plays 4 dev tasks x 2 trials with 2 simulator actors
    spread over the worker nodes; worker node 1 dies once each customer has two answers, an actor is alive there and
    episodes are left. Every customer turn is answered (one retry allowed, after reading the
    transcript), no streamed text is taken back, PostgreSQL holds each session's turns once
    each, in order, and Serve puts the killed node's replicas on its replacement; training
    resumes from its checkpoint on both worker nodes (the replacement and the survivor) and
    finishes; the evaluation job succeeds with every episode once, and the episode its killed
    actor held was played again (the report says so, the state API shows the restart, the
    database holds the abandoned session beside the replayed one)."""
    from benchmarks.multinode_dialogue import DEPLOYMENTS
    from benchmarks.multinode_fault import run_one_kill, summary

    nodes = three_nodes
    result = run_one_kill(nodes, sessions_db, tmp_path, kill=1, sessions=6, turns=8,
                          tasks=",".join(TASKS), trials=TRIALS, steps=STEPS, hold_at=HOLD_AT)
    print(json.dumps(summary(result)))
    killed, workers = nodes.node_ip(1), sorted([nodes.node_ip(1), nodes.node_ip(2)])

    served = result["served"]  # serving: no session, no turn lost
    assert served["placement"] == {name: workers for name in DEPLOYMENTS}  # none on the head
    sessions = served["sessions"]
    assert [s["failed"] for s in sessions] == [[]] * 6, summary(result)
    assert [s["answered"] for s in sessions] == [8] * 6
    assert result["turns_after_kill"] > 0
    assert [s["streamed"] for s in sessions] == [True, False] * 3  # half of them stream
    assert [s["withdrawn"] for s in sessions] == [0] * 6  # no streamed text taken back
    # Serve started the killed node's replicas on its replacement: one on each worker again
    assert served["placement_after"] == {name: workers for name in DEPLOYMENTS}, summary(result)
    for session in sessions:
        held = result["stored"][session["session_id"]]
        assert held["customer"] == session["sent"]  # every turn stored once, in order
        assert held["indices"] == list(range(8))
        assert held["version"] == 8  # the session row saved with each turn: none half-written

    trained = result["trained"]  # training: resumed from its checkpoint, finished
    assert trained["error"] is None and trained["metrics"]["step"] == STEPS
    lines = result["training_progress"]
    first = [p for p in lines if p["start"] == 0]
    resumed = [p for p in lines if p["start"] > 0]
    assert {p["node"] for p in first} == set(workers)  # one worker on each worker node
    assert max(p["step"] for p in first) >= HOLD_AT  # held after it until the kill
    assert resumed, "training restarted from step 0, not from its checkpoint"
    assert {p["start"] for p in resumed} == {HOLD_AT}
    assert {p["node"] for p in resumed} == set(workers)
    assert {p["rank"] for p in resumed if p["step"] == STEPS} == {0, 1}

    evaluated = result["evaluated"]  # evaluation: every episode once, the killed one replayed
    assert evaluated["status"] == "SUCCEEDED", evaluated
    report = evaluated["report"]
    expected = sorted((task, trial) for task in TASKS for trial in range(TRIALS))
    assert sorted((d["task_id"], d["trial"]) for d in report["details"]) == expected
    assert report["episodes"] == len(expected) and report["meta"]["mode"] == "http"
    placed_there = [a for a in evaluated["simulators"] if a["nodes"][0] == killed]
    assert placed_there, evaluated["simulators"]  # the state API: an actor on the killed node
    assert all(a["restarts"] >= 1 for a in placed_there)  # ... restarted by Ray
    replayed = {(r["task_id"], r["trial"]) for r in report["meta"]["replayed"]}
    assert replayed and replayed <= set(expected)
    episodes = result["episodes"]  # the database: per (task, trial), its sessions' turn counts
    assert sorted(episodes) == expected
    played_twice = {e for e, held in episodes.items() if len(held) == 2}
    assert played_twice and played_twice <= replayed  # the abandoned session beside its replay
    assert all(len(held) <= 2 for held in episodes.values())


@pytest.mark.timeout(400)
def test_the_sessions_database_stopped_for_ten_seconds_under_load(three_nodes, sessions_db,
                                                                    tmp_path):
    """The service spread over both worker nodes (the stand-in LLM again), 8 customers'
    streamed turns through the head's proxy; PostgreSQL on the head stopped as by a crash 15 s
    in, started 10 s later. During the outage every failure is a clear 503 naming the
    database; within a few seconds of its return every turn is answered again, with nothing
    restarted; the database holds exactly the turns answered, none half-written."""
    from benchmarks.multinode_dialogue import DEPLOYMENTS
    from benchmarks.multinode_outage import run_store_outage

    nodes = three_nodes
    out = run_store_outage(nodes, sessions_db, tmp_path, customers=8, minutes=0.75, ramp_s=5,
                           outage_at_s=15, outage_s=10, database="outage")
    brief = {k: out[k] for k in ("outcomes", "outage", "not_done_after_up_s", "stored",
                                 "turn_s", "failure_kinds")}
    print(json.dumps(brief))
    workers = sorted([nodes.node_ip(1), nodes.node_ip(2)])
    assert out["placement"] == {name: workers for name in DEPLOYMENTS}
    phases = out["outcomes"]
    assert phases["before"] == {"done": phases["before"]["done"]} and phases["before"]["done"] > 0
    assert phases["during"].get("unavailable", 0) > 0, brief  # turns were refused, clearly:
    assert all("the sessions database is unavailable" in m for m in out["failure_messages"])
    assert phases["after"]["done"] > 0 and phases["first_answer_after_up_s"] < 10, brief
    assert all(t < 5 for t in out["not_done_after_up_s"]), brief  # recovered by itself
    done = sum(phase.get("done", 0) for phase in (phases["before"], phases["during"],
                                                   phases["after"]))
    assert out["stored"]["turns"] == done == out["turns"]  # each answered turn stored, once
    assert out["stored"]["inconsistent"] == {}  # indices 0..n-1 and the row's version n
