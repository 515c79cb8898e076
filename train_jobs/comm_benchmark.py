"""The communication-scheduler comparison on a Ray cluster's workers (issue 6).

    ray job submit --working-dir . -- python -m train_jobs.comm_benchmark --workers 4 \
        --model gpt --iters 20 --out /shared/comm-report

A Ray Train `TorchTrainer` starts one worker per node (`STRICT_SPREAD`, so every collective
crosses the network) and Ray Train joins them in one torch.distributed group (gloo on CPU,
`GLOO_SOCKET_IFNAME` as the nodes need, docs/design.md); each worker then runs exactly what a host
of the emulated cluster runs (`benchmarks/comm/harness.py`: profile, alpha-beta, every
scheduler in turn), and the driver writes the same report (report.md, comm.png,
results.json) into `--out`. `--small` is a tiny, fast configuration for tests; `--spread
PACK` runs the workers on one node (a laptop's local Ray).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from benchmarks.comm.harness import BenchConfig
from benchmarks.comm.models import ModelSpec

RESULT_FILE = "comm_benchmark.json"
SMALL = {"model": ModelSpec(name="gpt", width=32, layers=1, vocab=128, seq_len=16, batch=2),
         "iters": 2, "warmup": 1, "rounds": 1, "profile_iters": 1,
         "tune_trials": 2, "tune_warmup_iters": 0, "tune_iters_per_trial": 1,
         "allreduce_sizes": [2**12, 2**16, 2**18], "allreduce_repeats": 1}


def train_loop(config: dict) -> None:
    """One Ray Train worker: the harness, on the process group Ray Train made. Rank 0's results
    travel as a checkpoint (Ray Train keeps reported metrics only with one), so they reach the
    driver through the run's storage, from whichever node rank 0 ran on."""
    import tempfile

    import ray.train

    from benchmarks.comm.harness import run_rank

    result = run_rank(BenchConfig.model_validate(config["bench"]))
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = None
        if result is not None:
            (Path(folder) / RESULT_FILE).write_text(json.dumps(result))
            checkpoint = ray.train.Checkpoint.from_directory(folder)
        ray.train.report({"rank0": result is not None}, checkpoint=checkpoint)


def run(cfg: BenchConfig, workers: int, strategy: str = "STRICT_SPREAD",
        storage: str | None = None) -> dict:
    """Run the comparison on `workers` Ray Train workers; rank 0's results."""
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    trainer = TorchTrainer(
        train_loop,
        train_loop_config={"bench": cfg.model_dump()},
        torch_config=TorchConfig(backend="gloo"),
        scaling_config=ScalingConfig(num_workers=workers, use_gpu=False,
                                     placement_strategy=strategy),
        run_config=RunConfig(storage_path=storage, name="comm_benchmark"),
    )
    outcome = trainer.fit()
    if outcome.error is not None:
        raise outcome.error
    with outcome.checkpoint.as_directory() as folder:
        result = json.loads((Path(folder) / RESULT_FILE).read_text())
    result["network_spec"] = {"hosts": workers, "rate": None, "delay": "0ms",
                              "where": f"Ray Train, {strategy}"}
    return result


def main(argv: list[str] | None = None) -> Path:
    from benchmarks.bench_comm import MODELS, build_report

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--model", choices=sorted(MODELS), default="gpt")
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--methods", nargs="+")
    parser.add_argument("--spread", default="STRICT_SPREAD",
                        help="placement strategy of the workers (PACK on one machine)")
    parser.add_argument("--small", action="store_true", help="a tiny, fast configuration")
    parser.add_argument("--storage", help="Ray Train storage_path (default: Ray's)")
    parser.add_argument("--out", type=Path, default=Path("comm_report"))
    args = parser.parse_args(argv)
    fields = dict(SMALL) if args.small else {"model": MODELS[args.model], "iters": args.iters}
    if args.methods:
        fields["methods"] = args.methods
    result = run(BenchConfig(**fields), args.workers, args.spread, args.storage)
    args.out.mkdir(parents=True, exist_ok=True)
    command = " ".join(["python -m train_jobs.comm_benchmark", *(argv or sys.argv[1:])])
    (args.out / "results.json").write_text(json.dumps({"command": command,
                                                       "results": [result]}))
    build_report([result], args.out, command)
    print((args.out / "report.md").read_text())
    return args.out


if __name__ == "__main__":
    main()
