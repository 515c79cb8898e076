"""A Ray cluster of several nodes on one machine: a head and workers, each in its own network
namespace on the emulated bridge (`emulated_cluster.py`), so Ray's traffic, gloo's and the
node failures a test injects are those of separate hosts.

What it takes (docs/design.md, "Facts measured"): every node runs `ray start` with `--node-ip-address`
set to its namespace's address; Ray 2.60 turns token authentication on, and a joining node
presents `~/.ray/auth_token` only with `RAY_AUTH_MODE=token` set (`ensure_auth_token` has Ray
write one if missing); `GLOO_SOCKET_IFNAME=eth0` names the interface, which has that name in every
namespace. Each node gets its own `--temp-dir`, so no node touches another Ray's `/tmp/ray`.

A node's processes are found by namespace (`ip netns pids`): killing a node kills exactly
them, and the teardown (normal exit, exception, Ctrl-C, SIGTERM) leaves no Ray process,
namespace or veth behind. Never `ray stop`: it would stop every Ray on the machine.

    with MultiNodeRay(3) as ray_nodes:           # a head and two worker nodes
        ray_nodes.driver([sys.executable, "-m", "benchmarks.multinode_jobs", "nodes", ...])
        ray_nodes.kill_node(2)      # a worker node dies
        ray_nodes.start_node(2)     # and comes back (a replaced machine)

    sudo python -m benchmarks.multinode --check      # 3 nodes up, a task on each, torn down
    sudo python -m benchmarks.multinode --cleanup    # what a SIGKILLed run left behind
    sudo python -m benchmarks.multinode --dialogue [--with-model]   # multinode_fault.py
    sudo python -m benchmarks.multinode --store-outage [--with-model]   # multinode_outage.py
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from benchmarks.emulated_cluster import (
    NAME_PREFIX,
    EmulatedCluster,
    cleanup_stale,
    kill_netns_processes,
)

ROOT = Path(__file__).resolve().parent.parent
RAY_PORT = 6379
DASHBOARD_PORT = 8265
T = TypeVar("T")
AUTH_TOKEN = Path.home() / ".ray" / "auth_token"
# The head notices a dead node in about 3 s instead of Ray's default of about 15 s.
FAST_HEALTH_CHECK = {"RAY_health_check_period_ms": "1000",
                     "RAY_health_check_failure_threshold": "3",
                     "RAY_health_check_timeout_ms": "1000"}


def ensure_auth_token() -> Path:
    """The token every node of this machine's user presents (Ray generates one if missing)."""
    if not AUTH_TOKEN.exists():
        from ray._private.authentication.authentication_token_setup import (
            generate_and_save_token,
        )

        generate_and_save_token()
    return AUTH_TOKEN


@dataclass
class MultiNodeRay(EmulatedCluster):
    """A Ray head on host 0 and worker nodes on hosts 1..n_hosts-1 of an emulated cluster;
    `MultiNodeRay(3)` is a head and two workers. The cluster's build starts the nodes, its
    teardown (and its SIGTERM and atexit handlers) kills them with the namespaces.

    cpus: logical CPUs per node (more than the machine's cores, as docs/design.md says);
    worker_resources: extra resources each worker node (not the head) offers, so jobs can
    ask for worker nodes by name ("train_host" by default: 2, a training worker's 1 and room
    for the service's replicas and the evaluation's actors beside it).
    dashboard: whether the head runs Ray's dashboard, on its address (`dashboard_url`): the
    Jobs API (`ray job submit`) and the state API live there.
    """

    cpus: int = 4
    worker_resources: str = '{"train_host": 2}'
    dashboard: bool = False
    start_timeout_s: float = 120.0
    temp_root: str = ""

    @property
    def head_address(self) -> str:
        return f"{self.hosts[0].ip}:{RAY_PORT}"

    @property
    def dashboard_url(self) -> str:
        return f"http://{self.hosts[0].ip}:{DASHBOARD_PORT}"

    def node_ip(self, index: int) -> str:
        return self.hosts[index].ip

    def _build(self) -> None:
        super()._build()  # from here on, teardown removes whatever this build made
        ensure_auth_token()
        # Short: Ray's unix sockets live under it and their paths are limited to 107 bytes.
        self.temp_root = tempfile.mkdtemp(prefix=f"{NAME_PREFIX}{os.getpid()}-", dir="/tmp")
        for index in range(len(self.hosts)):
            self.start_node(index)

    def env(self, index: int) -> dict[str, str]:
        """The environment of every process on node `index` (Ray's daemons, drivers)."""
        env = dict(os.environ)
        env.update(FAST_HEALTH_CHECK)
        env.update({"RAY_AUTH_MODE": "token",
                    "GLOO_SOCKET_IFNAME": self.hosts[index].interface,
                    "PYTHONPATH": str(ROOT),  # Ray's workers import this checkout
                    "RAY_USAGE_STATS_ENABLED": "0"})
        return env

    def start_node(self, index: int) -> None:
        """`ray start` on host `index`: the head for 0, a worker joining the head otherwise."""
        host = self.hosts[index]
        temp_dir = os.path.join(self.temp_root, str(index))
        argv = [shutil.which("ray") or os.path.join(os.path.dirname(sys.executable), "ray"),
                "start", f"--node-ip-address={host.ip}", f"--num-cpus={self.cpus}",
                f"--temp-dir={temp_dir}", "--object-store-memory=100000000",
                "--disable-usage-stats"]
        if index == 0 and self.dashboard:
            argv += ["--head", f"--port={RAY_PORT}", "--include-dashboard=true",
                     f"--dashboard-host={host.ip}", f"--dashboard-port={DASHBOARD_PORT}"]
        elif index == 0:
            argv += ["--head", f"--port={RAY_PORT}", "--include-dashboard=false"]
        else:
            argv += [f"--address={self.head_address}", f"--resources={self.worker_resources}"]
        done = subprocess.run(self.exec_argv(index, argv), env=self.env(index),
                              capture_output=True, text=True, timeout=self.start_timeout_s)
        if done.returncode != 0:
            raise RuntimeError(f"ray start on {host.netns} failed:\n{done.stdout}\n{done.stderr}")

    def kill_node(self, index: int) -> list[int]:
        """Kill every process of node `index` at once (SIGKILL: a machine that dies)."""
        return kill_netns_processes(self.hosts[index].netns, grace_s=0.0)

    def driver(self, argv: list[str], **kwargs: object) -> subprocess.Popen:
        """Start `argv` on the head's host (a driver reaches the cluster from there)."""
        return self.popen(0, argv, env=self.env(0), cwd=str(ROOT), **kwargs)

    def run_driver(self, argv: list[str], timeout_s: float) -> subprocess.CompletedProcess:
        done = subprocess.run(self.exec_argv(0, argv), env=self.env(0), cwd=str(ROOT),
                              capture_output=True, text=True, timeout=timeout_s)
        return done

    def teardown(self) -> None:
        """Every node's processes, the namespaces (EmulatedCluster.teardown), the temp dirs."""
        super().teardown()
        if self.temp_root:
            shutil.rmtree(self.temp_root, ignore_errors=True)
            self.temp_root = ""


