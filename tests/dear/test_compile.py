"""DeAR under torch.compile (CPU, two gloo ranks): compiled in place before DeAR wraps it (as
the fine-tuning job does) or DeAR compiled, it trains as DDP does, and every forward after a
step still waits, module by module, for the all-gather of the bucket it reads."""

from __future__ import annotations

import pytest

from . import scenarios_compile

STEPS = 4


@pytest.mark.parametrize("where", ["inner", "outer"])
def test_compiled_dear_trains_like_ddp_and_waits_for_each_all_gather(gloo, where):
    for result in gloo(2).run(scenarios_compile.compiled_dear_vs_ddp, where, steps=STEPS,
                              timeout=600):
        assert result["diff"] <= 1e-5, result
        assert result["buckets"] == 8, result
        # after each of the first STEPS - 1 steps, all 8 buckets waited for by their module
        assert result["pending_at_module"] == (STEPS - 1) * 8, result
