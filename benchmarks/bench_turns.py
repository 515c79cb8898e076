"""Fast turns (issue 18): turn time and time to first token as a customer sees them, beside
the floor, one model call writing the same reply from the same prompt, measured in the same run.

Starts a local Ray and the food_delivery dialogue app (``bench_dialogue.start_service``; the
code imported is whatever ``PYTHONPATH`` names, so the same script measures an older checkout
for the "before" column). At each concurrency level that many customers hold the dialogue of
``bench_dialogue.DIALOGUE`` at once, each turn streamed (``?stream=true``):

- turn: the request until the ``done`` event; first token: until the first ``delta``;
- per model call, from the transcript: agent, prompt and generated tokens, wall time, and the
  engine's own split of it (``LLMCallRecord.queue_s``/``prefill_s``/``decode_s``, vLLM's
  per-request metrics) for every call, JSON or streamed; the rest of the wall time is outside
  the engine (Serve routing, tokenising, transport). For the streamed reply also the time to
  its first piece as the agent saw it, and how long the gate held it;
- the floor: each measured turn's reply prompt (the response step's exact input, rendered by
  ``response_messages``) sent once more straight to the LLM deployment through its handle,
  streamed, with the response agent's ``max_tokens``, as many at once as the level's sessions.

    PYTHONPATH=. python benchmarks/bench_turns.py --concurrency 1 4 8 --turns 24 --json out.json

Engine settings come from the environment as usual (``WOW_RAY_ENGINE__ENABLE_PREFIX_CACHING=
false``, ``WOW_RAY_ENGINE__CPU_THREADS_BIND=0-1``), so each is measured both ways by a rerun.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections import defaultdict
from typing import Any

import httpx

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_dialogue import (  # noqa: E402
    DIALOGUE,
    customer_http,
    hold_dialogues,
    percentile,
    start_service,
)

RESPONSE_MAX_TOKENS = 64
# What the bench reads of each ``LLMCallRecord`` (the engine's three only when it reports them).
CALL_FIELDS = ("prompt_tokens", "completion_tokens", "latency_s", "queue_s", "prefill_s",
               "decode_s", "first_token_s", "first_shown_s")


def streamed_turn(http: httpx.Client, sid: str, text: str) -> dict[str, Any]:
    """One streamed turn: seconds to the first delta and to ``done``, and the final status."""
    started = time.perf_counter()
    first = None
    status, event = "active", ""
    with http.stream("POST", f"/v1/sessions/{sid}/messages", params={"stream": "true"},
                     json={"content": text}) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if line.startswith("event:"):
                event = line.removeprefix("event:").strip()
                if event == "delta" and first is None:
                    first = time.perf_counter() - started
                if event == "reset":
                    raise AssertionError("streamed text was withdrawn")
            elif line.startswith("data:") and event == "done":
                status = json.loads(line.removeprefix("data:"))["status"]
    wall = time.perf_counter() - started
    return {"wall": wall, "ttft": first if first is not None else wall, "status": status}


def one_dialogue(http: httpx.Client) -> list[dict[str, Any]]:
    sid = http.post("/v1/sessions", json={}).json()["session_id"]
    seen = []
    for text in DIALOGUE:
        seen.append(streamed_turn(http, sid, text))
        if seen[-1]["status"] != "active":
            break
    transcript = http.get(f"/v1/sessions/{sid}/transcript").json()
    rows = []
    for turn, timing in zip(transcript["turns"], seen, strict=False):
        calls = [{"agent": s["agent"], **{k: c.get(k) for k in CALL_FIELDS}}
                 for s in turn["steps"] for c in s["llm_calls"]]
        reply_input = next((s["input"] for s in turn["steps"] if s["agent"] == "response"), None)
        rows.append({**timing, "master_s": turn["latency_s"], "calls": calls,
                     "reply_input": reply_input})
    return rows


def floor_calls(handle: Any, base_model: str, inputs: list[dict[str, Any]],
                concurrency: int) -> list[dict[str, float]]:
    """The floor: each reply prompt as one streamed model call, ``concurrency`` at a time."""
    from wow_ray.agents.prompts import ResponseInput, response_messages
    from wow_ray.llm.chat import ChatResult
    from wow_ray.llm.serve_handle import ServeHandleChatClient

    client = ServeHandleChatClient(handle, base_model)

    async def one(inp: dict[str, Any]) -> dict[str, float]:
        started = time.perf_counter()
        first, tokens = None, 0
        async for piece in client.stream(response_messages(ResponseInput(**inp)),
                                         max_tokens=RESPONSE_MAX_TOKENS, temperature=0.0):
            if isinstance(piece, ChatResult):
                tokens = piece.completion_tokens
            elif first is None:
                first = time.perf_counter() - started
        wall = time.perf_counter() - started
        return {"wall": wall, "ttft": first if first is not None else wall, "tokens": tokens}

    async def all_of() -> list[dict[str, float]]:
        gate = asyncio.Semaphore(concurrency)

        async def bounded(inp: dict[str, Any]) -> dict[str, float]:
            async with gate:
                return await one(inp)

        return await asyncio.gather(*(bounded(i) for i in inputs))

    return asyncio.run(all_of())


def agent_means(calls: list[dict[str, Any]]) -> tuple[dict[str, dict[str, float]], dict[str, int]]:
    """Per agent, the mean of each measure over its calls (a measure only over the calls that
    have it), and the number of calls. Besides the recorded fields: ``outside_s``, wall time
    minus the engine's queue, prefill and decode (calls the engine timed); ``held_s``, first
    piece shown minus first piece received (streamed replies)."""
    per_agent: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for c in calls:
        a = per_agent[c["agent"]]
        for key in CALL_FIELDS:
            if c.get(key) is not None:
                a[key].append(c[key])
        engine = [c.get(k) for k in ("queue_s", "prefill_s", "decode_s")]
        if all(v is not None for v in engine):
            a["outside_s"].append(c["latency_s"] - sum(engine))
        if c.get("first_token_s") is not None and c.get("first_shown_s") is not None:
            a["held_s"].append(c["first_shown_s"] - c["first_token_s"])
    means = {agent: {k: statistics.fmean(v) for k, v in values.items() if v}
             for agent, values in per_agent.items()}
    return means, {agent: len(values["latency_s"]) for agent, values in per_agent.items()}


def run_level(url: str, concurrency: int, rounds: int, llm: tuple[Any, str] | None) -> dict[str, Any]:
    rows = hold_dialogues(url, concurrency, rounds, one_dialogue)
    inputs = [r["reply_input"] for r in rows if r["reply_input"]]
    floor = floor_calls(llm[0], llm[1], inputs, concurrency) if llm and inputs else []
    agents, calls_total = agent_means([c for r in rows for c in r["calls"]])
    walls, ttfts = [r["wall"] for r in rows], [r["ttft"] for r in rows]
    llm_s = [sum(c["latency_s"] for c in r["calls"]) for r in rows]
    return {
        "concurrency": concurrency, "turns": len(rows),
        "turn_p50_s": percentile(walls, 50), "turn_p99_s": percentile(walls, 99),
        "ttft_p50_s": percentile(ttfts, 50), "ttft_p99_s": percentile(ttfts, 99),
        "floor_p50_s": percentile([f["wall"] for f in floor], 50),
        "floor_ttft_p50_s": percentile([f["ttft"] for f in floor], 50),
        "calls_per_turn": statistics.fmean(len(r["calls"]) for r in rows) if rows else 0.0,
        "rest_of_turn_p50_s": percentile([w - m for w, m in zip(walls, llm_s, strict=True)], 50),
        "agents": agents, "calls_total": calls_total,
        "rows": [{k: v for k, v in r.items() if k != "reply_input"} for r in rows],
        "floor": floor,
    }


def table(results: list[dict[str, Any]]) -> str:
    lines = ["| sessions | turns | turn p50 (s) | turn p99 (s) | first token p50 (s) | first token "
             "p99 (s) | floor p50 (s) | floor first token p50 (s) | turn p50 / floor | p99 / p50 "
             "| model calls/turn | rest of turn p50 (s) |",
             "| --- |" + " --- |" * 11]
    for r in results:
        ratio = r["turn_p50_s"] / r["floor_p50_s"] if r["floor_p50_s"] == r["floor_p50_s"] else float("nan")
        lines.append(
            f"| {r['concurrency']} | {r['turns']} | {r['turn_p50_s']:.2f} | {r['turn_p99_s']:.2f} | "
            f"{r['ttft_p50_s']:.2f} | {r['ttft_p99_s']:.2f} | {r['floor_p50_s']:.2f} | "
            f"{r['floor_ttft_p50_s']:.2f} | {ratio:.2f} | {r['turn_p99_s'] / r['turn_p50_s']:.2f} | "
            f"{r['calls_per_turn']:.2f} | {r['rest_of_turn_p50_s']:.2f} |")
    lines += ["", "Per model call, means by agent (over the calls that have each measure): "
              "prompt tokens, generated tokens, wall s; the engine's queue, prefill and decode s "
              "(vLLM's per-request metrics) and the wall time outside the engine; streamed "
              "replies also the first piece s as the agent saw it and how long it was held "
              "until its sentence stood (the gate's cost to first token).",
              "", "| sessions | agent | calls | prompt tok | generated tok | wall (s) | queue (s) "
              "| prefill (s) | decode (s) | outside engine (s) | first piece (s) | held (s) |",
              "| --- |" + " --- |" * 11]
    nan = float("nan")
    for r in results:
        for agent, a in sorted(r["agents"].items()):
            timed = " | ".join(f"{a.get(k, nan):.2f}" for k in (
                "queue_s", "prefill_s", "decode_s", "outside_s", "first_token_s", "held_s"))
            lines.append(
                f"| {r['concurrency']} | {agent} | {r['calls_total'][agent]} | "
                f"{a['prompt_tokens']:.0f} | {a['completion_tokens']:.1f} | {a['latency_s']:.2f} | "
                f"{timed} |")
    return "\n".join(lines)


def llm_handle() -> tuple[Any, str] | None:
    """The dialogue app's LLM deployment, for the floor (only when this process started it)."""
    from ray import serve

    from wow_ray.config import load_settings

    base = load_settings().model
    try:
        return serve.get_deployment_handle(f"RegistryLLMServer:{base}", app_name="food_delivery"), base
    except Exception as exc:  # noqa: BLE001 - the floor is then reported as missing
        print(f"no floor: {type(exc).__name__}: {exc}")
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=18600)
    parser.add_argument("--storage", help="WOW-Ray storage path (default from settings).")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--turns", type=int, default=24, help="Turns to measure per level, at least.")
    parser.add_argument("--json", help="Write the raw results here.")
    parser.add_argument("--alias", help="Serve the agents' adapters of this registry alias "
                        "(e.g. candidate) instead of production's.")
    args = parser.parse_args()
    started = time.monotonic()
    url = start_service(args.port, args.storage, args.alias)
    print(f"service ready after {time.monotonic() - started:.0f} s")
    with customer_http(url) as http:  # the first turn after start, reported, then not counted
        first = one_dialogue(http)[0]
        print(f"first turn after start: {first['wall']:.2f} s (first token {first['ttft']:.2f} s)")
    llm = llm_handle()
    results = []
    for c in args.concurrency:
        rounds = max(1, round(args.turns / (len(DIALOGUE) * c)))
        result = run_level(url, c, rounds, llm)
        results.append(result)
        print(f"c={c}: {result['turns']} turns, turn p50 {result['turn_p50_s']:.2f} s, first token "
              f"p50 {result['ttft_p50_s']:.2f} s, floor p50 {result['floor_p50_s']:.2f} s", flush=True)
    print(f"\nload average at the end: {os.getloadavg()}\n")
    print(table(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"first_turn": first, "results": results, "loadavg": os.getloadavg()}, f, indent=1)


if __name__ == "__main__":
    main()
