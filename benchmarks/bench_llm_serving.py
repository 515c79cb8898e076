#!/usr/bin/env python
"""Served-model throughput and latency through Ray Serve, against vLLM's offline engine (issue 2).

    PYTHONPATH=. python benchmarks/bench_llm_serving.py [--concurrency 1 4 16] [--max-tokens 64]

Same prompts, same engine arguments, same run:

1. the Serve path: a local Ray serves the model with ``serve_apps.llm`` (vLLM behind Ray Serve's
   OpenAI ingress); an asyncio client keeps ``c`` chat requests in flight over HTTP;
2. the offline path: vLLM's own ``LLM.chat`` in this process, the same prompts in batches of
   ``c`` (so at most ``c`` sequences run at once, as on the Serve path).

The two paths alternate round by round (both engines loaded, one busy at a time).

Every request generates exactly ``--max-tokens`` tokens (``ignore_eos``), so both paths do the
same work. Reported per concurrency: generated tokens/s, request latency p50 and p99, and
Serve's throughput as a fraction of offline (target: >= 0.85 at concurrency 16). Each path is
measured ``--repeats`` times; the medians are reported.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

HEADING = "## LLM serving: Ray Serve vs offline vLLM (issue 2)"
SYSTEM = "You are a polite customer-service agent for a food-delivery platform."
QUESTIONS = [
    "My order is 40 minutes late, where is it?",
    "The rider forgot my drink. Can I get a refund?",
    "I received the wrong burger.",
    "Can I change my delivery address?",
    "How do I get an invoice for my order?",
    "My soup arrived cold and spilled.",
    "Why was my coupon not applied?",
    "I want to cancel my order right now.",
    "The rider was rude to me.",
    "How long does a refund take?",
    "I was charged twice for the same order.",
    "Can I talk to a human please?",
]


def prompts(n: int) -> list[list[dict]]:
    return [
        [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": f"(customer #{i}) {QUESTIONS[i % len(QUESTIONS)]}"},
        ]
        for i in range(n)
    ]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def serve_round(
    url: str, model: str, batch: list[list[dict]], concurrency: int, max_tokens: int
):
    import httpx

    limit = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    tokens = 0

    async def one(client: httpx.AsyncClient, messages: list[dict]) -> None:
        nonlocal tokens
        async with limit:
            start = time.perf_counter()
            response = await client.post(
                "/v1/chat/completions",
                json={
                    "model": model,
                    "messages": messages,
                    "max_tokens": max_tokens,
                    "temperature": 0,
                    "ignore_eos": True,
                },
            )
            response.raise_for_status()
            latencies.append(time.perf_counter() - start)
            tokens += response.json()["usage"]["completion_tokens"]

    async with httpx.AsyncClient(base_url=url, timeout=600) as client:
        start = time.perf_counter()
        await asyncio.gather(*(one(client, m) for m in batch))
        elapsed = time.perf_counter() - start
    return tokens / elapsed, latencies


def start_serve(settings) -> str:
    from ray import serve

    from wow_ray.ray_runtime import init_ray
    from wow_ray.serving import build_llm_app

    init_ray(settings, log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": settings.serve.port})
    app = build_llm_app({"storage_path": settings.storage_path, "model": settings.model})
    serve.run(app, name="bench")
    url = f"http://127.0.0.1:{settings.serve.port}"
    asyncio.run(serve_round(url, settings.model, prompts(2), 2, 8))  # warm-up
    return url


def start_offline(settings):
    from vllm import LLM, SamplingParams

    from wow_ray.llm.engine import engine_kwargs_for
    from wow_ray.registry import Registry, resolve_model

    registry = Registry(settings.storage_path)
    folder = str(registry.local_dir(resolve_model(registry, settings.model)))
    llm = LLM(model=folder, served_model_name=settings.model, **engine_kwargs_for(settings, "cpu"))
    llm.chat(prompts(2), SamplingParams(max_tokens=8), use_tqdm=False)  # warm-up
    return llm


def offline_round(llm, batch: list[list[dict]], concurrency: int, max_tokens: int):
    from vllm import SamplingParams

    params = SamplingParams(max_tokens=max_tokens, temperature=0, ignore_eos=True)
    tokens, latencies, start = 0, [], time.perf_counter()
    for i in range(0, len(batch), concurrency):
        chunk_start = time.perf_counter()
        outputs = llm.chat(batch[i : i + concurrency], params, use_tqdm=False)
        latencies += [time.perf_counter() - chunk_start] * len(outputs)
        tokens += sum(len(o.outputs[0].token_ids) for o in outputs)
    return tokens / (time.perf_counter() - start), latencies


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--max-tokens", type=int, default=64, help="Tokens generated per request.")
    parser.add_argument(
        "--requests-per-slot",
        type=int,
        default=3,
        help="Requests per concurrency slot (at least 6 in all).",
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--storage-path", default=None, help="Storage root (default: settings).")
    parser.add_argument(
        "--no-write", action="store_true", help="Do not update benchmarks/README.md."
    )
    args = parser.parse_args()

    from benchmarks.report import command_line, write_section
    from wow_ray.config import load_settings

    overrides = {"storage_path": args.storage_path} if args.storage_path else {}
    settings = load_settings(**overrides)

    def n_requests(c: int) -> int:
        return max(6, args.requests_per_slot * c)

    # Both engines stay up and take turns, round by round, so that load from other processes on
    # this shared machine falls on both paths alike instead of on whichever ran second.
    url = start_serve(settings)
    llm = start_offline(settings)
    rounds: dict[tuple[str, int], list] = {}
    for _ in range(args.repeats):
        for c in args.concurrency:
            batch = prompts(n_requests(c))
            serve_run = asyncio.run(serve_round(url, settings.model, batch, c, args.max_tokens))
            rounds.setdefault(("serve", c), []).append(serve_run)
            rounds.setdefault(("offline", c), []).append(
                offline_round(llm, batch, c, args.max_tokens)
            )

    def summary(path: str, c: int) -> tuple[float, list[float]]:
        runs = rounds[(path, c)]
        return statistics.median(r[0] for r in runs), [lat for r in runs for lat in r[1]]

    serve_results = {c: summary("serve", c) for c in args.concurrency}
    offline_results = {c: summary("offline", c) for c in args.concurrency}

    lines = [
        "| concurrency | Serve tokens/s | offline tokens/s | Serve / offline | Serve p50 s | Serve p99 s | offline p50 s | offline p99 s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for c in args.concurrency:
        (s_rate, s_lat), (o_rate, o_lat) = serve_results[c], offline_results[c]
        lines.append(
            f"| {c} | {s_rate:.1f} | {o_rate:.1f} | **{s_rate / o_rate:.2f}** | "
            f"{percentile(s_lat, 0.5):.2f} | {percentile(s_lat, 0.99):.2f} | "
            f"{percentile(o_lat, 0.5):.2f} | {percentile(o_lat, 0.99):.2f} |"
        )
    print("\n".join(lines))
    ratio16 = serve_results[args.concurrency[-1]][0] / offline_results[args.concurrency[-1]][0]
    print(
        f"Serve keeps {ratio16:.0%} of offline throughput at concurrency {args.concurrency[-1]} (target >= 85%)"
    )
    if not args.no_write:
        load = os.getloadavg()[0]
        write_section(
            HEADING,
            [
                "Target: at concurrency 16 the Serve path keeps at least 85% of vLLM's offline throughput.",
                "",
                "```",
                command_line("bench_llm_serving.py"),
                "```",
                "",
                *lines,
                "",
                f"SmolLM2-135M-Instruct (fp32, vLLM CPU build), {args.max_tokens} tokens generated per "
                f"request (`ignore_eos`), medians of {args.repeats} rounds; latency percentiles over all "
                f"rounds (offline: the time of the batch a request was in). {os.cpu_count()} cores, "
                f"load average {load:.1f} at the end; {date.today()}.",
            ],
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
