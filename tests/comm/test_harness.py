"""The harness end to end on two gloo ranks (loopback, a tiny model): every tuned baseline gets
the search DeAR gets, and the run records what the report and the model need."""

from __future__ import annotations

import pytest

from benchmarks.comm.models import ModelSpec
from tests.dear.cluster import GlooCluster

SPEC = ModelSpec(name="gpt", width=32, layers=2, vocab=64, seq_len=8, batch=2)
TUNED = ["mgwfbp_tuned", "ddp_tuned", "fsdp2_tuned", "dear_tuned"]


def _run(methods: list[str]) -> dict | None:
    from benchmarks.comm.harness import BenchConfig, run_rank

    cfg = BenchConfig(model=SPEC, methods=methods, iters=4, rounds=2, warmup=1,
                      profile_iters=1, slowdown_iters=1, tune_trials=3,
                      tune_warmup_iters=0, tune_iters_per_trial=1,
                      allreduce_sizes=[2**12, 2**16], allreduce_repeats=2)
    return run_rank(cfg)


@pytest.fixture(scope="module")
def result():
    cluster = GlooCluster(2)
    try:
        results = cluster.run(_run, TUNED, timeout=300)
    finally:
        cluster.close()
    assert results[1] is None
    return results[0]


def test_every_tuned_method_searches_its_knob_with_the_same_trials(result):
    from benchmarks.comm.schedulers import KNOBS

    for method in TUNED:
        data = result["methods"][method]
        assert len(data["times"]) == 4, method  # both rounds timed, tuning excluded
        assert data["tuning_s"] > 0, method
        if method == "dear_tuned":  # DeAR tunes online, inside the synchroniser
            assert data["bucket_mb"] > 0
            continue
        assert len(data["trials"]) == 3, method  # the same number of trials as DeAR's
        chosen = data[KNOBS[method]]
        assert chosen == data["knob"] and chosen in [t[0] for t in data["trials"]], method
        assert len({t[0] for t in data["trials"]}) > 1, method  # it searched
    assert result["methods"]["mgwfbp_tuned"]["mg_groups"]  # the plan it ran, for the model


def test_the_run_measures_gloos_native_collectives_and_reports(result):
    from benchmarks.comm import report

    assert result["native_factor"] > 0
    text = report.markdown_run(result)
    assert "| DDP (tuned), " in text and "| MG-WFBP (tuned), merge below " in text
    assert "| FSDP2 (tuned), units of " in text
    assert "DeAR (tuned) against the fastest other scheduler" in text