def progress_lines(path: Path) -> list[dict[str, Any]]:
    """The JSON lines a driver appended to `path` so far (a line being written is skipped)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


def wait_for(condition: Callable[[], T], timeout_s: float, what: str) -> T:
    """`condition()`'s first true value, asked every half second; AssertionError on timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def cleanup() -> list[str]:
    """Processes, namespaces, links and temp folders a SIGKILLed run left behind."""
    removed = cleanup_stale()
    for folder in Path("/tmp").glob(f"{NAME_PREFIX}*-*"):
        pid = folder.name[len(NAME_PREFIX):].split("-")[0]
        if folder.is_dir() and pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(str(folder))
    return removed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rate", default="1gbit")
    parser.add_argument("--check", action="store_true",
                        help="start the nodes, run a task on each from the head, tear down")
    parser.add_argument("--cleanup", action="store_true", help="remove a killed run's leftovers")
    parser.add_argument("--dialogue", action="store_true",
                        help="the dialogue service with sessions in PostgreSQL, a training job "
                        "and an evaluation job: worker node 1 killed while all three run on it "
                        "(multinode_fault.py)")
    parser.add_argument("--store-outage", action="store_true",
                        help="the dialogue service spread over the worker nodes under load, "
                        "PostgreSQL stopped for 10 s mid-run (multinode_outage.py)")
    parser.add_argument("--with-model", action="store_true",
                        help="with --dialogue or --store-outage: vLLM serves the embedded model "
                        "(minutes to start)")
    parser.add_argument("--sessions", type=int, default=6)
    parser.add_argument("--turns", type=int, default=8)
    args = parser.parse_args()
    if args.cleanup:
        print("removed:", cleanup())
        return
    if args.dialogue or args.store_outage:
        dialogue_under_fault(args)
        return
    started = time.monotonic()
    with MultiNodeRay(args.workers + 1, rate=args.rate) as nodes:
        print(f"{args.workers + 1} nodes up in {time.monotonic() - started:.1f} s; "
              f"head {nodes.head_address}")
        done = nodes.run_driver([sys.executable, "-m", "benchmarks.multinode_jobs", "nodes",
                                 "--address", nodes.head_address,
                                 "--expect", str(args.workers + 1)], timeout_s=120)
        print(done.stdout.strip(), done.stderr.strip()[-2000:] if done.returncode else "")
        if done.returncode != 0:
            sys.exit(done.returncode)
    print(f"torn down; {time.monotonic() - started:.1f} s in all")


def dialogue_under_fault(args: argparse.Namespace) -> None:
    from benchmarks.multinode_dialogue import sessions_database
    from benchmarks.multinode_fault import run_one_kill, summary
    from benchmarks.multinode_outage import run_store_outage

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="wow-multinode-") as workdir, \
            MultiNodeRay(args.workers + 1, rate=args.rate, dashboard=True) as nodes, \
            sessions_database(nodes) as db:
        print(f"{args.workers + 1} nodes and PostgreSQL up in {time.monotonic() - started:.1f} s")
        if args.store_outage:
            print(json.dumps(run_store_outage(nodes, db, Path(workdir),
                                              with_model=args.with_model), indent=1))
        else:
            result = run_one_kill(nodes, db, Path(workdir), sessions=args.sessions,
                                  turns=args.turns, with_model=args.with_model)
            print(json.dumps(summary(result), indent=1))
    print(f"torn down; {time.monotonic() - started:.1f} s in all")


if __name__ == "__main__":
    main()
