"""The comparison's report: per method and run, times, throughput, speedup over DDP, the gap to
the lower bound and the performance model's prediction; a markdown table and a PNG chart; and
the model's predictions at cluster scale (ResNet-50 and BERT-base, 32 and 64 GPUs)."""

from __future__ import annotations

import re
import statistics
from pathlib import Path

from pydantic import BaseModel

from . import perfmodel
from .shapes import survey_workload

LABELS = {"bsp": "BSP", "wfbp": "WFBP", "mgwfbp": "MG-WFBP", "ddp": "DDP (25 MB)",
          "fsdp2": "FSDP2", "dear": "DeAR (fixed)", "dear_tuned": "DeAR (tuned)"}
GLOO_NATIVE_FACTOR = 2.0  # gloo's reduce-scatter / all-gather vs a ring half (docs/design.md)
# Survey, 32 GPUs on 10GbE (arXiv 2005.13247), samples/s
SURVEY_32_10GBE = {"resnet50": {"bsp": 4920.8, "wfbp": 5113.2, "mgwfbp": 6883.6},
                   "bert_base": {"bsp": 1926.6, "wfbp": 2013.4, "mgwfbp": 1925.8}}
# Networks of the prediction. 10GbE: 9.4 Gbit/s of TCP goodput; 15 us per ring step, the one
# value fitted to the survey (its ResNet-50 WFBP rate on 32 GPUs; the other five survey numbers
# are then predictions). 100Gb InfiniBand: 11.5 GB/s (NCCL's bus bandwidth on EDR), 5 us per
# step (an assumption: nothing here measures it).
CLUSTER_NETWORKS = {
    "10GbE": perfmodel.Network(name="10GbE", alpha=15e-6, beta=1 / (9.4e9 / 8)),
    "100Gb IB": perfmodel.Network(name="100Gb IB", alpha=5e-6, beta=1 / 11.5e9),
}


class MethodRow(BaseModel):
    method: str
    median_s: float
    min_s: float
    max_s: float
    iterations: int
    samples_per_s: float
    speedup_vs_ddp: float | None
    round_speedup_vs_ddp: float | None = None
    gap_to_bound: float
    predicted_s: float | None
    model_error: float | None
    bucket_mb: float | None = None


def rate_bytes_per_s(rate: str | None) -> float | None:
    """tc's rate ('1gbit', '400mbit') in bytes per second; None if unshaped."""
    if rate is None:
        return None
    match = re.fullmatch(r"([\d.]+)\s*([kmg]?)bit", rate.lower())
    if not match:
        raise ValueError(f"unknown rate {rate!r}")
    scale = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}[match.group(2)]
    return float(match.group(1)) * scale / 8


def run_facts(result: dict) -> dict:
    """Compute time, communication time at the link's bandwidth, the bound, the model inputs."""
    p = result["world"]
    workload = perfmodel.Workload.model_validate(result["workload"])
    net = perfmodel.Network.model_validate(
        {**result["network"], "native_factor": GLOO_NATIVE_FACTOR})
    compute = statistics.median(result["compute_times"])
    spec = result.get("network_spec", {})
    link = rate_bytes_per_s(spec.get("rate"))
    beta = 1 / link if link else net.beta
    comm = 2 * (p - 1) / p * workload.model_bytes * beta
    # The model's compute is the profile's; scale it to the timed compute-only runs (the
    # profile's hooks add a little) so both describe the same iterations.
    scale = compute / workload.compute if workload.compute else 1.0
    scaled = workload.model_copy(update={
        "tensors": [t.model_copy(update={"fwd_s": t.fwd_s * scale, "bwd_s": t.bwd_s * scale})
                    for t in workload.tensors],
        "update_s": workload.update_s * scale})
    return {"p": p, "workload": scaled, "net": net, "compute_s": compute, "comm_s": comm,
            "bound_s": max(compute, comm), "batch": result["config"]["model"]["batch"]}


