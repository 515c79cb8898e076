"""Dialogue service benchmark: per-turn latency by agent, orchestration overhead, turns/s.

Starts a local Ray and the food_delivery dialogue app (every agent a deployment, vLLM on the
CPU with the embedded model), unless ``--url`` names a running one. At each concurrency level,
that many customers hold the same three-turn dialogue at once (late order, an invoice for it,
goodbye), each in its own session, holding whole dialogues until ``--turns`` turns are
measured. For every turn it reads the trace from the transcript:

- turn time: the HTTP round trip as the customer sees it;
- LLM time: the sum of the turn's model calls, each timed by the agent around its Serve-handle
  call (queueing in vLLM included: that is time inside the LLM deployment);
- overhead = (turn time - LLM time) / turn time: routing, handles, rule checks, tools,
  the database write, HTTP.

    PYTHONPATH=. python benchmarks/bench_dialogue.py --concurrency 1 4 8 16
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

DIALOGUE = [
    "My order O10337 arrived 20 minutes late",
    "I also need an invoice for order O10337, the title is LanternCorp Ltd",
    "thanks, bye",
]
USER = "U0214"


def customer_http(url: str) -> httpx.Client:
    """HTTP as the signed-in customer USER, through this machine's CLI key and token secret
    (the files a service started here reads)."""
    from wow_ray.cli.dialogue import local_client

    return local_client(url, USER).http


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def one_dialogue(http: httpx.Client) -> list[dict[str, Any]]:
    sid = http.post("/v1/sessions", json={}).json()["session_id"]
    walls = []
    for text in DIALOGUE:
        started = time.perf_counter()
        response = http.post(f"/v1/sessions/{sid}/messages", json={"content": text})
        response.raise_for_status()
        walls.append(time.perf_counter() - started)
        if response.json()["status"] != "active":
            break
    transcript = http.get(f"/v1/sessions/{sid}/transcript").json()
    rows = []
    for turn, wall in zip(transcript["turns"], walls, strict=False):
        llm = sum(c["latency_s"] for s in turn["steps"] for c in s["llm_calls"])
        agents: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
        for step in turn["steps"]:
            agents[step["agent"]][0] += step["latency_s"]
            agents[step["agent"]][1] += sum(c["latency_s"] for c in step["llm_calls"])
        rows.append({"wall": wall, "llm": llm, "master": turn["latency_s"], "agents": dict(agents),
                     "calls": sum(len(s["llm_calls"]) for s in turn["steps"]),
                     "tokens": sum(c["completion_tokens"] for s in turn["steps"] for c in s["llm_calls"])})
    return rows


def hold_dialogues(url: str, concurrency: int, rounds: int,
                   dialogue: Callable[[httpx.Client], list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """``concurrency`` customers at once, each holding ``rounds`` dialogues; every turn's row."""
    rows: list[dict[str, Any]] = []
    lock = threading.Lock()

    def customer(_: int) -> None:
        with customer_http(url) as http:
            for _ in range(rounds):
                got = dialogue(http)
                with lock:
                    rows.extend(got)

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(customer, range(concurrency)))
    return rows


def run_level(url: str, concurrency: int, rounds: int) -> dict[str, Any]:
    started = time.perf_counter()
    rows = hold_dialogues(url, concurrency, rounds, one_dialogue)
    elapsed = time.perf_counter() - started
    overhead = [(r["wall"] - r["llm"]) / r["wall"] for r in rows]
    per_agent: dict[str, dict[str, float]] = {}
    for agent in sorted({a for r in rows for a in r["agents"]}):
        # Mean seconds per turn (0 where the agent did not run): they add up to the turn.
        spent = [r["agents"].get(agent, [0.0, 0.0]) for r in rows]
        per_agent[agent] = {"mean_s": statistics.fmean(s[0] for s in spent),
                            "mean_llm_s": statistics.fmean(s[1] for s in spent)}
    mean_wall = statistics.fmean(r["wall"] for r in rows)
    per_agent["(orchestration: not in any agent)"] = {
        "mean_s": mean_wall - sum(a["mean_s"] for a in per_agent.values()), "mean_llm_s": 0.0}
    return {
        "concurrency": concurrency, "turns": len(rows), "elapsed_s": elapsed,
        "turns_per_s": len(rows) / elapsed,
        "p50_s": percentile([r["wall"] for r in rows], 50),
        "p99_s": percentile([r["wall"] for r in rows], 99),
        "median_llm_s": statistics.median(r["llm"] for r in rows),
        "median_overhead_s": statistics.median(r["wall"] - r["llm"] for r in rows),
        "overhead_ratio_median": statistics.median(overhead),
        "overhead_ratio_total": 1 - sum(r["llm"] for r in rows) / sum(r["wall"] for r in rows),
        "llm_calls_per_turn": sum(r["calls"] for r in rows) / len(rows),
        "tokens_per_turn": sum(r["tokens"] for r in rows) / len(rows),
        "mean_turn_s": mean_wall,
        "agents": per_agent,
        "rows": rows,
    }


