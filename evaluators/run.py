"""The evaluation job: a split's tasks x k trials through a pool of simulator actors.

    ray job submit -- python -m evaluators.run --scenario food_delivery --split dev --trials 4 \\
        --model smollm2-135m[:adapter] [--llm-url URL] [--actors 4] [--out DIR] [--register]

``--model none`` measures the agents' deterministic paths alone (the floor). The report
(report.json, REPORT.md, report.png) and evaluated.jsonl go to ``--out`` (default:
``<storage_path>/eval_runs/<scenario>-<split>-<model>``); ``--register`` also records them in
the registry as a ``report`` linked to the model judged.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from evaluators.pool import PoolConfig, run_pool
from wow_ray.config import load_settings
from wow_ray.evaluation import EvalReport, build_report, publish
from wow_ray.ray_runtime import init_ray
from wow_ray.registry import Registry
from wow_ray.scenario import load_pack


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="evaluators.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--scenario", default="food_delivery")
    p.add_argument("--split", default="dev", choices=["train", "dev", "test"])
    p.add_argument("--tasks", default=None, help="Comma-separated task ids (a subset of the split).")
    p.add_argument("--trials", type=int, default=1, help="k: trials per task (pass^1..k).")
    p.add_argument("--model", default="none", help="Model id to judge ('base' or 'base:adapter:vN'); none: floor.")
    p.add_argument("--llm-url", default="http://127.0.0.1:8000")
    p.add_argument("--customer", default="scripted", choices=["scripted", "model"])
    p.add_argument("--judge", action="store_true", help="Also score nl_assertions and tone with the model.")
    p.add_argument("--actors", type=int, default=2)
    p.add_argument("--in-flight", type=int, default=1, help="Episodes at once per actor.")
    p.add_argument("--actor-resources", type=json.loads, default={},
                   help='Custom resources per simulator actor, as JSON (\'{"eval_host": 0.01}\'): '
                   "the actors run only on nodes that offer them.")
    p.add_argument("--max-turns", type=int, default=8)
    p.add_argument("--gateway-url", default=None, help="Evaluate over HTTP through this gateway route.")
    p.add_argument("--api-key", default=None)
    p.add_argument("--operator-key", default=None)
    p.add_argument("--jwt-secret", default=None)
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--register", action="store_true")
    p.add_argument("--config", type=Path, default=None, help="WOW-Ray settings YAML.")
    return p.parse_args(argv)


def evaluate(args: argparse.Namespace) -> tuple[EvalReport, Path]:
    settings = load_settings(args.config)
    init_ray(settings)
    pack = load_pack(args.scenario)
    tasks = pack.tasks_in(args.split)
    if args.tasks:
        wanted = set(args.tasks.split(","))
        tasks = [t for t in tasks if t.id in wanted]
    gateway = None
    if args.gateway_url:
        gateway = {"url": args.gateway_url, "api_key": args.api_key, "operator_key": args.operator_key,
                   "jwt_secret": args.jwt_secret}
    config = PoolConfig(scenario=args.scenario, model=args.model, llm_url=args.llm_url,
                        customer=args.customer, judge=args.judge, max_turns=args.max_turns, gateway=gateway,
                        actor_resources=args.actor_resources)
    jobs = [(t.id, k) for t in tasks for k in range(args.trials)]
    replayed: list[dict] = []  # episodes played again because their actor died (a node lost)
    started = time.perf_counter()
    results = run_pool(config, jobs, actors=args.actors, in_flight=args.in_flight,
                       on_replayed=lambda task_id, trial, node: replayed.append(
                           {"task_id": task_id, "trial": trial, "node": node}))
    wall = time.perf_counter() - started
    report = build_report([s for s, _ in results], scenario=args.scenario, split=args.split,
                          trials=args.trials, model=args.model, customer=args.customer,
                          meta={"actors": args.actors, "wall_s": round(wall, 2),
                                "episodes_per_minute": round(60 * len(jobs) / wall, 2) if wall else None,
                                "mode": "http" if gateway else "in-process", "replayed": replayed})
    name = f"{args.scenario}-{args.split}-{args.model.replace(':', '_')}"
    out = args.out or Path(settings.storage_path).expanduser() / "eval_runs" / name
    publish.save(report, [d for _, d in results], out)
    if args.register:
        publish.register(Registry(settings.storage_path), report, out, judged=args.model,
                         source=f"evaluators.run:{name}")
    return report, out


def main(argv: list[str] | None = None) -> None:
    report, out = evaluate(parse(argv))
    print(f"success {report.success}, compliance {report.compliance}, pass^k {report.pass_k}")
    print(f"report: {out}/REPORT.md")


if __name__ == "__main__":
    main()
