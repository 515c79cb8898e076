"""Fine-tuning throughput: tokens/s of the SFT job with 1 and 2 workers, DeAR against DDP.

    flock /tmp/wow-bench.lock env PYTHONPATH=. python benchmarks/bench_finetune.py \\
        [--model small|smollm2] [--steps 8] [--repeats 2]

Each case is the real job (``run_finetune``: Ray Train ``TorchTrainer``, packed rows of the
cold-start dataset, AdamW, clipping, a checkpoint-free run), full fine-tuning of a random
Llama of SmolLM2's vocabulary (``small``: width 256, 4 layers, 16 M parameters) or of
SmolLM2-135M itself. Tokens/s is the real (non-padding) tokens of all workers per second of
optimizer step, from the job's own metrics log; the first two steps of each run are warm-up
and left out; the median of the rest, then the median over repeats. DeAR and DDP alternate
within each repeat, so a change of machine load hits both. One CPU (one torch thread) per
worker: with 2 workers on this 2-core machine the cores are shared with whatever else runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.report import command_line, write_section  # noqa: E402

HEADING = "## Fine-tuning throughput (issue 7)"
MODELS = {"small": {"hidden": 256, "layers": 4, "heads": 4, "kv_heads": 2, "intermediate": 688}}


def _dataset(registry) -> str:
    from wow_ray.data import BuildConfig, build_cold_start, register_build
    from wow_ray.registry import EntryKind

    name = "bench-cold-start"
    if registry.entries(EntryKind.DATASET, name):
        return registry.get(EntryKind.DATASET, name).ref
    result = build_cold_start(BuildConfig(situations=20, seed=11, name=name))
    return register_build(registry, result)[0].ref


def _run(registry, base: str, dataset: str, workers: int, sync: str, args) -> float:
    from wow_ray.training import FinetuneConfig, run_finetune
    from wow_ray.training.metrics_log import latest_per_step, read_metrics

    config = FinetuneConfig(
        base_model=base, dataset=dataset, output_name="bench-sft", storage_path=registry.storage.root,
        synchroniser=sync, workers=workers, seq_len=args.seq_len, max_steps=args.steps,
        micro_batch_size=1, grad_accum=2 // workers, warmup_steps=1, lr=1e-4,
        checkpoint_every=10_000, eval_max_rows=1, progress=False)
    result = run_finetune(config)
    rel = result.run_path.removeprefix(registry.storage.root).strip("/")
    steps = latest_per_step(read_metrics(registry.storage, f"{rel}/metrics.jsonl"))
    rates = [m["tokens_per_s"] for s, m in sorted(steps.items()) if s > 2]
    rate = statistics.median(rates)
    print(f"workers={workers} {sync}: {rate:.1f} tokens/s (steps {[round(r) for r in rates]})",
          flush=True)
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["small", "smollm2"], default="small")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--storage", help="Storage root (default: a temporary one).")
    parser.add_argument("--no-write", action="store_true", help="Print only.")
    args = parser.parse_args()

    import ray

    from wow_ray.registry import Registry
    from wow_ray.training import register_random_llama

    storage = args.storage or tempfile.mkdtemp(prefix="wow-bench-ft-")
    registry = Registry(storage)
    ray.init(address="local", num_cpus=8, include_dashboard=False, log_to_driver=False)
    if args.model == "smollm2":
        base = "smollm2-135m"
        from wow_ray.registry import resolve_model

        params = "134.5 M"
        resolve_model(registry, base)
    else:
        entry = register_random_llama(registry, "bench-llama", **MODELS["small"])
        base, params = entry.ref, f"{entry.metadata['parameters'] / 1e6:.1f} M"
    dataset = _dataset(registry)
    load_before = os.getloadavg()
    rates: dict[tuple[int, str], list[float]] = {}
    for _ in range(args.repeats):
        for workers in (1, 2):
            for sync in ("dear", "ddp"):
                rates.setdefault((workers, sync), []).append(
                    _run(registry, base, dataset, workers, sync, args))
    load_after = os.getloadavg()
    ray.shutdown()

    med = {k: statistics.median(v) for k, v in rates.items()}
    lines = [
        f"SFT job (`run_finetune`, Ray Train) with full fine-tuning of `{args.model}` ({params} "
        f"parameters, vocabulary 49152), packed rows of {args.seq_len} tokens from the "
        "cold-start dataset, 2 rows per optimizer step in total (gradient accumulation 2 with "
        f"1 worker, 1 row per worker with 2), {args.steps} steps per run of which the first two "
        f"are warm-up, median of {args.repeats} runs per case, DeAR and DDP alternating. gloo "
        "on CPU, one torch thread per worker, on this 2-core machine.",
        "",
        "```",
        f"flock /tmp/wow-bench.lock env {command_line('bench_finetune.py')}",
        "```",
        "",
        "| workers | DeAR tokens/s | DDP tokens/s | DeAR / DDP |",
        "| --- | --- | --- | --- |",
    ]
    for workers in (1, 2):
        dear, ddp = med[(workers, "dear")], med[(workers, "ddp")]
        lines.append(f"| {workers} | {dear:.1f} | {ddp:.1f} | {dear / ddp:.2f} |")
    for sync in ("dear", "ddp"):
        lines.append("")
        lines.append(f"- {sync}: 2 workers / 1 worker = "
                     f"{med[(2, sync)] / med[(1, sync)]:.2f}")
    lines += [
        "",
        f"Load average (1, 5, 15 min) before: {', '.join(f'{x:.2f}' for x in load_before)}; "
        f"after: {', '.join(f'{x:.2f}' for x in load_after)}. Runs: "
        + "; ".join(f"{w}w {s}: {', '.join(f'{r:.0f}' for r in v)}" for (w, s), v in rates.items())
        + ".",
    ]
    print("\n".join(lines))
    if not args.no_write:
        write_section(HEADING, lines)


if __name__ == "__main__":
    main()
