"""Held-out validation of the performance model: constants from some runs, predictions for others.

The model of one run needs the workload's compute profile and the cluster's constants. The
profile is the held-out run's own compute-alone measurement (a user profiles a model on one
machine, without a network). The constants come only from the calibration runs:

- link efficiency: measured bandwidth (fitted gloo all-reduces) over the nominal `tc` rate;
- alpha: seconds per ring step, less the run's configured one-way delay (a held-out run with a
  delay gets alpha + its delay);
- comm_slowdown: how much slower the compute runs while communication is in flight (CPU);
- native_factor: gloo's reduce-scatter + all-gather against an all-reduce (FSDP2), measured
  in each calibration run (`harness.measure_native_factor`).

Medians over the calibration runs. Nothing measured while a held-out run communicated enters
its prediction, and errors are reported for held-out runs only.
"""

from __future__ import annotations

import re
import statistics

from pydantic import BaseModel

from . import perfmodel, report


class Calibration(BaseModel):
    runs: list[str]
    link_efficiency: float
    alpha_s: float
    comm_slowdown: float
    native_factor: float


def run_key(result: dict) -> str:
    """The run as bench_comm.py's --run spells it: MODEL:RATE[:DELAY]."""
    model = result["config"]["model"]
    name = model["name"] + ("-sliced" if model.get("head_slices", 1) > 1 else "")
    spec = result.get("network_spec", {})
    key = f"{name}:{spec.get('rate') or 'loopback'}"
    delay = spec.get("delay", "0ms")
    return key if _seconds(delay) == 0 else f"{key}:{delay}"


def _seconds(delay: str | None) -> float:
    """'0.1ms', '2us', '0' in seconds."""
    match = re.fullmatch(r"([\d.]+)\s*(s|ms|us)?", (delay or "0").strip())
    if not match:
        raise ValueError(f"unknown delay {delay!r}")
    return float(match.group(1)) * {"s": 1, "ms": 1e-3, "us": 1e-6, None: 1e-3}[match.group(2)]


def calibrate(results: list[dict], keys: list[str]) -> Calibration:
    """The cluster constants from the runs named by `keys` (run_key spelling)."""
    chosen = [r for r in results if run_key(r) in keys]
    missing = set(keys) - {run_key(r) for r in chosen}
    if missing or not chosen:
        raise ValueError(f"calibration runs not among the results: {sorted(missing) or keys}")
    efficiency, alpha, slowdown, native = [], [], [], []
    for result in chosen:
        facts = report.run_facts(result)
        rate = report.rate_bytes_per_s(result.get("network_spec", {}).get("rate"))
        if rate is None:
            raise ValueError(f"{run_key(result)}: a loopback run has no nominal rate")
        efficiency.append(1 / facts["net"].beta / rate)
        alpha.append(max(0.0, facts["net"].alpha
                         - _seconds(result["network_spec"].get("delay"))))
        slowdown.append(facts["workload"].comm_slowdown)
        native.append(facts["net"].native_factor)
    return Calibration(runs=[run_key(r) for r in chosen],
                       link_efficiency=statistics.median(efficiency),
                       alpha_s=statistics.median(alpha),
                       comm_slowdown=statistics.median(slowdown),
                       native_factor=statistics.median(native))


def model_inputs(result: dict, calibration: Calibration) -> dict:
    """report.method_rows' `model`: this run's compute profile with the calibrated constants;
    `held_out` False for a calibration run (its error is not reported)."""
    facts = report.run_facts(result)
    spec = result.get("network_spec", {})
    rate = report.rate_bytes_per_s(spec.get("rate"))
    if rate is None:
        raise ValueError(f"{run_key(result)}: a loopback run has no nominal rate")
    net = perfmodel.Network(name="calibrated",
                            alpha=calibration.alpha_s + _seconds(spec.get("delay")),
                            beta=1 / (rate * calibration.link_efficiency),
                            native_factor=calibration.native_factor)
    workload = facts["workload"].model_copy(update={"comm_slowdown": calibration.comm_slowdown})
    return {"workload": workload, "net": net,
            "held_out": run_key(result) not in calibration.runs}


def markdown(results: list[dict], calibration: Calibration | None) -> str:
    """The calibration, then per held-out run and method: measured, predicted, error."""
    if calibration is None:
        return "No run has a nominal link rate (loopback only): nothing is validated here."
    c = calibration
    lines = [f"Calibrated on {', '.join(c.runs)}: link efficiency {c.link_efficiency:.2f} of "
             f"the nominal rate, alpha {1e3 * c.alpha_s:.3f} ms per ring step (plus a run's "
             f"delay), compute {c.comm_slowdown:.2f}x slower under communication, gloo's "
             f"reduce-scatter + all-gather {c.native_factor:.2f}x an all-reduce.", "",
             "| held-out run | method | measured s | predicted s | error |",
             "| --- | --- | ---: | ---: | ---: |"]
    results = [r for r in results if r.get("network_spec", {}).get("rate")]
    models = [model_inputs(r, c) for r in results]
    for result, model in zip(results, models, strict=True):
        if not model["held_out"]:
            continue
        for row in report.method_rows(result, model):
            if row.model_error is not None:
                lines.append(f"| {run_key(result)} | {report.method_label(result, row.method)} "
                             f"| {row.median_s:.3f} | {row.predicted_s:.3f} "
                             f"| {100 * row.model_error:+.0f}% |")
    if not any(m["held_out"] for m in models):
        return "\n".join(lines[:1] + ["", "No run was held out."])
    return "\n".join([*lines, "", "Held out only: " + report.validation_summary(results, models)])


def calibrated_models(results: list[dict],
                      calibration_runs: list[str] | None) -> tuple[Calibration | None, list]:
    """The calibration (from `calibration_runs`, default the first run with a nominal rate)
    and each run's model inputs. Loopback runs have no nominal rate: they get their own
    measured constants and no error (nothing is held out for them)."""
    shaped = [r for r in results if r.get("network_spec", {}).get("rate")]
    calibration = (calibrate(shaped, calibration_runs or [run_key(shaped[0])])
                   if shaped else None)
    models = []
    for result in results:
        if calibration is not None and result.get("network_spec", {}).get("rate"):
            models.append(model_inputs(result, calibration))
        else:
            models.append({**report.run_facts(result), "held_out": False})
    return calibration, models