def _rounds(result: dict, times: list[float]) -> list[list[float]]:
    """A method's times cut into the rounds they were measured in (harness.run_rank's split)."""
    cfg = result["config"]
    rounds, iters = cfg.get("rounds", 1), cfg.get("iters", len(times))
    if len(times) != iters:
        return [times]
    out, start = [], 0
    for r in range(rounds):
        share = iters // rounds + (r < iters % rounds)
        out.append(times[start:start + share])
        start += share
    return out


def _round_speedup(result: dict, method: str) -> float | None:
    """Median over rounds of DDP's median / this method's median in the same round: methods
    of one round ran minutes apart, rounds up to an hour, so this ratio suffers less from the
    shared machine's drifting load than the ratio of overall medians."""
    if "ddp" not in result["methods"]:
        return None
    ours = _rounds(result, result["methods"][method]["times"])
    ddp = _rounds(result, result["methods"]["ddp"]["times"])
    if len(ours) != len(ddp):
        return None
    return statistics.median(statistics.median(d) / statistics.median(o)
                             for o, d in zip(ours, ddp, strict=True) if o and d)


def method_rows(result: dict) -> list[MethodRow]:
    facts = run_facts(result)
    p, batch = facts["p"], facts["batch"]
    medians = {m: statistics.median(v["times"]) for m, v in result["methods"].items()}
    rows = []
    for method, data in result["methods"].items():
        med = medians[method]
        predicted = None
        if method != "mgwfbp" or result.get("mg_groups") is not None:
            predicted = perfmodel.predict(
                method, facts["workload"], facts["net"], p,
                bucket_mb=data.get("bucket_mb", result["config"]["bucket_mb"]),
                mg_groups=_mg_tensor_groups(result, facts["workload"]))
            if method == "dear_tuned":  # the size the tuner chose, as measured
                predicted = perfmodel.predict("dear", facts["workload"], facts["net"], p,
                                              bucket_mb=data["bucket_mb"])
        rows.append(MethodRow(
            method=method, median_s=med, min_s=min(data["times"]), max_s=max(data["times"]),
            iterations=len(data["times"]), samples_per_s=p * batch / med,
            speedup_vs_ddp=medians["ddp"] / med if "ddp" in medians else None,
            round_speedup_vs_ddp=_round_speedup(result, method),
            gap_to_bound=med / facts["bound_s"] - 1, predicted_s=predicted,
            model_error=None if predicted is None else predicted / med - 1,
            bucket_mb=data.get("bucket_mb")))
    return rows


def _mg_tensor_groups(result: dict, workload: perfmodel.Workload) -> list[list[int]] | None:
    """The MG-WFBP groups the run used (parameter positions) as workload tensor indices."""
    groups = result.get("mg_groups")
    if groups is None:
        return None
    names = result.get("param_names")
    if names is None:
        return None
    index = {t.name: i for i, t in enumerate(workload.tensors)}
    return [[index[names[i]] for i in g] for g in groups]


def run_title(result: dict) -> str:
    spec = result.get("network_spec", {})
    model = result["config"]["model"]
    link = spec.get("rate") or "loopback"
    delay = spec.get("delay", "0ms")
    name = model["name"]
    if model.get("head_slices", 1) > 1:
        name += f" (head in {model['head_slices']} slices)"
    return (f"{name}, {result['world']} hosts, {link}"
            + (f" + {delay} latency" if delay not in ("0ms", "0") else ""))


