#!/usr/bin/env python
"""Generate the food_delivery pack's fixtures and tasks (deterministic: seeded).

    PYTHONPATH=. python scripts/gen_food_delivery.py

Writes ``wow_ray/scenarios/food_delivery/fixtures/*.json`` and ``tasks.json``. The records
each task needs are built together with the task (scripts/food_delivery/*_cases.py); the gold
actions and facts to communicate come from the oracle, and the script fails if the oracle's
write actions differ from what the case expects, so a rule that does not do what the case
author meant is caught here. The output is checked in and can be edited by hand afterwards
(``wow-ray scenario validate food_delivery`` and the tests keep it consistent).
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts" / "food_delivery")]

from mixed_and_injection_cases import Mixed  # noqa: E402
from world import World  # noqa: E402

from wow_ray.scenario import Oracle, PackValidationError, Task, load_pack, replay  # noqa: E402

SEED = 20250614
PACK = ROOT / "wow_ray" / "scenarios" / "food_delivery"
SPLITS = ["train", "train", "train", "dev", "test"]


def write_rows(path: Path, rows: list[dict]) -> None:
    """One row per line: diffs stay readable and a person can edit a row in place."""
    body = ",\n".join("  " + json.dumps(row, ensure_ascii=False) for row in rows)
    path.write_text(f"[\n{body}\n]\n" if rows else "[]\n", encoding="utf-8")


def task_dict(index: int, case, split: str) -> dict:
    intents = [r["intent"] for r in case.requests]
    tags = [f"intent:{i}" for i in dict.fromkeys(intents)]
    tags += ["multi_intent"] if len(intents) > 1 else []
    tags += [t for t in case.tags if t not in tags]
    return {
        "id": f"fd-{index:03d}",
        "split": split,
        "tags": tags,
        "description": {"purpose": case.purpose, "relevant_policies": None, "notes": None},
        "user_scenario": {
            "persona": case.persona,
            "instructions": {
                "domain": "food_delivery",
                "reason_for_call": case.reason,
                "known_info": case.known,
                "unknown_info": case.unknown,
                "task_instructions": case.instructions,
            },
        },
        "initial_state": None,
        "situation": {
            "user_id": case.user["user_id"],
            "identity_verified": case.verified,
            "evidence": case.evidence,
            "flags": case.flags,
            "human_requests": case.human_requests,
            "requests": case.requests,
        },
        "evaluation_criteria": {"actions": [], "communicate_info": [], "nl_assertions": case.nl,
                                "reward_basis": ["DB", "COMMUNICATE"]},
    }


def main() -> int:
    world = World(SEED)
    world.background(60)
    cases = Mixed(world).all()
    for table, rows in world.tables.items():
        write_rows(PACK / "fixtures" / f"{table}.json", rows)
    (PACK / "tasks.json").write_text("[]\n", encoding="utf-8")

    pack = load_pack(PACK)
    oracle = Oracle(pack)
    seen: Counter[str] = Counter()
    tasks, problems = [], []
    for index, case in enumerate(cases, start=1):
        split = SPLITS[seen[case.group] % len(SPLITS)]
        seen[case.group] += 1
        task = Task.model_validate(task_dict(index, case, split))
        result = oracle.solve(task)
        writes = result.writes
        if writes != case.expect:
            denied = [d.rule_ids for d in result.denials]
            problems.append(f"{task.id} ({case.purpose}): expected {case.expect}, oracle did {writes}; denials {denied}")
        gold = result.gold_actions(task.id)
        check = replay(pack, task.situation, gold)
        rules = [rid for d in check.decisions for rid in d.rule_ids] + [rid for d in result.denials for rid in d.rule_ids]
        task.description.relevant_policies = ", ".join(dict.fromkeys(rules)) or None
        task.evaluation_criteria.actions = gold
        task.evaluation_criteria.communicate_info = result.communicate_info
        tasks.append(task.model_dump(mode="json"))
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
    (PACK / "tasks.json").write_text(json.dumps(tasks, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    load_pack(PACK)  # the written pack must validate
    splits = Counter(t["split"] for t in tasks)
    rows = sum(len(r) for r in world.tables.values())
    print(f"wrote {rows} fixture rows and {len(tasks)} tasks ({dict(splits)}) to {PACK}")
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except PackValidationError as exc:
        print(exc.report(), file=sys.stderr)
        raise SystemExit(1) from None
