"""Communication schedulers side by side on an emulated cluster (issues 6 and 17), and the report.

Each `--run MODEL:RATE[:DELAY]` builds an emulated cluster of `--hosts` network namespaces with
links shaped to RATE (tc syntax; `loopback` for plain processes), runs BSP, WFBP, MG-WFBP,
DDP, FSDP2 and DeAR, fixed and with their fusion knobs tuned by one search, on the same
model, batch and network (benchmarks/comm/harness.py), and then writes, in `--out`:
results.json (everything measured), report.md (the tables, the model's held-out validation
and its predictions at the published settings) and comm.png (the chart); with `--readme`,
the same report replaces the section "Fair comparison (issue 17)" of benchmarks/README.md.
Needs root for namespaces.

    flock /tmp/wow-bench.lock python benchmarks/bench_comm.py --hosts 4 \
        --run gpt-sliced:300mbit --run resnet:200mbit --calibrate gpt-sliced:300mbit --readme
    python benchmarks/bench_comm.py --report-only --readme   # rewrite from results.json"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.comm import published, report, validation  # noqa: E402
from benchmarks.comm.harness import BenchConfig  # noqa: E402
from benchmarks.comm.models import ModelSpec  # noqa: E402
from benchmarks.report import write_section  # noqa: E402

HEADING = "## Fair comparison (issue 17)"  # the issue 6 section keeps its first numbers
# The models' sizes for the benchmark: small enough that 4 processes on 2 cores finish an
# iteration in about a second, large enough that gradients take tens of MB.
GPT = ModelSpec(name="gpt", width=384, layers=4, vocab=8192, seq_len=128, batch=4)
MODELS = {
    "gpt": GPT,
    "gpt-sliced": GPT.model_copy(update={"head_slices": 8}),
    "resnet": ModelSpec(name="resnet", width=32, layers=1, image_size=32, batch=16),
}


def parse_run(text: str) -> tuple[str, str | None, str]:
    parts = text.split(":")
    if parts[0] not in MODELS or len(parts) not in (2, 3):
        raise argparse.ArgumentTypeError(f"--run MODEL:RATE[:DELAY], MODEL in {list(MODELS)}")
    rate = None if parts[1] == "loopback" else parts[1]
    return parts[0], rate, parts[2] if len(parts) == 3 else "0ms"


def build_report(results: list[dict], out: Path, command: str, image: str = "comm.png",
                 calibration_runs: list[str] | None = None) -> str:
    """report.md's text (also the README section's body); writes the chart beside it. The
    model is calibrated on `calibration_runs` (run keys, default the first run) and its error
    is reported on the other runs only."""
    report.chart(results, out / "comm.png")
    calibration, models = validation.calibrated_models(results, calibration_runs)
    lines = [
        "Ten schedulers train the same model on the same emulated cluster in one run "
        "(`benchmarks/bench_comm.py`; each host a network namespace, links shaped by `tc`): "
        "BSP, WFBP (per-tensor all-reduce as gradients arrive), MG-WFBP (merging decided by "
        "the alpha-beta model with alpha and beta measured on the link), PyTorch DDP (25 MB "
        "buckets, `gradient_as_bucket_view`, buffers broadcast only if the model has "
        "any), FSDP2 (`fully_shard` per block, parameters kept after forward), DeAR with "
        "fixed 25 MB buckets, and, tuned by the same Bayesian search (the tuner DeAR uses, "
        "the same trials and iterations per trial, tuning excluded from the timing): DeAR's "
        "bucket size, DDP's `bucket_cap_mb`, MG-WFBP's merge cut-off and FSDP2's unit size "
        "(consecutive blocks per `fully_shard`). gloo on CPU, one thread per process, SGD "
        "with momentum. Iteration time is measured from one step's end to the next (DeAR's "
        "all-gathers overlap the next forward), over the iterations after warm-up, in rounds "
        "that visit every method in turn. Lower bound: max(compute alone, one ring "
        "all-reduce's bytes at the link's nominal rate). The headline of each run is DeAR "
        "(tuned) against the fastest other scheduler; `model s` is the performance model "
        "calibrated on other runs (below), with its error only for held-out runs.",
        "",
        "Command (root, repository root):",
        "",
        "```",
        command,
        "```",
        "",
    ]
    for result, model in zip(results, models, strict=True):
        lines += [report.markdown_run(result, model), ""]
    lines += [
        f"![schedulers]({image})",
        "",
        "### Performance model: held-out validation",
        "",
        "`benchmarks/comm/perfmodel.py` predicts each scheduler's iteration from a per-tensor "
        "compute profile (forward and backward times, measured on every host at once without "
        "communication, scaled to the compute-only runs) and the cluster's constants, which "
        "come only from the calibration runs (`benchmarks/comm/validation.py`): the link's "
        "efficiency against its nominal rate and its per-step latency (gloo all-reduces of "
        "4 KB to 16 MB, fitted), how much slower compute runs while communication is in "
        "flight (two cores here), and gloo's reduce-scatter + all-gather against an "
        "all-reduce (FSDP2's collectives), measured in the run. error = model / measured - 1.",
        "",
        validation.markdown(results, calibration),
        "",
        "The model of the first run (its own measured constants) with one-way latency added "
        f"to every ring step, tuned methods re-tuned for it ({report.run_title(results[0])}), "
        "samples/s:",
        "",
        report.latency_predictions(results[0]),
        "",
        "### Performance model at the published settings",
        "",
        "ResNet-50 and BERT-base parameter shapes (25,557,032 and 109,482,240 parameters, "
        "generated from the architectures), fp32 gradients, batch 64 per GPU; compute per "
        "iteration = batch / single-GPU samples/s from the survey (253.1 and 212.8), one third "
        "forward and two thirds backward, spread over layers by FLOPs "
        "(`benchmarks/comm/shapes.py`). NCCL ring collectives (native reduce-scatter and "
        "all-gather at ring cost), compute not slowed by communication. 10GbE: 9.4 Gbit/s, "
        f"alpha {published.CLUSTER_NETWORKS['10GbE'].alpha * 1e6:.0f} us per ring step "
        "(fitted to one survey number, ResNet-50 WFBP at 32 GPUs; the other survey numbers "
        "are predictions); 100Gb InfiniBand: 11.5 GB/s, alpha "
        f"{published.CLUSTER_NETWORKS['100Gb IB'].alpha * 1e6:.0f} us (assumed). Every "
        "scheduler with a knob at its best knob. Samples/s, with the published numbers "
        "beside them:",
        "",
        published.cluster_predictions(),
        "",
        "The survey's measured samples/s (32 GPUs, 10GbE) against the model:",
        "",
        published.survey_comparison(),
    ]
    text = "\n".join(lines)
    (out / "report.md").write_text(f"# Communication schedulers\n\n{text}\n")
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="append", type=parse_run, default=[],
                        help="MODEL:RATE[:DELAY], MODEL one of " + ", ".join(MODELS)
                        + " (gpt-sliced: the GPT with its output head in 8 vocabulary "
                        "slices); e.g. gpt-sliced:300mbit or resnet:1gbit:0.1ms (a delay: "
                        "netem, or a userspace delay line where the kernel lacks it); "
                        "repeat for several runs")
    parser.add_argument("--hosts", type=int, default=4)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--methods", nargs="+")
    parser.add_argument("--tune-trials", type=int, default=8,
                        help="DeAR tuned: bucket sizes the Bayesian optimisation tries")
    parser.add_argument("--tune-iters-per-trial", type=int, default=2)
    parser.add_argument("--merge", type=Path, nargs="+", default=[],
                        help="with --report-only: also report the runs of these results.json")
    parser.add_argument("--calibrate", nargs="+", metavar="MODEL:RATE[:DELAY]",
                        help="runs whose measured constants calibrate the performance model "
                        "(default: the first run); the model's error is reported on the "
                        "other runs only")
    parser.add_argument("--out", type=Path,
                        default=ROOT / "benchmarks" / "results" / "comm-fair")
    parser.add_argument("--readme", action="store_true",
                        help="also replace the section in benchmarks/README.md")
    parser.add_argument("--report-only", action="store_true",
                        help="rewrite the report from OUT/results.json")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    results_file = args.out / "results.json"
    if args.report_only:
        saved = json.loads(results_file.read_text())
        results, command = saved["results"], saved["command"]
        for other in args.merge:  # runs made by separate invocations, reported together
            extra = json.loads(other.read_text())
            results += extra["results"]
            command += "\n" + extra["command"]
        if args.merge:  # keep the merged runs, and how they were merged, in results.json
            command += "\n" + report_command()
            results_file.write_text(json.dumps({"command": command, "results": results}))
    else:
        from benchmarks.comm.launch import run_comparison

        if not args.run:
            parser.error("give at least one --run")
        command = "flock /tmp/wow-bench.lock " + report_command()
        results = []
        for model, rate, delay in args.run:
            cfg = BenchConfig(model=MODELS[model], iters=args.iters, warmup=args.warmup,
                              rounds=args.rounds, tune_trials=args.tune_trials,
                              tune_iters_per_trial=args.tune_iters_per_trial,
                              **({"methods": args.methods} if args.methods else {}))
            load = list(os.getloadavg())
            print(f"run {model} on {args.hosts} hosts, {rate or 'loopback'} {delay}; "
                  f"load average {load}", flush=True)
            result = run_comparison(cfg, args.hosts, rate, delay)
            result["loadavg_start"] = load
            results.append(result)
            results_file.write_text(json.dumps({"command": command, "results": results}))
            print(report.markdown_run(result), flush=True)
    text = build_report(results, args.out, command, calibration_runs=args.calibrate)
    print(text)
    if args.readme:
        image = args.out.resolve().relative_to(ROOT / "benchmarks") / "comm.png"
        write_section(HEADING, [build_report(results, args.out, command, str(image),
                                             args.calibrate)])


def report_command() -> str:
    return " ".join(["python benchmarks/bench_comm.py", *sys.argv[1:]])


if __name__ == "__main__":
    main()
