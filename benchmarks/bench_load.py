"""Load on the dialogue service: N simulated customers for M minutes, bounded and self-stopping.

Each customer, until the deadline: opens a session, sends the dialogue's messages as streamed
turns (`?stream=true`), then starts over. It measures each turn's time to the first streamed
token (the first `delta` event) and to `done`. A 429 (or 503) with Retry-After is honoured:
the customer waits and sends the message again; a 429 is not a failure, a 503 is counted.
Anything else (an `error` event, another status, a timeout, a broken stream) is a failure.
Every request has a timeout and the run stops at the deadline plus a grace period whatever
the server does. With `--ray-address` it also samples Serve's replica counts (autoscaling
up under load and back down after) and the resident memory of the Ray processes.

    python -m benchmarks.bench_load --url http://127.0.0.1:8000 --api-key KEY \\
        --token-secret-file sessions/customer_token_secret --customers 50 --minutes 5 \\
        --ray-address auto --out load.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

MESSAGES = ["Hi, my order O10337 arrived 20 minutes late", "Can you do anything about it?",
            "thanks, bye"]
USERS = ["U0214", "U0083", "U0001", "U0002", "U0003"]


@dataclass
class Tally:
    turn_s: list[float] = field(default_factory=list)
    ttft_s: list[float] = field(default_factory=list)
    throttled: int = 0  # 429s honoured
    failures: list[str] = field(default_factory=list)
    samples: list[dict] = field(default_factory=list)  # replica counts and memory over time
    started: float = field(default_factory=time.monotonic)
    # (monotonic time, kind) for every answer: done, throttled, unavailable (a 503), failed
    outcomes: list[tuple[float, str]] = field(default_factory=list)

    def outcome(self, kind: str, failure: str | None = None) -> None:
        self.outcomes.append((time.monotonic(), kind))
        if failure is not None:
            self.failures.append(failure)


async def _turn(http: httpx.AsyncClient, sid: str, headers: dict, text: str,
                tally: Tally, deadline: float) -> None:
    """One message, sent again after each 429/503's Retry-After while time remains."""
    while time.monotonic() < deadline:
        started, first, events = time.monotonic(), None, []
        async with http.stream("POST", f"/v1/sessions/{sid}/messages", headers=headers,
                               params={"stream": "true"}, json={"content": text}) as response:
            if response.status_code in (429, 503):
                await response.aread()
                if response.status_code == 503:
                    tally.outcome("unavailable", f"503 {response.text[:200]}")
                else:
                    tally.throttled += 1
                    tally.outcome("throttled")
                await asyncio.sleep(float(response.headers.get("retry-after", "1")))
                continue
            if response.status_code != 200:
                tally.outcome("failed", f"{response.status_code} {(await response.aread())[:200]}")
                return
            data = ""
            async for line in response.aiter_lines():
                if line.startswith("event:"):
                    events.append(line.removeprefix("event:").strip())
                    if events[-1] == "delta" and first is None:
                        first = time.monotonic() - started
                elif line.startswith("data:"):
                    data = line
        if events[-1:] != ["done"]:  # an `error` event says why in its data
            tally.outcome("failed", f"stream ended with {events[-3:]} {data[:200]}")
            return
        tally.outcome("done")
        tally.turn_s.append(time.monotonic() - started)
        if first is not None:
            tally.ttft_s.append(first)
        return


def customer_headers(args: argparse.Namespace) -> list[dict[str, str]]:
    """Each simulated customer's headers (a bad secret fails here, before any load)."""
    from wow_ray.serving.access import mint_customer_token

    secret = Path(args.token_secret_file).read_text().strip()
    return [{"Authorization": f"Bearer {args.api_key}",
             "X-Customer-Token": mint_customer_token(secret, user, verified=True)}
            for user in USERS]


