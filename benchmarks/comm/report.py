"""The comparison's report: per method and run, times, throughput, speedup over DDP and over the
fastest other scheduler, the gap to the lower bound and the performance model's prediction; a
markdown table and a PNG chart. Held-out validation: validation.py; the model at cluster scale
beside published numbers: published.py."""

from __future__ import annotations

import re
import statistics
from pathlib import Path

from pydantic import BaseModel

from . import perfmodel

LABELS = {"bsp": "BSP", "wfbp": "WFBP", "mgwfbp": "MG-WFBP", "ddp": "DDP (25 MB)",
          "fsdp2": "FSDP2", "dear": "DeAR (fixed)", "dear_tuned": "DeAR (tuned)",
          "mgwfbp_tuned": "MG-WFBP (tuned)", "ddp_tuned": "DDP (tuned)",
          "fsdp2_tuned": "FSDP2 (tuned)"}
# gloo's reduce-scatter / all-gather vs a ring half (docs/design.md): only for results written
# before the harness measured it in the run (`native_factor`)
GLOO_NATIVE_FACTOR = 2.0
class MethodRow(BaseModel):
    method: str
    median_s: float
    min_s: float
    max_s: float
    iterations: int
    samples_per_s: float
    speedup_vs_ddp: float | None
    round_speedup_vs_ddp: float | None = None
    speedup_vs_best_other: float | None = None  # DeAR rows: against the fastest non-DeAR
    round_speedup_vs_best_other: float | None = None
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
        {**result["network"],
         "native_factor": result.get("native_factor", GLOO_NATIVE_FACTOR)})
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


def _round_speedup(result: dict, method: str, references: list[str]) -> float | None:
    """Median over rounds of the fastest reference's median / this method's median in the
    same round: methods of one round ran minutes apart, rounds up to an hour, so this ratio
    suffers less from the shared machine's drifting load than the ratio of overall medians."""
    references = [m for m in references if m in result["methods"]]
    if not references:
        return None
    ours = _rounds(result, result["methods"][method]["times"])
    others = [_rounds(result, result["methods"][m]["times"]) for m in references]
    if any(len(o) != len(ours) for o in others):
        return None
    ratios = [min(statistics.median(o[r]) for o in others) / statistics.median(ours[r])
              for r in range(len(ours)) if ours[r] and all(o[r] for o in others)]
    return statistics.median(ratios) if ratios else None


def best_other(result: dict) -> str | None:
    """The fastest scheduler that is not DeAR (by median), the one DeAR must beat."""
    others = {m: statistics.median(v["times"]) for m, v in result["methods"].items()
              if not m.startswith("dear")}
    return min(others, key=others.get) if others else None


def predict_as_run(result: dict, method: str, workload: perfmodel.Workload,
                   net: perfmodel.Network, p: int) -> float | None:
    """The model's seconds for `method` with the knob the run used (a tuned method at the
    value its search chose); None for MG-WFBP without its groups."""
    data = result["methods"][method]
    base = method.removesuffix("_tuned")
    groups = _mg_tensor_groups(result, workload, data.get("mg_groups", result.get("mg_groups")))
    if base == "mgwfbp" and groups is None:
        return None
    return perfmodel.predict(base, workload, net, p,
                             bucket_mb=data.get("bucket_mb", result["config"]["bucket_mb"]),
                             mg_groups=groups, unit_mb=data.get("unit_mb"))


def method_rows(result: dict, model: dict | None = None) -> list[MethodRow]:
    """Per method: times, speedups, the gap to the bound, the model's prediction. `model`
    ({"workload", "net", "held_out"}, from validation.model_inputs) replaces the run's own
    measured model inputs; the error is then given only where the run was held out."""
    facts = run_facts(result)
    p, batch = facts["p"], facts["batch"]
    inputs = model or {**facts, "held_out": True}
    medians = {m: statistics.median(v["times"]) for m, v in result["methods"].items()}
    others = [m for m in medians if not m.startswith("dear")]
    best = best_other(result)
    rows = []
    for method, data in result["methods"].items():
        med = medians[method]
        predicted = predict_as_run(result, method, inputs["workload"], inputs["net"], p)
        versus_best = method.startswith("dear") and best is not None
        rows.append(MethodRow(
            method=method, median_s=med, min_s=min(data["times"]), max_s=max(data["times"]),
            iterations=len(data["times"]), samples_per_s=p * batch / med,
            speedup_vs_ddp=medians["ddp"] / med if "ddp" in medians else None,
            round_speedup_vs_ddp=_round_speedup(result, method, ["ddp"]),
            speedup_vs_best_other=medians[best] / med if versus_best else None,
            round_speedup_vs_best_other=(_round_speedup(result, method, others)
                                         if versus_best else None),
            gap_to_bound=med / facts["bound_s"] - 1, predicted_s=predicted,
            model_error=(predicted / med - 1
                         if predicted is not None and inputs["held_out"] else None),
            bucket_mb=data.get("bucket_mb")))
    return rows


def _mg_tensor_groups(result: dict, workload: perfmodel.Workload,
                      groups: list[list[int]] | None) -> list[list[int]] | None:
    """MG-WFBP groups the run used (parameter positions) as workload tensor indices."""
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