def markdown_run(result: dict) -> str:
    facts = run_facts(result)
    mb = facts["workload"].model_bytes / 2**20
    lines = [
        f"**{run_title(result)}**: {mb:.1f} MB of fp32 gradients, batch {facts['batch']} per "
        f"host; compute alone {facts['compute_s']:.3f} s per iteration, one all-reduce at the "
        f"link's bandwidth {facts['comm_s']:.3f} s (communication / compute = "
        f"{facts['comm_s'] / facts['compute_s']:.2f}); lower bound {facts['bound_s']:.3f} s; "
        f"measured alpha {facts['net'].alpha * 1e3:.3f} ms/step, "
        f"{1 / facts['net'].beta / 1e6:.0f} MB/s; compute under communication "
        f"{facts['workload'].comm_slowdown:.2f}x slower; load average at the end "
        f"{result['loadavg_end'][0]:.1f}; {result['duration_s'] / 60:.1f} min."
        + (f" DeAR's Bayesian tuning ran {result['config']['tune_trials']} trials in "
           f"{result['methods']['dear_tuned']['tuning_s']:.0f} s before its timed iterations; "
           "later rounds reuse the size it chose."
           if "tuning_s" in result["methods"].get("dear_tuned", {}) else ""),
        "",
        "| method | median s | min s | max s | samples/s | speedup vs DDP | per-round speedup "
        "| gap to bound | model s | model error |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in method_rows(result):
        label = LABELS.get(row.method, row.method)
        if row.bucket_mb is not None and row.method == "dear_tuned":
            label += f", {row.bucket_mb:.3g} MB"
        lines.append(
            f"| {label} | {row.median_s:.3f} | {row.min_s:.3f} | {row.max_s:.3f} "
            f"| {row.samples_per_s:.1f} | "
            + (f"{row.speedup_vs_ddp:.2f}x" if row.speedup_vs_ddp else "-") + " | "
            + (f"{row.round_speedup_vs_ddp:.2f}x" if row.round_speedup_vs_ddp else "-")
            + f" | {100 * row.gap_to_bound:+.0f}% | "
            + (f"{row.predicted_s:.3f} | {100 * row.model_error:+.0f}%"
               if row.predicted_s is not None else "- | -") + " |")
    return "\n".join(lines)


def validation_summary(results: list[dict]) -> str:
    errors = [(run_title(r), row.method, row.model_error) for r in results
              for row in method_rows(r) if row.model_error is not None]
    if not errors:
        return "No method could be predicted."
    absolute = [abs(e) for _, _, e in errors]
    within = sum(a <= 0.15 for a in absolute)
    worst = max(errors, key=lambda e: abs(e[2]))
    return (f"Model error over {len(errors)} (run, method) pairs: median "
            f"{100 * statistics.median(absolute):.0f}%, mean {100 * statistics.mean(absolute):.0f}%, "
            f"{within} of {len(errors)} within 15%; worst {100 * worst[2]:+.0f}% "
            f"({LABELS.get(worst[1], worst[1])}, {worst[0]}).")


def chart(results: list[dict], path: Path) -> None:
    """One panel per run: samples/s per method, the lower bound's throughput as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(5.5 * len(results), 4), squeeze=False)
    for ax, result in zip(axes[0], results, strict=True):
        rows = method_rows(result)
        facts = run_facts(result)
        labels = [LABELS.get(r.method, r.method) for r in rows]
        values = [r.samples_per_s for r in rows]
        colors = ["tab:red" if r.method.startswith("dear") else
                  "tab:gray" if r.method == "ddp" else "tab:blue" for r in rows]
        ax.barh(labels, values, color=colors)
        ax.errorbar(values, labels, xerr=[[v - facts["p"] * facts["batch"] / r.max_s
                                           for v, r in zip(values, rows, strict=True)],
                                          [facts["p"] * facts["batch"] / r.min_s - v
                                           for v, r in zip(values, rows, strict=True)]],
                    fmt="none", ecolor="black", capsize=3)
        ax.axvline(facts["p"] * facts["batch"] / facts["bound_s"], color="black",
                   linestyle="--", label="lower bound")
        ax.invert_yaxis()
        ax.set_xlabel("samples/s (median; bars: min-max)")
        ax.set_title(run_title(result), fontsize=9)
        fastest = min(facts["bound_s"], *(r.min_s for r in rows))  # seconds per iteration
        top = facts["p"] * facts["batch"] / fastest
        ax.set_xlim(0, top * 1.35)  # room on the right for the legend, clear of the bars
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def cluster_predictions(workers: int = 64) -> str:
    """The model at cluster scale: samples/s per method for ResNet-50 and BERT-base on 10GbE
    and 100Gb InfiniBand (NCCL: native collectives at ring cost), DeAR over the best other."""
    methods = ["bsp", "wfbp", "mgwfbp", "ddp", "fsdp2", "dear", "dear_tuned"]
    head = ["model", "network", *[LABELS[m] for m in methods], "lower bound",
            "DeAR tuned vs best other", "vs best of BSP/WFBP/MG-WFBP", "tuned bucket"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for model in ("resnet50", "bert_base"):
        w = survey_workload(model)
        for net in CLUSTER_NETWORKS.values():
            rate = {m: workers * w.batch / perfmodel.predict(m, w, net, workers)
                    for m in methods}
            best_other = max(v for m, v in rate.items() if not m.startswith("dear"))
            best_survey = max(rate[m] for m in ("bsp", "wfbp", "mgwfbp"))
            bound = workers * w.batch / perfmodel.lower_bound(w, net, workers)
            lines.append("| " + " | ".join(
                [model, net.name, *[f"{rate[m]:.0f}" for m in methods], f"{bound:.0f}",
                 f"{100 * (rate['dear_tuned'] / best_other - 1):+.0f}%",
                 f"{100 * (rate['dear_tuned'] / best_survey - 1):+.0f}%",
                 f"{perfmodel.best_dear_bucket(w, net, workers):g} MB"]) + " |")
    return "\n".join(lines)


def survey_comparison() -> str:
    """The model at the survey's 32 GPUs on 10GbE against its measured samples/s."""
    lines = ["| model | method | survey samples/s | model samples/s | model / survey |",
             "| --- | --- | ---: | ---: | ---: |"]
    net = CLUSTER_NETWORKS["10GbE"]
    for model, measured in SURVEY_32_10GBE.items():
        w = survey_workload(model)
        for method, value in measured.items():
            predicted = 32 * w.batch / perfmodel.predict(method, w, net, 32)
            lines.append(f"| {model} | {LABELS[method]} | {value:.1f} | {predicted:.1f} "
                         f"| {predicted / value:.2f} |")
        best = max(measured.values())
        dear = 32 * w.batch / perfmodel.predict("dear_tuned", w, net, 32)
        bound = 32 * w.batch / perfmodel.lower_bound(w, net, 32)
        lines.append(f"| {model} | DeAR (tuned), model only | - | {dear:.1f} "
                     f"| {dear / best:.2f} of the survey's best |")
        lines.append(f"| {model} | lower bound | - | {bound:.1f} "
                     f"| {bound / best:.2f} of the survey's best |")
    return "\n".join(lines)


def latency_predictions(result: dict, delays_ms: tuple[float, ...] = (0.1, 1.0)) -> str:
    """The validated model of one emulated run with one-way latency added to every ring step
    (what netem would add; this machine's kernel has no netem), samples/s per method."""
    facts = run_facts(result)
    methods = list(result["methods"])
    lines = ["| added latency | " + " | ".join(LABELS[m] for m in methods) + " |",
             "|" + " --- |" * (len(methods) + 1)]
    for delay in (0.0, *delays_ms):
        net = facts["net"].model_copy(update={"alpha": facts["net"].alpha + delay / 1e3})
        cells = []
        for m in methods:
            bucket = result["methods"][m].get("bucket_mb", 25.0)
            seconds = perfmodel.predict("dear" if m == "dear_tuned" else m, facts["workload"],
                                        net, facts["p"], bucket_mb=bucket)
            cells.append(f"{facts['p'] * facts['batch'] / seconds:.2f}")
        lines.append(f"| {delay:g} ms | " + " | ".join(cells) + " |")
    return "\n".join(lines)