async def _customer(headers: dict[str, str], args: argparse.Namespace, tally: Tally,
                    deadline: float, start_after_s: float = 0.0) -> None:
    await asyncio.sleep(start_after_s)
    timeout = httpx.Timeout(30.0, read=args.request_timeout_s)
    async with httpx.AsyncClient(base_url=args.url, timeout=timeout) as http:
        while time.monotonic() < deadline:
            try:
                created = await http.post("/v1/sessions", json={"evidence": []}, headers=headers)
                if created.status_code == 429:
                    tally.throttled += 1
                    tally.outcome("throttled")
                elif created.status_code != 201:
                    tally.outcome("unavailable" if created.status_code == 503 else "failed",
                                  f"create {created.status_code} {created.text[:200]}")
                if created.status_code != 201:  # a 429's or 503's Retry-After, as for a message
                    await asyncio.sleep(float(created.headers.get("retry-after", "1")))
                    continue
                sid = created.json()["session_id"]
                for text in MESSAGES:
                    await _turn(http, sid, headers, text, tally, deadline)
            except httpx.HTTPError as exc:
                tally.outcome("failed", f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(1)


async def _sample(args: argparse.Namespace, tally: Tally, stop: asyncio.Event) -> None:
    """Serve's running replicas per deployment and the Ray processes' memory, every interval."""
    import psutil
    import ray
    from ray import serve

    ray.init(address=args.ray_address, log_to_driver=False)
    started = time.monotonic()
    try:
        while not stop.is_set():
            replicas = {f"{app}/{name}": d.replica_states.get("RUNNING", 0)
                        for app, status in serve.status().applications.items()
                        for name, d in status.deployments.items()}
            rss = 0
            for proc in psutil.process_iter(["name", "cmdline", "memory_info"]):
                line = " ".join(proc.info["cmdline"] or [])
                if "ray::" in (proc.info["name"] or "") + line or "raylet" in line:
                    rss += proc.info["memory_info"].rss if proc.info["memory_info"] else 0
            tally.samples.append({"t_s": round(time.monotonic() - started),
                                  "replicas": replicas, "ray_rss_mb": rss >> 20})
            with contextlib.suppress(asyncio.TimeoutError):  # the wait between samples
                await asyncio.wait_for(stop.wait(), args.sample_s)
    finally:
        ray.shutdown()


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return round(statistics.quantiles(values, n=100, method="inclusive")[q - 1], 3) \
        if len(values) > 1 else round(values[0], 3)


async def run(args: argparse.Namespace, tally: Tally | None = None) -> dict:
    """The load; its summary. A caller that passes `tally` also reads each answer's time."""
    tally, stop = tally or Tally(), asyncio.Event()
    headers = customer_headers(args)
    deadline = time.monotonic() + args.minutes * 60
    sampler = asyncio.create_task(_sample(args, tally, stop)) if args.ray_address else None
    customers = [asyncio.create_task(_customer(headers[i % len(headers)], args, tally, deadline,
                                               i * args.ramp_s / args.customers))
                 for i in range(args.customers)]
    done, late = await asyncio.wait(customers, timeout=args.minutes * 60 + args.grace_s)
    for task in done:
        if task.exception() is not None:
            tally.failures.append(f"customer crashed: {task.exception()!r}")
    for task in late:  # self-stopping: a turn still open after the grace period is cut
        task.cancel()
        tally.failures.append("still running after the grace period")
    if sampler:
        await asyncio.sleep(args.cooldown_s)  # autoscaling back down, sampled
        stop.set()
        await sampler
    return {"customers": args.customers, "minutes": args.minutes, "turns": len(tally.turn_s),
            "failures": len(tally.failures), "failure_examples": tally.failures[:5],
            "throttled_429": tally.throttled,
            "outcomes": dict(Counter(kind for _, kind in tally.outcomes)),
            "turn_s": {"p50": _pct(tally.turn_s, 50), "p99": _pct(tally.turn_s, 99)},
            "ttft_s": {"p50": _pct(tally.ttft_s, 50), "p99": _pct(tally.ttft_s, 99)},
            "samples": tally.samples}


def add_load_arguments(parser: argparse.ArgumentParser, *, customers: int, minutes: float,
                       ramp_s: float, credentials: bool = True) -> None:
    """The customers' options, shared with the harnesses that run this load (with defaults);
    `credentials=False` for a harness that deploys the service with its own."""
    if credentials:
        parser.add_argument("--api-key", required=True, help="a customer-scope API key")
        parser.add_argument("--token-secret-file", required=True,
                            help="the customer-token secret the service was deployed with")
    parser.add_argument("--customers", type=int, default=customers)
    parser.add_argument("--minutes", type=float, default=minutes)
    parser.add_argument("--ramp-s", type=float, default=ramp_s,
                        help="start the customers evenly over this many seconds, not at once "
                        "(all at once, one engine batches their turns into waves)")
    parser.add_argument("--request-timeout-s", type=float, default=120.0)
    parser.add_argument("--grace-s", type=float, default=150.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    add_load_arguments(parser, customers=50, minutes=5.0, ramp_s=0.0)
    parser.add_argument("--ray-address", help="sample replicas and memory from this Ray")
    parser.add_argument("--sample-s", type=float, default=10.0)
    parser.add_argument("--cooldown-s", type=float, default=120.0)
    parser.add_argument("--out")
    args = parser.parse_args()
    summary = asyncio.run(run(args))
    text = json.dumps(summary, indent=2)
    if args.out:
        with open(args.out, "w") as out:
            out.write(text)
    print(text)


if __name__ == "__main__":
    main()
