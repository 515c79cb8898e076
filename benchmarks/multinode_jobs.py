"""Drivers run on the head's host of `multinode.py`'s cluster; each prints one JSON line.

    python -m benchmarks.multinode_jobs nodes --address 10.77.0.1:6379 --expect 3
        every node alive, and a task pinned to each reports that node's address
    python -m benchmarks.multinode_jobs train --address 10.77.0.1:6379 --storage DIR ...
        a DeAR Ray Train job (train_jobs/dear_example.py) with one worker on each of two worker
        nodes (STRICT_SPREAD, gloo over the emulated links), a checkpoint every step, and as
        many restarts as --max-failures allows
"""

from __future__ import annotations

import argparse
import json
import time

import ray


def check_nodes(expect: int, timeout_s: float = 60.0) -> dict:
    """Wait until `expect` nodes are alive, then run one task on each, pinned to it."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    deadline = time.monotonic() + timeout_s
    alive = [n for n in ray.nodes() if n["Alive"]]
    while len(alive) < expect and time.monotonic() < deadline:
        time.sleep(0.5)
        alive = [n for n in ray.nodes() if n["Alive"]]

    @ray.remote(num_cpus=0)
    def where() -> str:
        return ray.util.get_node_ip_address()

    answers = ray.get([where.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
        node["NodeID"], soft=False)).remote() for node in alive], timeout=timeout_s)
    return {"alive": sorted(n["NodeManagerAddress"] for n in alive),
            "tasks_ran_on": sorted(answers)}


def train(storage: str, steps: int, step_seconds: float, progress_file: str,
          max_failures: int) -> dict:
    """The DeAR example's loop on two worker nodes; what it ended with."""
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from train_jobs.dear_example import train_loop

    config = {"steps": steps, "checkpoint_every": 1, "step_seconds": step_seconds,
              "progress_file": progress_file}
    started = time.monotonic()
    result = TorchTrainer(
        train_loop,
        train_loop_config=config,
        scaling_config=ScalingConfig(num_workers=2, use_gpu=False,
                                     resources_per_worker={"CPU": 1, "train_host": 1},
                                     placement_strategy="STRICT_SPREAD"),
        run_config=RunConfig(storage_path=storage, name="multinode",
                             failure_config=FailureConfig(max_failures=max_failures)),
    ).fit()
    return {"error": None if result.error is None else repr(result.error),
            "metrics": result.metrics,
            "checkpoint": result.checkpoint.path if result.checkpoint else None,
            "seconds": round(time.monotonic() - started, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("job", choices=["nodes", "train"])
    parser.add_argument("--address", required=True)
    parser.add_argument("--expect", type=int, default=3)
    parser.add_argument("--storage")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--step-seconds", type=float, default=1.0)
    parser.add_argument("--progress-file")
    parser.add_argument("--max-failures", type=int, default=1)
    args = parser.parse_args()
    ray.init(address=args.address, log_to_driver=False)
    try:
        if args.job == "nodes":
            out = check_nodes(args.expect)
        else:
            out = train(args.storage, args.steps, args.step_seconds, args.progress_file,
                        args.max_failures)
    finally:
        ray.shutdown()
    print(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
