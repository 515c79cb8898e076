"""One worker node killed while it serves, trains and evaluates, on `multinode.py`'s cluster.

`run_one_kill` (host side; tests/cluster/test_multinode.py and `python -m benchmarks.multinode
--dialogue` call it) starts three drivers on the head's host and strikes once all three are
under way on the node it kills:

- serving (`multinode_dialogue.py serve`): the food_delivery service with a replica of the
  gateway and of every agent on each worker node, sessions in PostgreSQL, then customers each
  holding a session;
- training (`multinode_jobs.py train`): a DeAR Ray Train job with one worker on each worker
  node and a checkpoint every step, held after step `hold_at` (a hold file) until the kill;
- evaluation (`multinode_dialogue.py evaluate`): `evaluators.run` submitted with the Jobs API,
  its simulator actors spread over the worker nodes, playing episodes over HTTP through the
  head's proxy.

Order: the service deploys while training starts; once both are up (training held), the
evaluation is submitted; once its first episode has a stored turn, the customers start; once
each customer has two answers, a simulator actor is alive on the node and the evaluation has
episodes left, the node is killed (every process, SIGKILL), the hold is lifted and 3 s later a
replacement node joins on the same host. Then every driver is awaited, and the sessions
database read: what the customers' sessions hold, and the evaluation's episodes played there
(an episode played again after its actor died shows as a second session of its task and trial).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from benchmarks.multinode import MultiNodeRay, progress_lines, wait_for
from benchmarks.multinode_dialogue import ROUTE, stored_sessions
from benchmarks.postgres_server import PostgresServer

# Each simulator actor asks for a share of the resource only worker nodes offer (spread over them).
ON_WORKER_NODES = json.dumps({"train_host": 0.01})


def run_one_kill(nodes: MultiNodeRay, db: PostgresServer, workdir: Path, *, kill: int = 1,
                 sessions: int = 6, turns: int = 8, with_model: bool = False,
                 tasks: str = "fd-040,fd-065,fd-136,fd-146", trials: int = 2, steps: int = 8,
                 hold_at: int = 3) -> dict[str, Any]:
    """Serve, train and evaluate; kill worker node `kill` while all three are under way there.
    `tasks`: dev tasks of three turns or more (the kill waits for an episode on the node with
    at most two stored).
    Returns {"served", "trained", "evaluated"} (each driver's JSON), "training_progress",
    "stored" (the customers' sessions), "episodes" (the evaluation's sessions per task and
    trial) and the moments that matter."""
    database_url = db.create_database("sessions")
    files = {name: workdir / f"{name}.jsonl" for name in ("turns", "training", "simulators")}
    hold, go = workdir / "hold", workdir / "go"
    hold.write_text(str(hold_at))
    slow = with_model  # vLLM's start on the CPU takes minutes
    dialogue = [sys.executable, "-m", "benchmarks.multinode_dialogue"]
    drivers: dict[str, subprocess.Popen] = {}
    try:
        drivers["served"] = start_driver(nodes, workdir, "served", [
            *dialogue, "serve", "--address", nodes.head_address, "--workdir", str(workdir),
            "--database-url", database_url, "--sessions", str(sessions), "--turns", str(turns),
            "--go-file", str(go), "--timeout-s", "900", *(["--with-model"] if with_model else [])])
        drivers["trained"] = start_driver(nodes, workdir, "trained", [
            sys.executable, "-m", "benchmarks.multinode_jobs", "train", "--address",
            nodes.head_address, "--storage", str(workdir / "training"), "--steps", str(steps),
            "--step-seconds", "1.0", "--progress-file", str(files["training"]),
            "--max-failures", "1", "--hold-file", str(hold)])

        def held() -> bool:
            at = [p for p in progress_lines(files["training"]) if p["step"] >= hold_at]
            return {p["rank"] for p in at} == {0, 1}

        def deployed() -> bool:
            return any("deployed" in p for p in progress_lines(files["turns"]))

        wait_for(lambda: _alive(drivers, workdir) and held() and deployed(), 1500 if slow else 240,
                 f"the service deployed and training held after step {hold_at}")
        drivers["evaluated"] = start_driver(nodes, workdir, "evaluated", [
            *dialogue, "evaluate", "--address", nodes.head_address, "--workdir", str(workdir),
            "--dashboard", nodes.dashboard_url, "--gateway", f"http://{nodes.node_ip(0)}:8000{ROUTE}",
            "--tasks", tasks, "--trials", str(trials), "--actor-resources", ON_WORKER_NODES,
            "--timeout-s", "600"])
        order = [(task, trial) for task in tasks.split(",") for trial in range(trials)]
        episodes = len(order)
        local_url = db.local_url("sessions")

        def evaluation_started() -> bool:
            return any(_episodes(local_url).values())

        wait_for(lambda: _alive(drivers, workdir) and evaluation_started(), 120,
                 "the evaluation's first stored turn")
        go.touch()  # the customers start

        def every_party_under_way() -> bool:
            per = Counter(p["session"] for p in progress_lines(files["turns"]) if "session" in p)
            customers = len(per) == sessions and min(per.values()) >= 2
            last = {p["actor"]: p for p in progress_lines(files["simulators"])}
            on_node = any(p["state"] == "ALIVE" and p["node"] == nodes.node_ip(kill)
                          for p in last.values())
            there = [p for p in _played(local_url) if p["node"] == nodes.node_ip(kill)]
            # the actor there is mid-episode: its newest one (episodes are handed out in
            # order) has one or two turns stored of the three or more its task takes
            newest = max(there, key=lambda p: order.index(p["episode"]), default=None)
            mid_episode = newest is not None and newest["turns"] <= 2
            return _alive(drivers, workdir) and customers and on_node and mid_episode

        wait_for(every_party_under_way, 600 if slow else 120,
                 "every customer's second answer and a simulator actor on the node")
        before = _episodes(local_url)
        killed_at = time.monotonic()
        if not nodes.kill_node(kill):
            raise AssertionError(f"node {kill} had no processes to kill")
        hold.unlink()  # the resumed training runs on to the end
        time.sleep(3)  # the head sees the node dead (health checks every second)
        nodes.start_node(kill)  # a replacement machine joins
        out: dict[str, Any] = {name: driver_result(driver, workdir, name, 1500 if slow else 400)
                               for name, driver in drivers.items()}
    finally:
        for driver in drivers.values():
            if driver.poll() is None:
                driver.kill()
                driver.wait()
    answers = [p for p in progress_lines(files["turns"]) if "session" in p]
    customer_ids = [s["session_id"] for s in out["served"]["sessions"] if s["session_id"]]
    out.update({
        "killed_node": nodes.node_ip(kill), "episodes_expected": episodes,
        "training_progress": progress_lines(files["training"]),
        "turns_after_kill": sum(1 for p in answers if p["t"] > killed_at),
        "in_flight_at_kill": sum(1 for p in answers if p["sent_at"] < killed_at < p["t"]),
        "episodes_begun_before_kill": len(before),
        "stored": stored_sessions(local_url, customer_ids),
        "episodes": _episodes(local_url)})
    return out


def start_driver(nodes: MultiNodeRay, workdir: Path, name: str,
                 argv: list[str]) -> subprocess.Popen:
    """A driver on the head's host, its output in files (no pipe to fill while it runs)."""
    with open(workdir / f"{name}.out", "w") as out, open(workdir / f"{name}.err", "w") as err:
        return nodes.driver(argv, stdout=out, stderr=err)


def _alive(drivers: dict[str, subprocess.Popen], workdir: Path) -> bool:
    """True while no driver has exited before its time; else the first one's error."""
    for name, driver in drivers.items():
        if driver.poll() is not None:
            err = (workdir / f"{name}.err").read_text()
            raise RuntimeError(f"driver {name} exited early ({driver.returncode}):\n{err[-4000:]}")
    return True


def driver_result(driver: subprocess.Popen, workdir: Path, name: str,
                  timeout_s: float) -> dict[str, Any]:
    driver.wait(timeout=timeout_s)
    out = (workdir / f"{name}.out").read_text().splitlines()
    if driver.returncode != 0 or not out:
        err = (workdir / f"{name}.err").read_text()
        raise RuntimeError(f"driver {name} failed ({driver.returncode}):\n{err[-4000:]}")
    return json.loads(out[-1])


def _played(local_url: str) -> list[dict[str, Any]]:
    """The evaluation's sessions with a stored turn: task, trial, the node of the simulator
    actor that played it, and its turns (a session created while its answer was lost, and
    created again, holds none and is left out)."""
    return [{"episode": (meta["task_id"], int(meta["trial"])), "node": meta.get("simulator_node"),
             "turns": len(held["indices"])}
            for held in stored_sessions(local_url).values()
            if (meta := held["metadata"]).get("simulated") and "task_id" in meta and held["indices"]]


def _episodes(local_url: str) -> dict[tuple[str, int], list[int]]:
    """Per (task, trial) of the evaluation, the turns each of its sessions holds (an episode
    played again after its actor died has two)."""
    per: dict[tuple[str, int], list[int]] = defaultdict(list)
    for session in _played(local_url):
        per[session["episode"]].append(session["turns"])
    return dict(per)


def summary(result: dict[str, Any]) -> dict[str, Any]:
    """The numbers worth printing: placement, turns, training's resume, the evaluation."""
    served, stored = result["served"], result["stored"]
    sessions = served["sessions"]
    evaluated = result["evaluated"]
    report = evaluated.get("report") or {}
    resumed = [p for p in result["training_progress"] if p["start"] > 0]
    return {
        "killed_node": result["killed_node"],
        "placement": served["placement"], "placement_after": served["placement_after"],
        "respread_after_sessions_s": served.get("respread_after_sessions_s"),
        "llm_placement": served.get("llm_placement"),
        "llm_placement_after": served.get("llm_placement_after"),
        "streamed_sessions": sum(1 for s in sessions if s.get("streamed")),
        "withdrawn": sum(s.get("withdrawn", 0) for s in sessions),
        "turns_sent": sum(len(s["sent"]) for s in sessions),
        "turns_answered": sum(s["answered"] for s in sessions),
        "turns_stored": sum(len(v["indices"]) for v in stored.values()),
        "turns_after_kill": result["turns_after_kill"],
        "in_flight_at_kill": result["in_flight_at_kill"],
        "retried": sum(s["retried"] for s in sessions),
        "answered_from_transcript": sum(s["from_transcript"] for s in sessions),
        "failed": [f for s in sessions for f in s["failed"]],
        "slowest_turn_s": max((s["slowest_s"] for s in sessions), default=None),
        "training": {"error": result["trained"]["error"], "seconds": result["trained"]["seconds"],
                     "final_step": (result["trained"]["metrics"] or {}).get("step"),
                     "resumed_from": sorted({p["start"] for p in resumed}),
                     "resumed_on": sorted({p["node"] for p in resumed})},
        "evaluation": {k: evaluated.get(k) for k in ("status", "seconds", "simulators")}
        | {k: report.get(k) for k in ("episodes", "success", "compliance")}
        | {"replayed": (report.get("meta") or {}).get("replayed"),
           "begun_before_kill": result["episodes_begun_before_kill"],
           "sessions_per_episode": {f"{t}/{k}": v for (t, k), v in result["episodes"].items()}},
    }
