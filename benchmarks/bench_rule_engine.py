#!/usr/bin/env python
"""Rule-engine throughput on one core, for issue 3 (target: at least 10,000 checks/s).

    PYTHONPATH=. python benchmarks/bench_rule_engine.py [--repeats 11] [--checks 20000] [--no-write]

Measures, pinned to one CPU core, with the built-in food_delivery pack (58 rules):

- engine: ``RuleEngine.check`` over a mix of eight proposed actions (refunds, coupons,
  cancellations, address changes, a hand-over, a read), each with its context already
  fetched: the cost of deciding;
- end to end: ``Environment.check``: argument validation, a fresh context, and the lazy
  backend queries the rules need (SQLite in memory);
- an episode's backend copy (``pack.new_backend()``) and one ``state_hash()``.

Each figure is the median over the repeats. The result is written into benchmarks/README.md
under "## Rule engine (issue 3)" with this command line.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.report import command_line, write_section  # noqa: E402
from wow_ray.scenario import DialogueState, ToolCall, load_pack  # noqa: E402

HEADING = "## Rule engine (issue 3)"


def pin_to_one_core() -> str:
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if cores:
        os.sched_setaffinity(0, {cores[-1]})
        return f"core {cores[-1]}"
    return "not pinned"


def workload(pack):
    """Eight (action, state) pairs on real fixture records."""
    env = pack.new_environment()
    db = env.backend
    late = next(t for t in pack.tasks if t.description.purpose.startswith("42 minutes late"))
    order = db.get("orders", late.situation.requests[0].slots["order_id"])
    item = db.find("order_items", order_id=order["order_id"])[0]
    placed = db.find("orders", status="placed")[0]
    user = order["user_id"]
    state = DialogueState(user_id=user, identity_verified=True, evidence=["photo"])
    other = DialogueState(user_id=placed["user_id"], identity_verified=True)
    calls = [
        (
            ToolCall(
                name="refund_partial",
                arguments={
                    "order_id": order["order_id"],
                    "amount": 12.0,
                    "reason": "late_delivery",
                },
            ),
            state,
        ),
        (
            ToolCall(
                name="refund_full",
                arguments={"order_id": order["order_id"], "reason": "late_delivery"},
            ),
            state,
        ),
        (
            ToolCall(
                name="issue_coupon",
                arguments={
                    "user_id": user,
                    "amount": 5.0,
                    "reason": "late_delivery",
                    "order_id": order["order_id"],
                },
            ),
            state,
        ),
        (
            ToolCall(
                name="refund_partial",
                arguments={
                    "order_id": order["order_id"],
                    "amount": item["unit_price"],
                    "reason": "wrong_item",
                    "item_id": item["item_id"],
                },
            ),
            state,
        ),
        (
            ToolCall(
                name="cancel_order",
                arguments={"order_id": placed["order_id"], "reason": "changed_mind"},
            ),
            other,
        ),
        (
            ToolCall(
                name="update_address",
                arguments={
                    "order_id": placed["order_id"],
                    "new_address": "1 Century Avenue, Pudong",
                },
            ),
            other,
        ),
        (
            ToolCall(
                name="transfer_to_human", arguments={"user_id": user, "reason": "customer_request"}
            ),
            state,
        ),
        (ToolCall(name="get_order", arguments={"order_id": order["order_id"]}), state),
    ]
    return env, calls


def rate(fn, n: int, repeats: int) -> float:
    """Median calls per second of ``fn(i)`` over ``repeats`` runs of ``n`` calls."""
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(n):
            fn(i)
        rates.append(n / (time.perf_counter() - start))
    return statistics.median(rates)


def millis(fn, n: int) -> float:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--checks", type=int, default=20000)
    parser.add_argument(
        "--no-write", action="store_true", help="Do not update benchmarks/README.md."
    )
    args = parser.parse_args()
    pinned = pin_to_one_core()
    pack = load_pack("food_delivery")
    env, calls = workload(pack)
    engine = pack.rules

    contexts = []
    for call, state in calls:  # fetch each context once; the engine then decides from memory
        clean = ToolCall(name=call.name, arguments=pack.tools.validate(call.name, call.arguments))
        context = env.context(state, clean)
        engine.check(clean, context)
        contexts.append((clean, context))
    decisions = [engine.check(c, ctx) for c, ctx in contexts]
    k = len(contexts)
    engine_rate = rate(lambda i: engine.check(*contexts[i % k]), args.checks, args.repeats)
    e2e_rate = rate(lambda i: env.check(*calls[i % k]), max(args.checks // 10, 500), args.repeats)
    pack.new_backend().close()
    copy_ms = millis(lambda: pack.new_backend().close(), 200)
    hash_ms = millis(env.state_hash, 30)

    rows = sum(len(r) for r in pack.fixtures.values())
    allowed = sum(d.allowed for d in decisions)
    lines = [
        f"- engine only (`RuleEngine.check`, context already fetched): **{engine_rate:,.0f} checks/s**",
        f"- end to end (`Environment.check`: validation + lazy SQLite reads): **{e2e_rate:,.0f} checks/s**",
        f"- episode backend copy (`pack.new_backend()`, {rows} rows): **{copy_ms:.2f} ms**; `state_hash()`: **{hash_ms:.1f} ms**",
    ]
    cpu = (
        next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            platform.processor(),
        )
        if Path("/proc/cpuinfo").exists()
        else platform.processor()
    )
    context_line = (
        f"Workload: food_delivery pack, {len(engine.rules.by_id)} rules, {k} actions in rotation "
        f"({allowed} allowed, {k - allowed} denied); median of {args.repeats} runs of {args.checks:,} checks "
        f"(end to end: {max(args.checks // 10, 500):,}); pinned to one core ({pinned}); {cpu}; "
        f"Python {platform.python_version()}; {date.today().isoformat()}. The machine is shared, so expect noise."
    )
    print("\n".join(lines))
    print(context_line)
    if not args.no_write:
        write_readme(lines, context_line)
    return 0 if engine_rate >= 10_000 else 1


def write_readme(lines: list[str], context_line: str) -> None:
    write_section(
        HEADING,
        [
            "Target: at least 10,000 checks/s on one core.",
            "",
            "```",
            command_line("bench_rule_engine.py"),
            "```",
            "",
            *lines,
            "",
            context_line,
            "",
            "On this shared 2-core machine the medians move 2-3x with other jobs' load (engine only",
            "measured 19k-61k checks/s across runs on 2026-11-27); compare runs made on one machine.",
        ],
    )


if __name__ == "__main__":
    raise SystemExit(main())
