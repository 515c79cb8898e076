"""The dialogue service on `multinode.py`'s cluster: sessions in PostgreSQL, customers, and
an evaluation job submitted to the cluster; the drivers `multinode_fault.py` runs on the
head's host while it kills a worker node, and what the sessions database holds.

    python -m benchmarks.multinode_dialogue serve --address A --database-url URL --workdir DIR
        deploys the food_delivery service (`serve deploy`'s code path) with two replicas of the
        gateway and of every agent, one on each worker node (`max_replicas_per_node=1` and a
        resource only worker nodes offer), the head's HTTP proxy in front; then (once
        --go-file exists, if given) --sessions customers each hold a session of --turns turns,
        every other one streamed, retrying a lost turn once (after reading the transcript: a
        turn stored before its reply was lost is not sent twice); then waits for a replica of
        every deployment on each worker node again (a killed node's, on its replacement)
    python -m benchmarks.multinode_dialogue evaluate --dashboard URL --gateway URL --workdir DIR
        `evaluators.run` submitted through Ray's Jobs API against that gateway: scripted
        customers, the tasks named, --trials, --actors simulator actors spread over the nodes
        offering --actor-resources; where each actor runs (the state API) is appended to
        DIR/simulators.jsonl as it changes, and returned with its restarts

Without --with-model the LLM app is a stand-in that refuses every call (503), as a model that
is down does: every agent then takes its deterministic fallback (`agents/base.py`), so the test
needs no vLLM (a minute or more to start on 2 cores). With it, vLLM serves the embedded model.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shlex
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks.multinode import MultiNodeRay, wait_for
from benchmarks.postgres_server import PostgresServer, postgres_binaries

APP, ROUTE = "fd", "/fd"
CUSTOMER_KEY = "multinode-customer-key-not-secret"
OPERATOR_KEY = "multinode-operator-key-not-secret"
TOKEN_SECRET = "multinode-customer-token-secret-not-secret-0123456789"
DEPLOYMENTS = ("Gateway", "Master", "Understanding", "Policy", "Solution", "Response", "Handoff")
USERS = ("U0214", "U0083", "U0001", "U0226")
# What the customers say, over and over: no message ends or hands over the session.
MESSAGES = ("Where is my order O10337?", "What are your delivery hours?",
            "Can you tell me the status of order O10337 again?", "How do refunds work?",
            "Is order O10337 on its way?", "What payment methods do you take?")


# -- drivers (on the head's host) ---------------------------------------------------------------

def service_config(database_url: str, storage: str, secret_file: str) -> Any:
    """The app as `serve deploy` takes it; the per-deployment overrides put one replica of
    every deployment on each worker node (the `train_host` resource only they offer)."""
    from ray.serve.schema import ServeDeploySchema

    from wow_ray.serving.access import hash_api_key

    keys = [{"name": scope, "scope": scope, "sha256": hash_api_key(key)}
            for scope, key in (("customer", CUSTOMER_KEY), ("operator", OPERATOR_KEY))]
    on_each_worker = {"max_replicas_per_node": 1,
                      "autoscaling_config": {"min_replicas": 2, "max_replicas": 2},
                      "ray_actor_options": {"num_cpus": 0.1, "resources": {"train_host": 0.01}}}
    return ServeDeploySchema(applications=[{
        "name": APP, "route_prefix": ROUTE, "import_path": "serve_apps.dialogue:build_dialogue_app",
        "args": {"dialogue": {"scenario": "food_delivery"}, "database_url": database_url,
                 "llm": {"app": "llm", "settings": {"storage_path": storage}},
                 "gateway": {"auth": {"api_keys": keys, "api_keys_file": None,
                                      "api_keys_env": None, "customer_token_secret_env": None,
                                      "customer_token_secret_file": secret_file}}},
        "deployments": [{"name": name, **on_each_worker} for name in DEPLOYMENTS]}])


def deploy_llm(storage: str, with_model: bool) -> None:
    """The app named 'llm' the agents call: vLLM, or a stand-in that refuses every call."""
    from ray import serve

    from wow_ray.config import load_settings
    from wow_ray.serving.dialogue_app import LLM_SERVER_PREFIX

    if with_model:
        from wow_ray.registry import Registry, prepare_embedded_model
        from wow_ray.serving import build_llm_app

        prepare_embedded_model(Registry(storage))
        serve.run(build_llm_app({"storage_path": storage}), name="llm", route_prefix="/llm")
        return

    @serve.deployment(ray_actor_options={"num_cpus": 0})
    class NoModel:
        async def chat_plain(self, body: dict) -> Any:
            yield {"error": {"message": "no model on this cluster (multinode_dialogue.py)",
                             "code": 503}}

    base = load_settings(storage_path=storage).model.split(":")[0]
    serve.run(NoModel.options(name=f"{LLM_SERVER_PREFIX}{base}").bind(), name="llm",
              route_prefix=None)


def deploy_and_wait(config: Any, app: str, timeout_s: float = 600) -> None:
    """Apply a `ServeDeploySchema` (the code path of `serve deploy`); wait until `app` runs.
    tests/conftest.py's dialogue app is deployed with it too."""
    from ray import serve
    from ray.serve.context import _get_global_client

    _get_global_client().deploy_apps(config)
    deadline = time.monotonic() + timeout_s
    time.sleep(1.0)  # a redeployed app reads RUNNING until the controller takes the new config
    while time.monotonic() < deadline:
        status = serve.status().applications.get(app)
        if status is not None and status.status == "RUNNING":
            return
        if status is not None and status.status == "DEPLOY_FAILED":
            raise RuntimeError(f"app {app} failed to deploy: {status.message}")
        time.sleep(1.0)
    raise TimeoutError(f"app {app} did not become RUNNING in {timeout_s} s")


