"""Start one benchmark process per host (network namespaces, or plain loopback processes).

`python -m benchmarks.comm.launch --rank R --world N --master IP --port P --config FILE
--out FILE` is one rank: it joins the gloo process group, runs `harness.run_rank`, and rank 0
writes the results as JSON. `run_comparison` starts all ranks and returns rank 0's results.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

from .harness import BenchConfig

ROOT = Path(__file__).resolve().parents[2]


def _rank_main(args: argparse.Namespace) -> None:
    import torch.distributed as dist

    from .harness import run_rank

    cfg = BenchConfig.model_validate_json(Path(args.config).read_text())
    dist.init_process_group("gloo", init_method=f"tcp://{args.master}:{args.port}",
                            rank=args.rank, world_size=args.world,
                            timeout=timedelta(seconds=args.timeout))
    try:
        result = run_rank(cfg)
        if result is not None:
            Path(args.out).write_text(json.dumps(result))
    finally:
        dist.destroy_process_group()


def run_comparison(cfg: BenchConfig, hosts: int, rate: str | None, delay: str = "0ms",
                   port: int = 29731, timeout_s: float = 1800) -> dict:
    """Run the comparison on `hosts` ranks: in an EmulatedCluster with links shaped to `rate`
    (root), or, with rate None, as plain processes on 127.0.0.1. Returns rank 0's results."""
    workdir = Path(tempfile.mkdtemp(prefix="wow-comm-"))
    config_file, out_file = workdir / "config.json", workdir / "result.json"
    config_file.write_text(cfg.model_dump_json())
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))

    def argv(rank: int, master: str) -> list[str]:
        return [sys.executable, "-m", "benchmarks.comm.launch", "--rank", str(rank),
                "--world", str(hosts), "--master", master, "--port", str(port),
                "--config", str(config_file), "--out", str(out_file),
                "--timeout", str(int(timeout_s))]

    if rate is None:
        procs = [subprocess.Popen(argv(r, "127.0.0.1"), env=env, cwd=ROOT) for r in range(hosts)]
        _wait_all(procs, timeout_s)
    else:
        from benchmarks.emulated_cluster import EmulatedCluster

        with EmulatedCluster(hosts, rate=rate, delay=delay) as cluster:
            master = cluster.hosts[0].ip
            procs = [cluster.popen(r, argv(r, master), env=env, cwd=ROOT) for r in range(hosts)]
            _wait_all(procs, timeout_s)
    result = json.loads(out_file.read_text())
    result["network_spec"] = {"hosts": hosts, "rate": rate, "delay": delay}
    for path in (config_file, out_file):
        path.unlink(missing_ok=True)
    workdir.rmdir()
    return result


def _wait_all(procs: list[subprocess.Popen], timeout_s: float) -> None:
    try:
        for proc in procs:
            if proc.wait(timeout=timeout_s) != 0:
                raise RuntimeError(f"a benchmark rank exited with {proc.returncode}")
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description="one rank of the communication benchmark")
    parser.add_argument("--rank", type=int, required=True)
    parser.add_argument("--world", type=int, required=True)
    parser.add_argument("--master", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--config", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--timeout", type=int, default=1800)
    _rank_main(parser.parse_args())


if __name__ == "__main__":
    main()
