"""The performance model at the published settings, beside the published numbers: the survey's
(arXiv 2005.13247: 32 GPUs on 10GbE, measured samples/s) and the DeAR paper's (arXiv
2302.12445: 64 GPUs, "up to 83%" over the best other scheduler on 10GbE, "up to 15%" on 100Gb
InfiniBand; the repository keeps only these headline gains, not the paper's per-model rates).

Every scheduler with a fusion knob is predicted at its best knob (`perfmodel.knob_grid`), as
the emulated runs tune it. NCCL ring collectives: native reduce-scatter and all-gather at ring
cost (native_factor 1), and compute not slowed by communication (comm_slowdown 1, a GPU).
"""

from __future__ import annotations

from . import perfmodel
from .shapes import survey_workload

# Survey, 32 GPUs on 10GbE (arXiv 2005.13247), samples/s
SURVEY_32_10GBE = {"resnet50": {"bsp": 4920.8, "wfbp": 5113.2, "mgwfbp": 6883.6},
                   "bert_base": {"bsp": 1926.6, "wfbp": 2013.4, "mgwfbp": 1925.8}}
# DeAR paper: its best gain over the best other scheduler, per network (64 GPUs)
DEAR_PAPER_BEST_GAIN = {"10GbE": 0.83, "100Gb IB": 0.15}
# Networks of the prediction. 10GbE: 9.4 Gbit/s of TCP goodput; 15 us per ring step, the one
# value fitted to the survey (its ResNet-50 WFBP rate on 32 GPUs; the other five survey numbers
# are then predictions). 100Gb InfiniBand: 11.5 GB/s (NCCL's bus bandwidth on EDR), 5 us per
# step (an assumption: nothing here measures it).
CLUSTER_NETWORKS = {
    "10GbE": perfmodel.Network(name="10GbE", alpha=15e-6, beta=1 / (9.4e9 / 8)),
    "100Gb IB": perfmodel.Network(name="100Gb IB", alpha=5e-6, beta=1 / 11.5e9),
}
METHODS = ("bsp", "wfbp", "mgwfbp", "mgwfbp_tuned", "ddp", "ddp_tuned", "fsdp2", "dear",
           "dear_tuned")
LABELS = {"bsp": "BSP", "wfbp": "WFBP", "mgwfbp": "MG-WFBP", "mgwfbp_tuned": "MG-WFBP tuned",
          "ddp": "DDP 25 MB", "ddp_tuned": "DDP tuned", "fsdp2": "FSDP2",
          "dear": "DeAR 25 MB", "dear_tuned": "DeAR tuned"}


def rates(model: str, network: str, workers: int) -> dict[str, float]:
    """Predicted samples/s per method, and the lower bound's as "bound"."""
    w, net = survey_workload(model), CLUSTER_NETWORKS[network]
    out = {m: workers * w.batch / perfmodel.predict(m, w, net, workers) for m in METHODS}
    out["bound"] = workers * w.batch / perfmodel.lower_bound(w, net, workers)
    return out


def _published(model: str, network: str, workers: int) -> str:
    cells = []
    if workers == 32 and network == "10GbE":
        survey = SURVEY_32_10GBE[model]
        best = max(survey, key=survey.get)
        cells.append(f"survey measured: best {LABELS[best]} {survey[best]:.0f}")
    if workers == 64:
        cells.append(f"DeAR paper: up to {100 * DEAR_PAPER_BEST_GAIN[network]:+.0f}% over "
                     "the best other")
    return "; ".join(cells) or "-"


def cluster_predictions(workers: tuple[int, ...] = (32, 64)) -> str:
    """One row per model, network and cluster size: samples/s per method, the bound, DeAR
    tuned against the best other (tuned) scheduler, and what was published there."""
    head = ["model", "network", "GPUs", *[LABELS[m] for m in METHODS], "lower bound",
            "DeAR tuned vs best other", "published"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for model in SURVEY_32_10GBE:
        for network in CLUSTER_NETWORKS:
            for n in workers:
                rate = rates(model, network, n)
                best = max(v for m, v in rate.items() if m in METHODS and "dear" not in m)
                lines.append("| " + " | ".join(
                    [model, network, str(n), *[f"{rate[m]:.0f}" for m in METHODS],
                     f"{rate['bound']:.0f}", f"{100 * (rate['dear_tuned'] / best - 1):+.0f}%",
                     _published(model, network, n)]) + " |")
    return "\n".join(lines)


def survey_comparison() -> str:
    """The model at the survey's 32 GPUs on 10GbE against its measured samples/s."""
    lines = ["| model | method | survey samples/s | model samples/s | model / survey |",
             "| --- | --- | ---: | ---: | ---: |"]
    for model, measured in SURVEY_32_10GBE.items():
        rate = rates(model, "10GbE", 32)
        for method, value in measured.items():
            lines.append(f"| {model} | {LABELS[method]} | {value:.1f} | {rate[method]:.1f} "
                         f"| {rate[method] / value:.2f} |")
        best = max(measured.values())
        for key, label in (("dear_tuned", "DeAR tuned, model only"), ("bound", "lower bound")):
            lines.append(f"| {model} | {label} | - | {rate[key]:.1f} "
                         f"| {rate[key] / best:.2f} of the survey's best |")
    return "\n".join(lines)