def markdown_run(result: dict, model: dict | None = None) -> str:
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
        + (f" gloo's reduce-scatter + all-gather took {result['native_factor']:.2f}x an "
           "all-reduce of the same bytes (FSDP2's factor in the model, measured in this run)."
           if "native_factor" in result else "")
        + _tuning_sentence(result),
        "",
        "| method | median s | min s | max s | samples/s | speedup vs DDP (25 MB) "
        "| per-round speedup | vs best other (per round) | gap to bound | model s "
        "| model error |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in method_rows(result, model):
        versus = "-"
        if row.speedup_vs_best_other is not None:
            versus = f"{row.speedup_vs_best_other:.2f}x" + (
                f" ({row.round_speedup_vs_best_other:.2f}x)"
                if row.round_speedup_vs_best_other else "")
        lines.append(
            f"| {method_label(result, row.method)} | {row.median_s:.3f} | {row.min_s:.3f} "
            f"| {row.max_s:.3f} | {row.samples_per_s:.1f} | "
            + (f"{row.speedup_vs_ddp:.2f}x" if row.speedup_vs_ddp else "-") + " | "
            + (f"{row.round_speedup_vs_ddp:.2f}x" if row.round_speedup_vs_ddp else "-")
            + f" | {versus} | {100 * row.gap_to_bound:+.0f}% | "
            + ("-" if row.predicted_s is None else f"{row.predicted_s:.3f}") + " | "
            + ("not held out" if row.model_error is None and row.predicted_s is not None
               else "-" if row.model_error is None else f"{100 * row.model_error:+.0f}%")
            + " |")
    return "\n".join([*lines, "", headline(result)])


def _tuning_sentence(result: dict) -> str:
    tuned = {m: v["tuning_s"] for m, v in result["methods"].items() if "tuning_s" in v}
    if not tuned:
        return ""
    spent = ", ".join(f"{LABELS.get(m, m)} {s:.0f} s" for m, s in tuned.items())
    return (f" Tuning ({result['config']['tune_trials']} trials each, the same Bayesian search "
            f"for every tuned method, excluded from the timing): {spent}; later rounds reuse "
            "the value chosen.")


def method_label(result: dict, method: str) -> str:
    """The method's name and, for a tuned one, the knob value its search chose."""
    label = LABELS.get(method, method)
    data = result["methods"][method]
    if method in ("dear_tuned", "ddp_tuned") and data.get("bucket_mb") is not None:
        label += f", {data['bucket_mb']:.3g} MB"
    elif method == "fsdp2_tuned" and data.get("unit_mb") is not None:
        label += f", units of {data['unit_mb']:.3g} MB"
    elif method == "mgwfbp_tuned" and data.get("merge_s") is not None:
        label += f", merge below {1e3 * data['merge_s']:.3g} ms"
    return label


def headline(result: dict) -> str:
    """The run's answer in one sentence: DeAR (tuned) against the fastest other scheduler, and
    against tuned DDP (the default a user would otherwise pick)."""
    rows = {r.method: r for r in method_rows(result)}
    best, dear = best_other(result), rows.get("dear_tuned")
    if dear is None or best is None:
        return ""
    text = (f"DeAR (tuned) against the fastest other scheduler, "
            f"{method_label(result, best)}: **{dear.speedup_vs_best_other:.2f}x** by medians"
            + (f", {dear.round_speedup_vs_best_other:.2f}x per round"
               if dear.round_speedup_vs_best_other else ""))
    if "ddp_tuned" in rows:
        ddp = rows["ddp_tuned"].median_s
        per_round = _round_speedup(result, "dear_tuned", ["ddp_tuned"])
        text += (f"; against DDP (tuned): {ddp / dear.median_s:.2f}x"
                 + (f" ({per_round:.2f}x per round)" if per_round else ""))
    return text + "."


def validation_summary(results: list[dict], models: list[dict | None] | None = None) -> str:
    """The model's error over the (run, method) pairs that have one (held-out runs only when
    `models` come from a calibration)."""
    models = models or [None] * len(results)
    errors = [(run_title(r), row.method, row.model_error)
              for r, m in zip(results, models, strict=True)
              for row in method_rows(r, m) if row.model_error is not None]
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


def latency_predictions(result: dict, delays_ms: tuple[float, ...] = (0.1, 1.0)) -> str:
    """The model of one emulated run with one-way latency added to every ring step (what netem
    would add; this machine's kernel has no netem), samples/s per method."""
    facts = run_facts(result)
    methods = list(result["methods"])
    lines = ["| added latency | " + " | ".join(LABELS[m] for m in methods) + " |",
             "|" + " --- |" * (len(methods) + 1)]
    for delay in (0.0, *delays_ms):
        net = facts["net"].model_copy(update={"alpha": facts["net"].alpha + delay / 1e3})
        cells = []
        for m in methods:  # tuned methods re-tuned for the latency, as MG-WFBP re-plans
            seconds = perfmodel.predict(m, facts["workload"], net, facts["p"],
                                        bucket_mb=result["config"]["bucket_mb"])
            cells.append(f"{facts['p'] * facts['batch'] / seconds:.2f}")
        lines.append(f"| {delay:g} ms | " + " | ".join(cells) + " |")
    return "\n".join(lines)
