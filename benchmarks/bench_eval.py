"""Evaluation throughput: episodes per minute with 1, 2 and 4 simulator actors against one
service, and where a turn's time goes (each agent's model calls, the rest, the simulator).

    python -m benchmarks.bench_eval --model smollm2-135m --llm-url http://127.0.0.1:8000 \\
        --split dev --tasks 8 --actors 1,2,4
"""

from __future__ import annotations

import argparse
import json
import time

from evaluators.pool import PoolConfig, run_pool
from wow_ray.config import load_settings
from wow_ray.evaluation import build_report
from wow_ray.ray_runtime import init_ray
from wow_ray.scenario import load_pack


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--scenario", default="food_delivery")
    p.add_argument("--split", default="dev")
    p.add_argument("--tasks", type=int, default=8)
    p.add_argument("--model", default="none")
    p.add_argument("--llm-url", default="http://127.0.0.1:8000")
    p.add_argument("--actors", default="1,2,4")
    args = p.parse_args()
    init_ray(load_settings(None))
    tasks = load_pack(args.scenario).tasks_in(args.split)[: args.tasks]
    jobs = [(t.id, 0) for t in tasks]
    rows = []
    for n in (int(x) for x in args.actors.split(",")):
        started = time.perf_counter()
        results = run_pool(PoolConfig(scenario=args.scenario, model=args.model, llm_url=args.llm_url),
                           jobs, actors=n, progress=False)
        wall = time.perf_counter() - started
        r = build_report([s for s, _ in results], scenario=args.scenario, split=args.split, model=args.model)
        turns = sum(s.usage.turns for s, _ in results) or 1
        model_s = {a: round(v * len(results) / turns, 4) for a, v in r.llm_latency_by_agent_s.items()}
        turn_s = sum(s.usage.latency_s for s, _ in results) / turns
        rows.append({"actors": n, "episodes": len(jobs), "episodes_per_minute": round(60 * len(jobs) / wall, 2),
                     "turn_s": round(turn_s, 4), "model_s_per_turn_by_agent": model_s,
                     "rest_s_per_turn": round(turn_s - sum(model_s.values()), 4),
                     "simulator_s_per_turn": round(sum(s.customer_s for s, _ in results) / turns, 4)})
        print(json.dumps(rows[-1]))


if __name__ == "__main__":
    main()