def deploy_service(database_url: str, workdir: Path, with_model: bool) -> None:
    from ray import serve

    from wow_ray.registry import Registry

    storage, secret_file = workdir / "storage", workdir / "customer_token_secret"
    Registry(str(storage))  # made once here, not by every replica at once
    secret_file.write_text(TOKEN_SECRET + "\n")
    serve.start(proxy_location="HeadOnly", http_options={"host": "0.0.0.0", "port": 8000})
    deploy_llm(str(storage), with_model)
    deploy_and_wait(service_config(database_url, str(storage), str(secret_file)), APP)


def replica_nodes(app: str = APP) -> dict[str, list[str]]:
    """Per deployment of `app`, the addresses of the nodes its live replicas run on."""
    import ray
    from ray.util.state import list_actors

    address = {n["NodeID"]: n["NodeManagerAddress"] for n in ray.nodes()}
    found: dict[str, list[str]] = defaultdict(list)
    for actor in list_actors(filters=[("state", "=", "ALIVE")], limit=10_000):
        if actor.class_name.startswith(f"ServeReplica:{app}:"):
            found[actor.class_name.rsplit(":", 1)[1]].append(address.get(actor.node_id, "?"))
    return {name: sorted(nodes) for name, nodes in sorted(found.items())}


async def hold_session(url: str, index: int, turns: int, progress: Path, pause_s: float,
                       stream: bool) -> dict[str, Any]:
    """One customer's session of `turns` turns, plain or streamed, through the evaluation's
    HTTP client (`GatewayTarget`): a lost turn is retried once, after reading the transcript
    (a turn stored before its reply was lost counts as answered and is not sent again)."""
    from wow_ray.evaluation.http import GatewayTarget
    from wow_ray.serving.access import mint_customer_token

    target = GatewayTarget(url, CUSTOMER_KEY, timeout_s=150.0, stream=stream,
                           customer_token=lambda user, verified: mint_customer_token(
                               TOKEN_SECRET, user, verified=verified))
    out: dict[str, Any] = {"session_id": None, "streamed": stream, "sent": [], "answered": 0,
                           "retried": 0, "from_transcript": 0, "withdrawn": 0, "failed": [],
                           "slowest_s": 0.0}
    try:
        await target.open_session(USERS[index % len(USERS)], True, {"customer": index})
        out["session_id"] = target.session_id
        for turn in range(turns):
            text = MESSAGES[turn % len(MESSAGES)]
            out["sent"].append(text)
            started = time.monotonic()
            reply = await target.send(text, [])
            out["answered"] += 1
            out["withdrawn"] += reply.withdrawn
            out["slowest_s"] = max(out["slowest_s"], round(time.monotonic() - started, 2))
            with open(progress, "a") as line:
                line.write(json.dumps({"session": index, "turn": turn, "sent_at": started,
                                       "t": time.monotonic()}) + "\n")
            await asyncio.sleep(pause_s)
    except Exception as exc:  # what went wrong is the result; the other customers go on
        out["failed"].append(f"turn {len(out['sent']) - 1}: {type(exc).__name__}: {exc}")
    finally:
        out["retried"], out["from_transcript"] = target.lost, target.from_transcript
        await target.http.aclose()
    return out


