"""Drivers run on the head's host of `multinode.py`'s cluster; each prints one JSON line.

    python -m benchmarks.multinode_jobs nodes --address 10.77.0.1:6379 --expect 3
        every node alive, and a task pinned to each reports that node's address
    python -m benchmarks.multinode_jobs train --address 10.77.0.1:6379 --storage DIR ...
        a DeAR Ray Train job (train_jobs/dear_example.py) with one worker on each of two worker
        nodes (STRICT_SPREAD, gloo over the emulated links), a checkpoint every step, and as
        many restarts as --max-failures allows; --hold-file holds it after the step that file
        names, for as long as the file exists (train_jobs/dear_example.py)
    python -m benchmarks.multinode_jobs register --address 10.77.0.1:6379 --storage DIR
        one task on each worker node registers versions of one model into a registry on the
        shared storage, all at the same moment: the versions they got, and whether each entry
        verifies against its own writer's files
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


def register_at_once(storage: str, versions_each: int = 4) -> dict:
    """Two worker nodes register versions of one name at the same moment (compare-and-set)."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    @ray.remote(num_cpus=0)
    def register_some(root: str, start_at: float, count: int) -> list[int]:
        import tempfile
        from pathlib import Path

        from wow_ray.registry import EntryKind, Registry

        registry, node, versions = Registry(root), ray.util.get_node_ip_address(), []
        time.sleep(max(0.0, start_at - time.time()))  # both nodes start together
        for i in range(count):
            folder = Path(tempfile.mkdtemp())
            (folder / "config.json").write_text('{"model_type": "llama"}')
            (folder / "model.safetensors").write_bytes(f"{node} copy {i}".encode() * 64)
            entry = registry.register(EntryKind.MODEL, "shared", folder, source=f"{node}|{i}")
            versions.append(entry.version)
        return versions

    workers = [n for n in ray.nodes() if n["Alive"] and n["Resources"].get("train_host")]
    start_at = time.time() + 3.0
    per_node = ray.get([register_some.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
        n["NodeID"], soft=False)).remote(storage, start_at, versions_each) for n in workers],
        timeout=120)
    from wow_ray.registry import EntryKind, Registry

    registry, unmixed = Registry(storage), True
    for entry in registry.entries(EntryKind.MODEL, "shared"):
        registry.verify(entry)
        node, copy = entry.source.split("|")
        weights = registry.local_dir(entry) / "model.safetensors"
        unmixed &= weights.read_bytes() == f"{node} copy {copy}".encode() * 64
    return {"nodes": sorted(n["NodeManagerAddress"] for n in workers),
            "versions": sorted(v for vs in per_node for v in vs), "unmixed": unmixed}


def train(storage: str, steps: int, step_seconds: float, progress_file: str,
          max_failures: int, hold_file: str | None = None) -> dict:
    """The DeAR example's loop on two worker nodes; what it ended with."""
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from train_jobs.dear_example import train_loop

    config = {"steps": steps, "checkpoint_every": 1, "step_seconds": step_seconds,
              "progress_file": progress_file, "hold_file": hold_file}
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
    parser.add_argument("job", choices=["nodes", "train", "register"])
    parser.add_argument("--address", required=True)
    parser.add_argument("--expect", type=int, default=3)
    parser.add_argument("--storage")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--step-seconds", type=float, default=1.0)
    parser.add_argument("--progress-file")
    parser.add_argument("--max-failures", type=int, default=1)
    parser.add_argument("--hold-file")
    args = parser.parse_args()
    ray.init(address=args.address, log_to_driver=False)
    try:
        if args.job == "nodes":
            out = check_nodes(args.expect)
        elif args.job == "register":
            out = register_at_once(args.storage)
        else:
            out = train(args.storage, args.steps, args.step_seconds, args.progress_file,
                        args.max_failures, args.hold_file)
    finally:
        ray.shutdown()
    print(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
