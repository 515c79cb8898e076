"""The model-played customer and the judge, with a scripted chat model in place of the LLM: the
customer writes its turns from the task's instructions and ends on a signal; the judge's
answers are schema-checked, labelled model-judged and kept apart from the deterministic verdict."""

from __future__ import annotations

import asyncio

from wow_ray.evaluation import evaluate_task, judge, local_target, run_episode
from wow_ray.evaluation.customer import STOP, ModelCustomer
from wow_ray.llm.chat import ScriptedChatClient

LATE_FULL = "fd-009"  # an hour late: a full refund of 38 CNY


def task(pack, task_id):
    return next(t for t in pack.tasks if t.id == task_id)


def test_the_model_played_customer_writes_from_its_instructions_and_stops(food_pack):
    t = task(food_pack, LATE_FULL)
    order = t.situation.requests[0].slots["order_id"]
    customer_model = ScriptedChatClient({"response": [
        f"Customer: My order {order} arrived an hour late. I want a refund.",
        f"Thank you, that is all. {STOP}"]})
    customer = ModelCustomer(t, customer_model, max_turns=4)
    episode = asyncio.run(run_episode(t, local_target(food_pack, None), customer))
    assert episode.signal == "stop" and len(episode.transcript.turns) == 1
    assert episode.transcript.turns[0].customer == f"My order {order} arrived an hour late. I want a refund."
    first = customer_model.calls[0].messages
    assert t.user_scenario.instructions.reason_for_call in first[0]["content"]  # its instructions
    second = customer_model.calls[1].messages
    assert second[-1]["content"] == f"Agent: {episode.transcript.turns[0].reply}"  # it read the reply


def test_a_silent_model_customer_gives_up_and_turns_are_bounded(food_pack):
    t = task(food_pack, LATE_FULL)
    silent = ModelCustomer(t, ScriptedChatClient({"response": [""]}))
    assert asyncio.run(run_episode(t, local_target(food_pack, None), silent)).signal == "give_up"
    chatty = ModelCustomer(t, ScriptedChatClient({"response": ["Where is my order?"]}), max_turns=2)
    episode = asyncio.run(run_episode(t, local_target(food_pack, None), chatty))
    assert len(episode.transcript.turns) <= 2 and episode.signal == "max_turns"


def test_the_judge_is_schema_checked_and_reported_apart(food_pack):
    t = task(food_pack, LATE_FULL)
    judge_model = ScriptedChatClient({"assertion": [{"met": True, "why": "it refunded"}, "not json"],
                                      "tone": [{"tone": 4}]})
    plain, _ = asyncio.run(evaluate_task(food_pack, t, local_target(food_pack, None)))
    judged, dialogue = asyncio.run(evaluate_task(food_pack, t, local_target(food_pack, None),
                                                 client=judge_model, judge=True))
    assert plain.judged is None and judged.judged is not None and judged.judged.model_judged
    assert judged.success == plain.success, "the judge never changes the deterministic verdict"
    verdict = judged.judged
    n = len(t.evaluation_criteria.nl_assertions)
    assert [a.met for a in verdict.assertions] == ([True, None] + [None] * (n - 2))[:n]
    assert verdict.tone == 4 and verdict.judge_model == "scripted"
    assert dialogue.scores["judged"]["model_judged"] is True
    # a judge that answers nothing valid gives no verdict, not a crash
    broken = asyncio.run(judge(["The agent refunded 38 CNY."], dialogue.transcript,
                               ScriptedChatClient(default="???")))
    assert broken.assertions[0].met is None and broken.tone is None
