"""Each model call's record splits its time as the engine measured it (issue 18): queue,
prefill (to the first token) and decode, for JSON calls as for the streamed reply. The engine's
numbers ride on the answer (vLLM's per-request ``metrics``, in ms); these tests feed such
answers through the clients and the agents' runner without vLLM."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from tests.agents.conftest import run
from wow_ray.agents.base import Agent, ModelSettings, run_structured
from wow_ray.agents.prompts import MasterDecision
from wow_ray.agents.transcript import AgentStep, LLMCallRecord
from wow_ray.llm.chat import ChatResult, EngineTimes
from wow_ray.llm.serve_handle import ServeHandleChatClient
from wow_ray.llm.wire import StreamTally, engine_times

METRICS = {"queue_time_ms": 120.0, "time_to_first_token_ms": 340.5, "generation_time_ms": 2000.0,
           "mean_itl_ms": 100.0, "tokens_per_second": 8.1}
TIMES = EngineTimes(queue_s=0.12, prefill_s=0.3405, decode_s=2.0)


class _Deployment:
    """What ``RegistryLLMServer.chat_plain`` yields through a handle, vLLM's metrics included."""

    def __init__(self) -> None:
        self.chat_plain = self

    def options(self, **options):
        return self

    async def _items(self, body):
        if not body["stream"]:
            yield {"model": "m", "choices": [{"message": {"content": '{"next": "end"}'},
                                              "finish_reason": "stop"}],
                   "usage": {"prompt_tokens": 30, "completion_tokens": 5}, "metrics": METRICS}
            return
        yield [{"model": "m", "choices": [{"delta": {"content": "Hel"}}]},
               {"model": "m", "choices": [{"delta": {"content": "lo"}}]}]
        yield [{"model": "m", "choices": [], "metrics": METRICS,
                "usage": {"prompt_tokens": 3, "completion_tokens": 2}}]

    def remote(self, body):
        return self._items(body)


def test_the_engines_times_are_read_from_whole_and_streamed_answers():
    client = ServeHandleChatClient(_Deployment(), "m")
    hi = [{"role": "user", "content": "hi"}]
    whole = run(client.chat(hi))

    async def streamed():
        return [p async for p in client.stream(hi)]

    pieces = run(streamed())
    assert whole.engine == TIMES
    assert pieces[:-1] == ["Hel", "lo"] and pieces[-1].engine == TIMES


@pytest.mark.parametrize("payload", [
    {}, {"metrics": None}, {"metrics": {}}, {"metrics": "fast"},
    {"metrics": {"queue_time_ms": -5.0}}, {"metrics": {"queue_time_ms": "soon"}},
])
def test_no_or_invalid_metrics_leave_the_split_unknown(payload):
    assert engine_times(payload) is None
    tally = StreamTally("m", 0.0)
    tally.add({"model": "m", "choices": [], **payload})
    assert tally.result().engine is None


def test_a_partial_split_keeps_what_was_measured():
    times = engine_times({"metrics": {"time_to_first_token_ms": 50.0}})
    assert times == EngineTimes(prefill_s=0.05)


class _TimedClient:
    """Answers JSON with the engine's times set, as the real clients do."""

    async def chat(self, messages, **options):
        return ChatResult('{"next": "end"}', "m", 30, 5, 2.6, "stop", TIMES)


def test_a_json_calls_record_carries_queue_prefill_and_decode(pack):
    from wow_ray.agents.prompt_inputs import master_input

    agent = Agent(name="master", instructions="", prompt="master", settings=ModelSettings())
    step = AgentStep(agent="master")
    inp = master_input(pack, "thanks, bye", ["end", "answer"], None)
    value = run(run_structured(_TimedClient(), agent, inp, step,
                               lambda d: MasterDecision.model_validate(d).next))
    assert value == "end"
    (call,) = step.llm_calls
    assert (call.queue_s, call.prefill_s, call.decode_s) == (0.12, 0.3405, 2.0)
    assert call.latency_s == 2.6 and call.first_token_s is None
    # The record's wire form validates both ways, and old records (without the split) still read.
    assert LLMCallRecord.model_validate(call.model_dump(mode="json")) == call
    old = LLMCallRecord.model_validate({"model": "m", "latency_s": 1.0})
    assert (old.queue_s, old.prefill_s, old.decode_s) == (None, None, None)


def test_the_llm_deployment_asks_vllm_for_per_request_metrics():
    from wow_ray.config import load_settings
    from wow_ray.llm.engine import engine_kwargs_for

    for device in ("cpu", "gpu"):
        assert engine_kwargs_for(load_settings(), device)["enable_per_request_metrics"] is True


def _bench_turns():
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_turns.py"
    sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location("bench_turns", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_bench_reports_the_engines_split_per_agent():
    bench = _bench_turns()
    calls = [
        {"agent": "master", "prompt_tokens": 30, "completion_tokens": 5, "latency_s": 1.0,
         "queue_s": 0.1, "prefill_s": 0.3, "decode_s": 0.4},
        {"agent": "master", "prompt_tokens": 50, "completion_tokens": 5, "latency_s": 2.0,
         "queue_s": 0.3, "prefill_s": 0.5, "decode_s": 0.8},
        {"agent": "response", "prompt_tokens": 100, "completion_tokens": 20, "latency_s": 3.0,
         "first_token_s": 1.0, "first_shown_s": 1.5},  # a server that reports no split
    ]
    means, counts = bench.agent_means(calls)
    assert counts == {"master": 2, "response": 1}
    master = means["master"]
    assert master["queue_s"] == pytest.approx(0.2) and master["prefill_s"] == pytest.approx(0.4)
    assert master["decode_s"] == pytest.approx(0.6) and master["outside_s"] == pytest.approx(0.3)
    assert "queue_s" not in means["response"] and "outside_s" not in means["response"]
    assert means["response"]["held_s"] == pytest.approx(0.5)
    result = {"concurrency": 1, "turns": 1, "turn_p50_s": 3.0, "turn_p99_s": 3.0,
              "ttft_p50_s": 1.5, "ttft_p99_s": 1.5, "floor_p50_s": 2.0, "floor_ttft_p50_s": 1.0,
              "calls_per_turn": 3.0, "rest_of_turn_p50_s": 0.1, "agents": means,
              "calls_total": counts}
    table = bench.table([result])
    assert "| 1 | master | 2 | 40 | 5.0 | 1.50 | 0.20 | 0.40 | 0.60 | 0.30 | nan | nan |" in table
