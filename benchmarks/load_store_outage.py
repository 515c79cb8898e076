"""The sessions database stops for a while under load: PostgreSQL down, then up, mid-run.

A throw-away PostgreSQL server (`postgres_server.py`) holds the sessions of the dialogue
service, deployed from a serve config's `args` (default serve_apps/food_delivery.yaml) with
only `database_url` changed, on a running Ray. `bench_load`'s customers run against it; at
`--outage-at-s` the server is stopped (`pg_ctl stop -m immediate`, as a crash would) and
started again `--outage-s` later, with nothing restarted on the service's side. Reported: each
turn's outcome by phase (before, during, after the outage), the 503s' messages, how long after
the database came back the first turn was answered, and what PostgreSQL holds afterwards:
for every session, turn indices 0..n-1 once each and the session row's version equal to n
(the version moves with each stored turn, so a half-written turn would break one of them).

    RAY_ADDRESS=127.0.0.1:6379 python -m benchmarks.load_store_outage --api-key KEY \\
        --token-secret-file ~/.wow_ray/customer_token_secret --customers 20 --minutes 3 \\
        --ramp-s 20 --outage-at-s 60 --outage-s 10 --out outage.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from benchmarks.bench_load import Tally, add_load_arguments, run
from benchmarks.multinode_dialogue import stored_sessions
from benchmarks.postgres_server import PostgresServer, postgres_binaries


def deploy(config: Path, database_url: str) -> str:
    """The config's dialogue app with its sessions in `database_url`; the service's URL."""
    from ray import serve

    from wow_ray.serving import build_dialogue_app

    spec = yaml.safe_load(config.read_text())
    (app,) = spec["applications"]
    http = spec.get("http_options", {})
    host, port = http.get("host", "127.0.0.1"), http.get("port", 8000)
    serve.start(http_options={"host": host, "port": port})
    serve.run(build_dialogue_app({**app["args"], "database_url": database_url}),
              name=app["name"], route_prefix=app.get("route_prefix", "/"))
    return f"http://{host}:{port}"


def stored_consistency(local_url: str) -> dict[str, Any]:
    """Every session in the database: turns stored once each, in order, and the row's version
    agreeing with them. Lists the sessions where either fails (none expected)."""
    held = stored_sessions(local_url)
    broken = {sid: {"version": s["version"], "indices": s["indices"]}
              for sid, s in held.items()
              if s["indices"] != list(range(len(s["indices"]))) or s["version"] != len(s["indices"])}
    return {"sessions": sum(s["version"] is not None for s in held.values()),
            "turns": sum(len(s["indices"]) for s in held.values()), "inconsistent": broken}


def by_phase(outcomes: list[tuple[float, str]], down_at: float, up_at: float) -> dict[str, Any]:
    """Outcome counts before the outage, during it (until the database is up again) and after;
    and the seconds from the database's return to the first answered turn."""
    phases: dict[str, Counter] = {"before": Counter(), "during": Counter(), "after": Counter()}
    for t, kind in outcomes:
        phase = "before" if t < down_at else "during" if t < up_at else "after"
        phases[phase][kind] += 1
    answered_after = [t for t, kind in outcomes if kind == "done" and t >= up_at]
    return {**{k: dict(v) for k, v in phases.items()},
            "first_answer_after_up_s": round(min(answered_after) - up_at, 1)
            if answered_after else None}


async def _load_with_outage(args: argparse.Namespace, server: PostgresServer,
                            tally: Tally) -> tuple[dict, float, float]:
    async def outage() -> tuple[float, float]:
        await asyncio.sleep(args.outage_at_s)
        down_at = time.monotonic()
        await asyncio.to_thread(server.stop)
        await asyncio.sleep(args.outage_s)
        await asyncio.to_thread(server.start)
        return down_at, time.monotonic()

    summary, (down_at, up_at) = await asyncio.gather(run(args, tally), outage())
    return summary, down_at, up_at


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_load_arguments(parser, customers=20, minutes=3.0, ramp_s=20.0)  # 20 s: turns end
    # (and are saved) all through the outage, not in rounds that may all miss it
    parser.add_argument("--config", type=Path, default=Path("serve_apps/food_delivery.yaml"))
    parser.add_argument("--outage-at-s", type=float, default=60.0)
    parser.add_argument("--outage-s", type=float, default=10.0)
    parser.add_argument("--out")
    args = parser.parse_args()
    binaries = postgres_binaries()
    if binaries is None:
        raise SystemExit("needs PostgreSQL's initdb and pg_ctl (scripts/install.sh dev)")

    import ray

    server = PostgresServer(*binaries)
    try:
        server.start()
        database_url = server.create_database("sessions")
        ray.init(log_to_driver=False)  # RAY_ADDRESS
        started = time.monotonic()
        args.url = deploy(args.config, database_url)
        deployed_s = round(time.monotonic() - started, 1)
        args.ray_address, args.sample_s, args.cooldown_s = None, 10.0, 0.0
        tally = Tally()
        summary, down_at, up_at = asyncio.run(_load_with_outage(args, server, tally))
        t0 = tally.started
        summary.update(deployed_s=deployed_s, outage={"down_at_s": round(down_at - t0, 1),
                                                      "up_at_s": round(up_at - t0, 1)},
                       outcomes=by_phase(tally.outcomes, down_at, up_at),
                       failure_kinds=Counter(f[:120] for f in tally.failures).most_common(8),
                       stored=stored_consistency(server.local_url("sessions")))
    finally:
        from ray import serve

        if ray.is_initialized():
            serve.shutdown()
            ray.shutdown()
        server.remove()
    text = json.dumps(summary, indent=2)
    if args.out:
        Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
