"""The report writer: rows, markdown, chart and the README section, from a result by hand."""

from __future__ import annotations

import pytest

from benchmarks.bench_comm import build_report
from benchmarks.comm import perfmodel, report
from benchmarks.comm.perfmodel import Tensor, Workload
from benchmarks.report import write_section


def _result() -> dict:
    workload = Workload(name="gpt", batch=4, update_s=0.1, fsdp_units=[[0, 1]], tensors=[
        Tensor(name="a", bytes=2**20, fwd_s=0.2, bwd_s=0.3),
        Tensor(name="b", bytes=3 * 2**20, fwd_s=0.2, bwd_s=0.2)])
    times = {"ddp": [1.0] * 19 + [1.4], "dear_tuned": [0.8] * 10 + [0.7] * 10,
             "bsp": [1.2, 1.1, 1.3]}
    return {"world": 2, "config": {"model": {"name": "gpt", "batch": 4}, "bucket_mb": 25.0},
            "workload": workload.model_dump(), "compute_times": [1.0, 1.0, 1.0],
            "network": {"name": "measured", "alpha": 1e-3, "beta": 1e-8},
            "network_spec": {"hosts": 2, "rate": "100mbit", "delay": "0.1ms"},
            "methods": {m: {"times": t} for m, t in times.items()}
            | {"dear_tuned": {"times": times["dear_tuned"], "bucket_mb": 2.0}},
            "mg_groups": None, "loadavg_end": [3.0, 2.0, 1.0], "duration_s": 90.0}


def test_rows_speedup_and_gap_to_the_bound():
    rows = {r.method: r for r in report.method_rows(_result())}
    assert rows["ddp"].median_s == 1.0 and rows["ddp"].max_s == 1.4
    assert rows["ddp"].speedup_vs_ddp == pytest.approx(1.0)
    assert rows["dear_tuned"].median_s == pytest.approx(0.75)
    assert rows["dear_tuned"].speedup_vs_ddp == pytest.approx(1 / 0.75)
    assert rows["dear_tuned"].samples_per_s == pytest.approx(2 * 4 / 0.75)
    # bound: max(compute 1.0, 4 MB at 100 Mbit/s on 2 ranks = 4 * 2**20 / 12.5e6 s)
    bound = max(1.0, 4 * 2**20 / 12.5e6)
    assert rows["bsp"].gap_to_bound == pytest.approx(1.2 / bound - 1)
    assert rows["dear_tuned"].predicted_s is not None  # at the tuned 2 MB buckets


def _held_out(result: dict) -> dict:
    """The same run at another link rate, for the model to predict from the first."""
    return {**result, "network_spec": {"hosts": 2, "rate": "200mbit", "delay": "0ms"}}


def test_markdown_chart_and_readme_section(tmp_path):
    result = _result()
    text = build_report([result, _held_out(result)], tmp_path,
                        "python benchmarks/bench_comm.py --run x")
    assert "| DeAR (tuned), 2 MB | 0.750 |" in text
    assert "1.33x" in text and "gpt, 2 hosts, 100mbit + 0.1ms latency" in text
    assert "Model error over 3 (run, method) pairs" in text
    assert "| bert_base | 10GbE |" in text  # the 64-GPU predictions
    assert (tmp_path / "report.md").read_text().startswith("# Communication schedulers")
    assert (tmp_path / "comm.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    readme = tmp_path / "README.md"
    readme.write_text("# Benchmarks\n\n## Other (issue 1)\n\nkept\n")
    write_section("## Communication schedulers (issue 6)", ["old"], readme)
    write_section("## Communication schedulers (issue 6)", [text], readme)
    written = readme.read_text()
    assert "## Other (issue 1)\n\nkept" in written
    assert written.count("## Communication schedulers (issue 6)") == 1
    assert "old" not in written.split("(issue 6)")[1]


def test_rates_in_tc_syntax():
    assert report.rate_bytes_per_s("1gbit") == 1.25e8
    assert report.rate_bytes_per_s("300mbit") == 3.75e7
    assert report.rate_bytes_per_s(None) is None
    with pytest.raises(ValueError):
        report.rate_bytes_per_s("fast")


def test_dear_is_compared_with_the_fastest_other_scheduler():
    result = _result()
    result["config"] |= {"rounds": 2, "iters": 20}
    result["methods"]["bsp"]["times"] = [1.2] * 20
    result["methods"]["ddp_tuned"] = {"times": [0.9] * 20, "bucket_mb": 1.5}
    rows = {r.method: r for r in report.method_rows(result)}
    assert report.best_other(result) == "ddp_tuned"
    assert rows["dear_tuned"].speedup_vs_best_other == pytest.approx(0.9 / 0.75)
    assert rows["ddp_tuned"].speedup_vs_best_other is None  # only DeAR rows are compared
    # per round (2 rounds of 10): 0.9 / 0.8 and 0.9 / 0.7
    assert rows["dear_tuned"].round_speedup_vs_best_other == pytest.approx(
        (0.9 / 0.8 + 0.9 / 0.7) / 2)
    line = report.headline(result)
    assert "fastest other scheduler, DDP (tuned), 1.5 MB: **1.20x**" in line
    assert "against DDP (tuned): 1.20x" in line
    assert "| DDP (tuned), 1.5 MB | 0.900 |" in report.markdown_run(result)


def test_tuned_methods_are_predicted_at_the_knob_their_search_chose():
    result = _result()
    result["methods"]["ddp_tuned"] = {"times": [0.9] * 20, "bucket_mb": 1.5}
    result["methods"]["fsdp2_tuned"] = {"times": [1.1] * 20, "unit_mb": 8.0}
    facts = report.run_facts(result)
    rows = {r.method: r for r in report.method_rows(result)}
    for method, knob in (("ddp_tuned", {"bucket_mb": 1.5}), ("fsdp2_tuned", {"unit_mb": 8.0})):
        expected = perfmodel.predict(method.removesuffix("_tuned"), facts["workload"],
                                     facts["net"], 2, **knob)
        assert rows[method].predicted_s == pytest.approx(expected)
