"""The sessions database stops for ten seconds while the dialogue service, spread over the
worker nodes of `multinode.py`'s cluster, is under load: `load_store_outage.py`'s fault, on
several nodes.

`run_store_outage` (host side; `python -m benchmarks.multinode --store-outage` calls it)
starts one driver on the head's host, `python -m benchmarks.multinode_outage load`, which
deploys the food_delivery service as `multinode_dialogue.py` does (a replica of the gateway
and of every agent on each worker node, the head's proxy in front, sessions in PostgreSQL on
the head) and then runs `bench_load.py`'s customers against the head's proxy (streamed turns,
Retry-After honoured). The host stops PostgreSQL (`pg_ctl -m immediate`, as a crash) at
`outage_at_s` into the load and starts it again `outage_s` later; nothing on the service's side
is restarted. Then each answer's outcome by phase (before, during, after) and what the
database holds: every session's turns once each, in order, and its row's version equal to them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks.load_store_outage import by_phase, stored_consistency
from benchmarks.multinode import MultiNodeRay, progress_lines, wait_for
from benchmarks.multinode_dialogue import CUSTOMER_KEY, ROUTE, deploy_service, replica_nodes
from benchmarks.multinode_fault import driver_result, start_driver
from benchmarks.postgres_server import PostgresServer


def run_store_outage(nodes: MultiNodeRay, db: PostgresServer, workdir: Path, *,
                     customers: int = 12, minutes: float = 1.5, ramp_s: float = 10.0,
                     outage_at_s: float = 30.0, outage_s: float = 10.0,
                     with_model: bool = False, database: str = "sessions") -> dict[str, Any]:
    """The load with the outage in it; the load's summary with `outage`, `outcomes` (by
    phase), `not_done_after_up_s` (when each failed answer after the database's return came,
    from that return), `placement` (where the replicas ran) and `stored` (the consistency
    of `database`, a new one)."""
    database_url = db.create_database(database)
    progress, go = workdir / "load.jsonl", workdir / "go"
    driver = start_driver(nodes, workdir, "load", [
        sys.executable, "-m", "benchmarks.multinode_outage", "load", "--address",
        nodes.head_address, "--workdir", str(workdir), "--database-url", database_url,
        "--go-file", str(go), "--customers", str(customers), "--minutes", str(minutes),
        "--ramp-s", str(ramp_s), *(["--with-model"] if with_model else [])])
    try:
        wait_for(lambda: driver.poll() is None and bool(progress_lines(progress)),
                 1500 if with_model else 300, "the service deployed")
        go.touch()
        time.sleep(outage_at_s)
        down_at = time.monotonic()  # one clock for every namespace of the machine
        db.stop()
        time.sleep(outage_s)
        db.start()
        up_at = time.monotonic()
        out = driver_result(driver, workdir, "load", minutes * 60 + 400)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
    t0 = out.pop("load_started")
    outcomes = [(t, kind) for t, kind in out.pop("outcome_times")]
    out.update(outage={"down_at_s": round(down_at - t0, 1), "up_at_s": round(up_at - t0, 1)},
               outcomes=by_phase(outcomes, down_at, up_at),
               not_done_after_up_s=[round(t - up_at, 1) for t, kind in outcomes
                                    if t >= up_at and kind != "done"],
               stored=stored_consistency(db.local_url(database)))
    return out


# -- the driver (on the head's host) -------------------------------------------------------------

def load(args: argparse.Namespace) -> dict[str, Any]:
    import ray

    from benchmarks.bench_load import Tally, run

    deploy_service(args.database_url, args.workdir, args.with_model)
    placement = replica_nodes()
    (args.workdir / "load.jsonl").write_text(json.dumps({"deployed": True}) + "\n")
    wait_for(args.go_file.exists, 600, f"{args.go_file} to exist")
    args.url = f"http://{ray.util.get_node_ip_address()}:8000{ROUTE}"
    args.api_key, args.token_secret_file = CUSTOMER_KEY, str(args.workdir / "customer_token_secret")
    args.ray_address, args.sample_s, args.cooldown_s = None, 10.0, 0.0
    tally = Tally()
    summary = asyncio.run(run(args, tally))
    return {**summary, "placement": placement, "placement_after": replica_nodes(),
            "load_started": tally.started, "outcome_times": tally.outcomes,
            "failure_kinds": Counter(f[:120] for f in tally.failures).most_common(8),
            "failure_messages": tally.failures}


def main() -> None:
    from benchmarks.bench_load import add_load_arguments

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("job", choices=["load"])
    parser.add_argument("--address", required=True)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--go-file", type=Path, required=True)
    parser.add_argument("--with-model", action="store_true")
    # the customer key and token secret are the service's own (multinode_dialogue.py)
    add_load_arguments(parser, customers=12, minutes=1.5, ramp_s=10.0, credentials=False)
    args = parser.parse_args()
    import ray

    ray.init(address=args.address, log_to_driver=False)
    try:
        out = load(args)
    finally:
        ray.shutdown()
    print(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
