"""The paraphrase gate: a rewording is used only when it keeps every labelled value."""

from __future__ import annotations

from wow_ray.data.dialogues import DialogueBuilder
from wow_ray.data.paraphrase import paraphrase_problem
from wow_ray.data.situations import LeakGuard, candidate_cases


def test_gate_keeps_values_and_refuses_inventions():
    original = "My order O10001 was late. I want 20 CNY back."
    assert paraphrase_problem(original, "Order O10001 came late, please refund 20 CNY.", ["O10001", "20"]) is None
    assert paraphrase_problem(original, "My order was late, refund me.", ["O10001"]).startswith("lost")
    assert paraphrase_problem(original, "Order O10001 was late, I want 50 back.", ["O10001"]).startswith("added")
    assert paraphrase_problem(original, "订单 O10001 晚了", ["O10001"]) is not None


def test_builder_uses_good_rewordings_and_falls_back_on_bad_ones(food_pack):
    guard = LeakGuard.from_pack(food_pack)
    cases = candidate_cases(food_pack, 12, 4, guard)
    asked = []

    def shouty(text: str, keep: list[str]) -> str | None:
        asked.append(text)
        candidate = f"Hello!! {text}"
        return candidate if paraphrase_problem(text, candidate, keep) is None else None

    builder = DialogueBuilder(food_pack, "t", paraphrase=shouty)
    samples = [s for cid, sit in cases for s in builder.build(cid, sit, 4)]
    reworded = [s for s in samples if s.meta.paraphrased]
    assert asked and reworded and all(s.meta.input["message"].startswith("Hello!!") for s in reworded)
    assert all(s.meta.template.endswith("+paraphrase") for s in reworded)

    broken = DialogueBuilder(food_pack, "t", paraphrase=lambda text, keep: None)
    assert not any(s.meta.paraphrased for cid, sit in cases for s in broken.build(cid, sit, 4))