def wait_for_spread(timeout_s: float) -> tuple[dict[str, list[str]], float | None]:
    """Every deployment's replicas as they stand once each has one on every worker node
    again (a killed node's replicas started by Serve on its replacement), or at the timeout;
    and the seconds that took (None at the timeout)."""
    started = time.monotonic()
    while True:
        placement = replica_nodes()
        spread = len(placement) == len(DEPLOYMENTS) and all(
            len(set(nodes)) == 2 for nodes in placement.values())
        if spread or time.monotonic() - started > timeout_s:
            return placement, round(time.monotonic() - started, 1) if spread else None
        time.sleep(2.0)


def serve_sessions(args: argparse.Namespace) -> dict[str, Any]:
    import ray

    deploy_service(args.database_url, args.workdir, args.with_model)
    placement, llm_placement = replica_nodes(), replica_nodes("llm")
    progress = args.workdir / "turns.jsonl"
    with open(progress, "a") as line:  # the host side waits for this before it counts turns
        line.write(json.dumps({"deployed": True, "t": time.monotonic()}) + "\n")
    url = f"http://{ray.util.get_node_ip_address()}:8000{ROUTE}"
    if args.go_file is not None:  # the customers start when the host says so
        wait_for(args.go_file.exists, args.timeout_s, f"{args.go_file} to exist")

    async def customers() -> list[dict[str, Any]]:  # every other one streams its turns
        return list(await asyncio.gather(*(
            hold_session(url, i, args.turns, progress, args.pause_s, stream=i % 2 == 0)
            for i in range(args.sessions))))

    sessions = asyncio.run(customers())
    placement_after, respread_s = wait_for_spread(args.respread_timeout_s)
    return {"placement": placement, "placement_after": placement_after,
            "respread_after_sessions_s": respread_s, "llm_placement": llm_placement,
            "llm_placement_after": replica_nodes("llm"), "sessions": sessions, "gateway": url}


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    """`evaluators.run` as a Ray job against the gateway; its status and its report."""
    from ray.job_submission import JobStatus, JobSubmissionClient

    out = args.workdir / "eval"
    entrypoint = shlex.join([
        sys.executable, "-m", "evaluators.run", "--scenario", "food_delivery", "--split", "dev",
        "--tasks", args.tasks, "--trials", str(args.trials), "--customer", "scripted",
        "--model", "none", "--actors", str(args.actors), "--actor-resources", args.actor_resources,
        "--gateway-url", args.gateway, "--api-key", CUSTOMER_KEY, "--operator-key", OPERATOR_KEY,
        "--jwt-secret", TOKEN_SECRET, "--out", str(out)])
    client = JobSubmissionClient(args.dashboard)
    started = time.monotonic()
    job = client.submit_job(entrypoint=entrypoint)
    terminal = {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED}
    simulators: dict[str, dict[str, Any]] = {}
    while (status := client.get_job_status(job)) not in terminal:
        with contextlib.suppress(Exception):  # the state API may stall while a node dies
            watch_simulators(simulators, args.workdir / "simulators.jsonl")
        if time.monotonic() - started > args.timeout_s:
            client.stop_job(job)
            break
        time.sleep(1.0)
    watch_simulators(simulators, args.workdir / "simulators.jsonl")  # their restarts, at the end
    report = out / "report.json"
    return {"job": job, "status": str(status.value), "seconds": round(time.monotonic() - started, 1),
            "logs_tail": client.get_job_logs(job)[-2000:], "simulators": list(simulators.values()),
            "report": json.loads(report.read_text()) if report.exists() else None}


