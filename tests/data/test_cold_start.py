"""Cold start without Ray: situations, dialogues, samples, and what the filters catch."""

from __future__ import annotations

import json
import random

import pytest

from wow_ray.agents.prompts import PROMPTS
from wow_ray.data.dialogues import DialogueBuilder
from wow_ray.data.filters import (
    SampleChecker,
    distinctive_text,
    english_problem,
    minhash_signature,
    near_duplicates,
)
from wow_ray.data.situations import (
    LeakGuard,
    Ownership,
    SituationSampler,
    candidate_cases,
    select_balanced,
    sign_cases,
    train_task_cases,
)
from wow_ray.scenario import ToolCall, replay


@pytest.fixture(scope="module")
def guard(food_pack):
    return LeakGuard.from_pack(food_pack)


@pytest.fixture(scope="module")
def samples(food_pack, guard):
    builder = DialogueBuilder(food_pack, "test")
    cases = candidate_cases(food_pack, 40, 11, guard) + train_task_cases(food_pack, guard)[:20]
    return [s for cid, sit in cases for s in builder.build(cid, sit, 11)]


def test_sampled_situations_are_consistent_and_not_held_out(food_pack, guard):
    own = Ownership(food_pack)
    sampler = SituationSampler(food_pack, guard, own)
    rng = random.Random(5)
    items = {r["item_id"]: r for r in food_pack.fixtures["order_items"]}
    seen = 0
    for _ in range(300):
        s = sampler.sample(rng)
        if s is None:
            continue
        seen += 1
        assert s.user_id not in guard.users
        for r in s.requests:
            for slot, value in r.slots.items():
                assert str(value) not in guard.entity_ids
                if slot in ("order_id", "item_id", "payment_id", "coupon_id"):
                    table = own.table_of_key[slot]
                    assert own.owner[(table, str(value))] == s.user_id  # the customer's own record
            if "item_id" in r.slots:
                assert items[r.slots["item_id"]]["order_id"] == r.slots["order_id"]
    assert seen > 200


def test_balanced_selection_keeps_rare_outcomes(food_pack, guard):
    cases = candidate_cases(food_pack, 120, 2, guard)
    signed = sign_cases(food_pack, cases)
    chosen = select_balanced(signed, 26, 0)
    classes = {sig for cid, _, sig in signed if cid in {c for c, _ in chosen}}
    assert len(chosen) == 26
    assert len(classes) >= 20  # nearly one of each outcome class, not 26 of the common path


def test_every_agent_gets_samples_in_the_run_time_format(samples):
    agents = {s.meta.agent for s in samples}
    assert agents == {"understanding", "master", "solution", "response", "handoff"}
    for s in samples:
        spec = PROMPTS[s.meta.agent]
        inp = spec.input_model.model_validate(s.meta.input)
        assert [m.model_dump() for m in s.prompt] == spec.messages(inp)


def test_understanding_targets_are_grounded(samples):
    for s in samples:
        if s.meta.agent != "understanding":
            continue
        target = json.loads(s.target)
        for slot, value in target.items():
            if slot != "intent" and value is not None and slot.endswith("_id"):
                assert str(value) in s.meta.input["message"]


def test_every_emitted_action_passes_the_rule_engine(food_pack, samples):
    from wow_ray.scenario import Situation

    checked = 0
    for s in samples:
        if s.meta.check is None:
            continue
        calls = [ToolCall(**a) for a in [*s.meta.check.prior, *s.meta.check.actions]]
        result = replay(food_pack, Situation.model_validate(s.meta.check.situation), calls)
        assert result.all_allowed, s.id
        checked += 1
    assert checked > 50


def test_checker_passes_good_samples_and_names_bad_ones(food_pack, guard, samples):
    checker = SampleChecker(food_pack, guard)
    assert all(checker.check(s) == ("", "") for s in samples[:60])
    solution = next(s for s in samples if s.meta.agent == "solution" and s.meta.kind == "get_order")
    # a refund nobody is owed: the rules deny it at that point
    bad = solution.model_copy(deep=True)
    bad.meta.check.actions = [{"name": "refund_full", "arguments": {
        "order_id": bad.meta.check.actions[0]["arguments"]["order_id"], "reason": "late_delivery"}}]
    assert checker.check(bad)[0] == "rules"
    tampered = solution.model_copy(deep=True)
    tampered.messages[0].content += " Always refund."
    assert checker.check(tampered)[0] == "schema"
    reply = next(s for s in samples if s.meta.agent == "response" and s.meta.input["must_say"])
    wrong = reply.model_copy(deep=True)
    wrong.messages[-1].content = "I've refunded 999 CNY."
    assert checker.check(wrong)[0] == "schema"
    leaked = reply.model_copy(deep=True)
    held = sorted(i for i in guard.entity_ids if i.startswith("O"))[0]
    leaked.messages[-1].content += f" {held}"
    leaked.meta.input["must_say"] = [*leaked.meta.input["must_say"], held]
    leaked.meta.input["facts"] = [*leaked.meta.input["facts"], f"Order {held}."]
    spec = PROMPTS["response"]
    prompt = spec.messages(spec.input_model.model_validate(leaked.meta.input))
    leaked.messages = [*[type(leaked.messages[0])(**m) for m in prompt], leaked.messages[-1]]
    assert checker.check(leaked)[0] == "held_out"


def test_language_and_near_duplicates():
    assert english_problem("My order O10001 never arrived, can you help me?") is None
    assert english_problem("我的订单还没有到，请帮我查一下") == "not in Latin script"
    assert english_problem("Lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor") is not None
    texts = ["user: my order o10001 is late, please refund it now thanks",
             "user: my order o10777 is late, please refund it now thanks",
             "user: the rider was rude to me at the door of my building"]
    rows = [{"id": str(i), "agent": "understanding",
             "minhash": minhash_signature(distinctive_text_like(t)).tobytes()} for i, t in enumerate(texts)]
    assert near_duplicates(rows, 0.9, 64) == {"1": "0"}


def distinctive_text_like(text: str) -> str:
    import re

    return re.sub(r"[0-9]+", "0", text)


def test_distinctive_text_skips_the_system_prompt(samples):
    s = samples[0]
    assert s.messages[0].content[:30].lower() not in distinctive_text(s)


def test_another_pack_needs_no_code(tmp_path):
    """hotel_booking has no hand-written phrases: examples, fixtures and rules suffice."""
    from wow_ray.scenario import load_pack

    pack = load_pack("hotel_booking")
    guard = LeakGuard.from_pack(pack)
    builder, checker = DialogueBuilder(pack, "t"), SampleChecker(pack, guard)
    cases = candidate_cases(pack, 25, 1, guard) + train_task_cases(pack, guard)
    samples = [s for cid, sit in cases for s in builder.build(cid, sit, 1)]
    assert {s.meta.agent for s in samples} >= {"understanding", "solution", "response"}
    assert [checker.check(s) for s in samples if checker.check(s)[0]] == []
