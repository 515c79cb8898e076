"""Held-out validation: constants from the calibration runs only, errors on the other runs only."""

from __future__ import annotations

import pytest

from benchmarks.comm import report, validation

from .test_report import _result


def _at(rate: str, delay: str = "0ms", **changes) -> dict:
    return {**_result(), "network_spec": {"hosts": 2, "rate": rate, "delay": delay}, **changes}


def test_run_keys_spell_runs_as_the_command_line_does():
    assert validation.run_key(_at("100mbit")) == "gpt:100mbit"
    sliced = _at("300mbit", "1ms")
    sliced["config"] = {**sliced["config"], "model": {"name": "gpt", "batch": 4,
                                                      "head_slices": 8}}
    assert validation.run_key(sliced) == "gpt-sliced:300mbit:1ms"


def test_calibration_takes_its_constants_from_the_calibration_runs_only():
    # measured 1e8 B/s against a nominal 12.5e6 B/s... use a consistent link: beta 1e-8 on
    # 2 ranks is 1e8 B/s; 1gbit is 1.25e8 B/s nominal: efficiency 0.8
    calibration_run = _at("1gbit", native_factor=1.7)
    calibration_run["workload"] = {**calibration_run["workload"], "comm_slowdown": 1.2}
    other = _at("500mbit", "1ms", native_factor=9.0)  # its own measurements must not count
    other["network"] = {"name": "measured", "alpha": 1.0, "beta": 1.0}
    cal = validation.calibrate([calibration_run, other], ["gpt:1gbit"])
    assert cal.link_efficiency == pytest.approx(0.8)
    assert cal.alpha_s == pytest.approx(1e-3)
    assert (cal.comm_slowdown, cal.native_factor) == (pytest.approx(1.2), pytest.approx(1.7))

    model = validation.model_inputs(other, cal)
    assert model["held_out"]
    assert model["net"].beta == pytest.approx(1 / (62.5e6 * 0.8))  # its nominal rate
    assert model["net"].alpha == pytest.approx(1e-3 + 1e-3)  # plus its configured delay
    assert model["net"].native_factor == pytest.approx(1.7)
    assert model["workload"].comm_slowdown == pytest.approx(1.2)
    assert not validation.model_inputs(calibration_run, cal)["held_out"]


def test_errors_are_reported_for_held_out_runs_only():
    runs = [_at("1gbit"), _at("500mbit")]
    cal = validation.calibrate(runs, ["gpt:1gbit"])
    models = [validation.model_inputs(r, cal) for r in runs]
    assert all(row.model_error is None for row in report.method_rows(runs[0], models[0]))
    assert any(row.model_error is not None for row in report.method_rows(runs[1], models[1]))
    text = validation.markdown(runs, cal)
    assert "| gpt:500mbit | DDP (25 MB) |" in text and "| gpt:1gbit |" not in text
    assert "Held out only: Model error over 3 (run, method) pairs" in text
    with pytest.raises(ValueError, match="not among the results"):
        validation.calibrate(runs, ["resnet:1gbit"])


def test_loopback_runs_are_reported_without_a_calibration(tmp_path):
    from benchmarks.bench_comm import build_report

    loopback = _at("100mbit")
    loopback["network_spec"] = {"hosts": 2, "rate": None, "delay": "0ms"}
    text = build_report([loopback], tmp_path, "python -m train_jobs.comm_benchmark")
    assert "nothing is validated here" in text and "| not held out |" in text
    calibration, models = validation.calibrated_models([_at("1gbit"), loopback], None)
    assert calibration.runs == ["gpt:1gbit"] and not models[1]["held_out"]