def start_service(port: int, storage: str | None, alias: str | None = None) -> str:
    """The food_delivery service on a local Ray; ``alias``: serve each agent's adapter through
    that registry alias ('candidate': a loop's refused candidate), not production's."""
    from ray import serve

    from wow_ray.config import load_settings
    from wow_ray.ray_runtime import init_ray
    from wow_ray.serving import build_dialogue_app
    from wow_ray.serving.credentials import ensure_cli_key, ensure_secret

    overrides = {"storage_path": storage} if storage else {}
    settings = load_settings(**overrides)
    ensure_secret()  # the gateway reads this machine's token secret and keys file at start
    ensure_cli_key()
    init_ray(settings, include_dashboard=False, log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    app = build_dialogue_app({
        "dialogue": {"scenario": "food_delivery", **({"adapters": {
            a: f"food_delivery-{a}@{alias}" for a in ("understanding", "response", "handoff")}}
            if alias else {})},
        "database_url": "sqlite:////tmp/wow_ray_bench_sessions.db",
        "llm": {"settings": settings.model_dump(exclude={"ray_address", "ray_num_cpus", "serve"})},
        # One replica per agent: the numbers describe one copy of the service.
        "agents": {a: {"max_replicas": 1} for a in
                   ("master", "understanding", "policy", "solution", "response", "handoff")},
        "gateway": {"max_replicas": 1},
    })
    started = time.monotonic()
    serve.run(app, name="food_delivery", route_prefix="/")
    print(f"service up after {time.monotonic() - started:.0f} s")
    return f"http://127.0.0.1:{port}"


def table(results: list[dict[str, Any]]) -> str:
    lines = ["| concurrent sessions | turns | turns/s | p50 turn (s) | p99 turn (s) | median LLM time (s) "
             "| median overhead (s) | overhead share (median) | LLM calls/turn |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in results:
        lines.append(f"| {r['concurrency']} | {r['turns']} | {r['turns_per_s']:.3f} | {r['p50_s']:.2f} | "
                     f"{r['p99_s']:.2f} | {r['median_llm_s']:.2f} | {r['median_overhead_s']:.3f} | "
                     f"{r['overhead_ratio_median'] * 100:.1f}% | {r['llm_calls_per_turn']:.2f} |")
    lines += ["", "Mean seconds per turn by agent (of which inside the LLM); columns: concurrent sessions.",
              "", "| agent | " + " | ".join(f"c={r['concurrency']}" for r in results) + " |",
              "| --- |" + " --- |" * len(results)]
    for agent in sorted({a for r in results for a in r["agents"]}, key=lambda a: (a.startswith("("), a)):
        cells = []
        for r in results:
            a = r["agents"].get(agent)
            cells.append(f"{a['mean_s']:.3f} ({a['mean_llm_s']:.3f})" if a else "-")
        lines.append(f"| {agent} | " + " | ".join(cells) + " |")
    lines.append("| whole turn | " + " | ".join(f"{r['mean_turn_s']:.3f}" for r in results) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="A running dialogue service (skip starting one).")
    parser.add_argument("--port", type=int, default=18600)
    parser.add_argument("--storage", help="WOW-Ray storage path (default from settings).")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--turns", type=int, default=12,
                        help="Turns to measure at each level, at least (each customer holds whole "
                        "three-turn dialogues, at least one).")
    parser.add_argument("--json", help="Write the raw results here.")
    args = parser.parse_args()
    url = args.url or start_service(args.port, args.storage)
    with customer_http(url) as http:  # warm-up: first calls load code
        one_dialogue(http)
    results = []
    for c in args.concurrency:
        rounds = max(1, round(args.turns / (len(DIALOGUE) * c)))
        result = run_level(url, c, rounds)
        results.append(result)
        print(f"c={c}: {result['turns']} turns, {result['turns_per_s']:.3f} turns/s, "
              f"p50 {result['p50_s']:.2f} s, overhead {result['overhead_ratio_median'] * 100:.1f}%",
              flush=True)
    print()
    print(table(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