def watch_simulators(seen: dict[str, dict[str, Any]], progress: Path) -> None:
    """The evaluation's simulator actors as the state API shows them now: per actor, the nodes
    it ran on, its state and its restarts in `seen`; a line in `progress` when one moves."""
    import ray
    from ray.util.state import list_actors

    address = {n["NodeID"]: n["NodeManagerAddress"] for n in ray.nodes()}
    for actor in list_actors(filters=[("class_name", "=", "SimulatorActor")], detail=True,
                             limit=1000, raise_on_missing_output=False):
        node = address.get(actor.node_id or "")
        known = seen.setdefault(actor.actor_id, {"actor_id": actor.actor_id, "nodes": [],
                                                 "state": None, "restarts": 0})
        moved = (actor.state, node) != (known["state"], known["nodes"][-1] if known["nodes"] else None)
        if node and (not known["nodes"] or known["nodes"][-1] != node):
            known["nodes"].append(node)
        known["state"], known["restarts"] = actor.state, actor.num_restarts
        if moved:
            with open(progress, "a") as line:
                line.write(json.dumps({"actor": actor.actor_id, "state": actor.state,
                                       "node": node, "t": time.monotonic()}) + "\n")


# -- host side: the drivers, the fault, what PostgreSQL holds ------------------------------------

@contextlib.contextmanager
def sessions_database(nodes: MultiNodeRay) -> Iterator[PostgresServer]:
    """A PostgreSQL server in the head's namespace, on the head's address (every node reaches
    it; this machine reaches it through its unix socket); stopped and deleted on exit."""
    binaries = postgres_binaries()
    if binaries is None:
        raise RuntimeError("no PostgreSQL server binaries (scripts/install.sh dev installs them)")
    server = PostgresServer(*binaries, listen=nodes.node_ip(0), netns=nodes.hosts[0].netns)
    try:
        server.start()
        yield server
    finally:
        server.remove()


def stored_sessions(local_url: str, session_ids: list[str] | None = None
                    ) -> dict[str, dict[str, Any]]:
    """What the sessions database holds per session (``session_ids``, or every one): its
    turns' indices and customer messages in order, the session row's version (one more per
    saved turn; None if the row is missing) and its metadata (an evaluation's episode is
    marked ``simulated`` with its ``task_id`` and ``trial``)."""
    from sqlalchemy import create_engine, text

    where = " WHERE session_id = ANY(:ids)" if session_ids is not None else ""
    params = {"ids": session_ids} if session_ids is not None else {}
    engine = create_engine(local_url)
    try:
        with engine.connect() as conn:
            turns = conn.execute(text(f"SELECT session_id, idx, customer FROM turns{where} "
                                      "ORDER BY session_id, idx"), params).all()
            rows = {sid: (version, meta) for sid, version, meta in conn.execute(
                text(f"SELECT session_id, version, metadata FROM sessions{where}"), params).all()}
    finally:
        engine.dispose()

    def held(sid: str) -> dict[str, Any]:
        version, meta = rows.get(sid, (None, "{}"))
        return {"version": version, "indices": [], "customer": [],
                "metadata": json.loads(meta or "{}")}

    out = {sid: held(sid) for sid in (session_ids if session_ids is not None else rows)}
    for sid, idx, customer in turns:
        out.setdefault(sid, held(sid))["indices"].append(idx)
        out[sid]["customer"].append(customer)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("job", choices=["serve", "evaluate"])
    parser.add_argument("--address", required=True)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--database-url")
    parser.add_argument("--with-model", action="store_true")
    parser.add_argument("--sessions", type=int, default=6)
    parser.add_argument("--turns", type=int, default=8)
    parser.add_argument("--pause-s", type=float, default=0.2, help="between a customer's turns")
    parser.add_argument("--dashboard")
    parser.add_argument("--gateway")
    parser.add_argument("--tasks", default="fd-004,fd-009")
    parser.add_argument("--trials", type=int, default=1)
    parser.add_argument("--actors", type=int, default=2)
    parser.add_argument("--actor-resources", default="{}", help="JSON, as evaluators.run takes it")
    parser.add_argument("--go-file", type=Path, help="serve: hold the customers until it exists")
    parser.add_argument("--respread-timeout-s", type=float, default=120.0,
                        help="serve: how long to wait, after the sessions, for a replica of "
                             "every deployment on each worker node again")
    parser.add_argument("--timeout-s", type=float, default=300)
    args = parser.parse_args()
    import ray

    ray.init(address=args.address, log_to_driver=False)
    try:
        out = serve_sessions(args) if args.job == "serve" else evaluate(args)
    finally:
        ray.shutdown()
    print(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
