"""A deliberately worse candidate, really trained on corrupted data, is rejected by the gate for
being worse, and production's alias does not move.

At the smallest scale that can fail: the understanding agent's cold-start samples have their
target swapped to a wrong intent (one the prompt offers, so the served schema lets the model
say it), a candidate adapter is fine-tuned on those alone (DeAR, a learning rate well above
the loop's), and one turn of the loop with the real stages evaluates production (the base
model) and the candidate on dev's first four tasks, gates and moves the aliases. Those four
tasks are late deliveries; three opening messages offer the model late_delivery first among
several intents (the fourth names it alone, and no model is asked): the scripted customer is deterministic and vLLM decodes at temperature 0, so
a candidate that names another intent (or whose answers fail and fall back) does worse on
success or model share, and one that learned nothing ties, is "within the noise", and fails
this test.

The corruption helper lives here, not in ``wow_ray.data``: corrupted data exists only to prove
that the gate rejects what it must; no user's pipeline would build it.
"""

from __future__ import annotations

import json

import pytest

from wow_ray.agents.prompts import (
    NO_INTENT,
    UnderstandingInput,
    UnderstandingOutput,
    render_understanding,
)
from wow_ray.data.failures import EvaluatedDialogue
from wow_ray.data.formats import ChatSample, Message, SampleMeta
from wow_ray.data.store import load_dataset, register_samples
from wow_ray.flywheel import WORSE_RULES, Flywheel, FlywheelOptions
from wow_ray.flywheel.stages import RealStages, StageOptions
from wow_ray.registry import CANDIDATE, PRODUCTION, EntryKind, Registry

AGENT = "understanding"
ADAPTER = f"food_delivery-{AGENT}"
# The measure each worse-rule cites, as the gate records it.
CITED = {"worse_success": "success", "worse_model_share": "model_share",
         "less_compliant": "compliance"}


def with_wrong_intent(sample: ChatSample) -> ChatSample | None:
    """``sample`` (an understanding sample) with its target naming a wrong intent: the last
    intent the prompt offers other than the right one (``none`` if that is all there is), the
    slots the two intents share kept; None when the prompt offers no wrong intent."""
    inp = UnderstandingInput.model_validate(sample.meta.input)
    right = json.loads(sample.target)
    wrong = [c.name for c in inp.candidates if c.name != right["intent"]]
    if wrong:
        intent = wrong[-1]
    elif inp.offer_none and right["intent"] != NO_INTENT:
        intent = NO_INTENT
    else:
        return None
    slots = {k: v for k, v in right.items() if k != "intent"} if intent != NO_INTENT else {}
    target = render_understanding(UnderstandingOutput(intent=intent, slots=slots), inp)
    return sample.model_copy(update={
        "id": f"{sample.id}-wrong-intent",
        "messages": [*sample.prompt, Message(role="assistant", content=target)]})


def register_wrong_intents(registry: Registry, cold_start: str) -> tuple[str, int]:
    """The cold start's understanding samples with wrong intents, registered as a dataset."""
    version = load_dataset(registry, cold_start)
    samples = [with_wrong_intent(s) for s in version.records("train") if s.meta.agent == AGENT]
    samples = [s for s in samples if s is not None]
    entry, _ = register_samples(registry, "food_delivery-wrong-intents", "sft", samples,
                                version.manifest.sources, source="tests: intents corrupted")
    return entry.ref, len(samples)


class TrainedOnCorruptedData(RealStages):
    """The real stages, but the candidate learns only the corrupted dataset, and production is
    evaluated once: evaluate_production and evaluate_baseline ask for the same adapters on the
    same split (dev, by the options below), so the second reads the first's report."""

    def __init__(self, registry: Registry, options: StageOptions, corrupted: str) -> None:
        super().__init__(registry, options, progress=print)
        self.corrupted = corrupted
        self.reports: dict[tuple, object] = {}

    def evaluate(self, adapters, split, label):
        key = (tuple(sorted(adapters.items())), split)
        if key not in self.reports:
            self.reports[key] = super().evaluate(adapters, split, label)
        return self.reports[key]

    def cold_start_dataset(self) -> str:
        return self.corrupted

    def failures_dataset(self, report, turn):
        return None


def opening_intents(registry: Registry, report_rel: str) -> dict[str, tuple[str | None, str]]:
    """Per task, the intent the understanding agent read in the customer's opening message and
    where it came from (model, lexical...)."""
    report = json.loads(registry.storage.read_text(report_rel))
    out = {}
    for line in registry.storage.read_text(report["meta"]["dialogues"]).splitlines():
        if line.strip():
            dialogue = EvaluatedDialogue.model_validate_json(line)
            step = next((s for s in dialogue.transcript.turns[0].steps if s.agent == AGENT), None)
            out[dialogue.task_id] = (step.output.get("intent"), step.output.get("source")) \
                if step is not None else (None, "not asked")
    return out


def understanding_sample(options: list[str], message: str, answer: dict) -> ChatSample:
    from wow_ray.agents.prompt_inputs import understanding_input
    from wow_ray.agents.prompts import PROMPTS
    from wow_ray.scenario import load_pack

    inp = understanding_input(load_pack("food_delivery"), options, [], message,
                              offer_none=False)
    meta = SampleMeta(agent=AGENT, source="cold_start", pack="food_delivery", pack_version="x",
                      prompt_version="x", situation_id="s", dialogue_id="d",
                      input=inp.model_dump())
    return ChatSample(id="u1", meta=meta, messages=[
        *PROMPTS[AGENT].messages(inp), {"role": "assistant", "content": json.dumps(answer)}])


def test_the_corruption_names_an_offered_wrong_intent_and_keeps_shared_slots():
    right = understanding_sample(["late_delivery", "food_quality"], "Order O10159 is late",
                                 {"intent": "late_delivery", "order_id": "O10159"})
    wrong = with_wrong_intent(right)
    assert wrong.prompt == right.prompt and wrong.id != right.id
    assert json.loads(wrong.target) == {"intent": "food_quality", "order_id": "O10159",
                                        "problem": None}
    # One intent on offer and no 'none': the schema allows no wrong answer, so no sample.
    only = understanding_sample(["late_delivery"], "Order O10159 is late",
                                {"intent": "late_delivery", "order_id": "O10159"})
    assert with_wrong_intent(only) is None


@pytest.mark.slow
def test_a_candidate_trained_on_wrong_intents_is_rejected_as_worse(served_llm, embedded_storage):
    registry = Registry(embedded_storage)
    options = StageOptions(
        llm_url=served_llm, agents=[AGENT], tasks=4, trials=1, concurrency=4,
        cold_start_situations=8,
        # lr 1e-2 (the loop's is 1e-3) and no warm-up: 6 DeAR steps, 12 samples; the
        # candidate read refund_status in two of the three opening messages it was asked
        # about (2026-11-29: success 2/4 against production's 4/4; the call took 84 s, 50 s
        # of it training, against 139 s and 88 s with 12 steps at 5e-3).
        train={"lora": {"r": 8}, "lr": 1e-2, "max_steps": 6, "workers": 2, "seq_len": 512,
               "synchroniser": "dear", "warmup_steps": 0, "checkpoint_every": 6,
               "eval_max_rows": 1, "progress": False})
    corrupted, count = register_wrong_intents(registry, RealStages(registry, options)
                                              .cold_start_dataset())
    print(f"{count} understanding samples with wrong intents in {corrupted}")
    assert count >= 10, count
    before = registry.aliases.history(EntryKind.ADAPTER, ADAPTER, PRODUCTION)
    loop = Flywheel(registry, "food_delivery", TrainedOnCorruptedData(registry, options, corrupted),
                    FlywheelOptions(eval_split="dev"), progress=print)
    turn = max(loop.turns(), default=0) + 1
    try:
        [records] = loop.run(turns=1)
        assert records["gate"].turn == turn
        # The corrupted data in place of the cold start; beside it only the failures of earlier
        # turns (test_real_loop's, on this session's storage), which the loop always adds.
        mix = records["train"].inputs["datasets"]
        assert mix[0] == {"dataset": corrupted, "weight": 1.0}
        assert all(p["dataset"].startswith("food_delivery-failures:") for p in mix[1:]), mix
        production = opening_intents(registry, records["evaluate_baseline"].outputs["report"])
        candidate = opening_intents(registry, records["evaluate_candidate"].outputs["report"])
        print("opening intents, production:", production, "candidate:", candidate)
        # It learned the corruption: on some opening message its answer differs (a wrong
        # intent, or one that failed and fell back).
        assert candidate != production

        gate = records["gate"].outputs
        print("gate:", gate)
        assert gate["tasks"] == 4 and not gate["promote"]
        assert gate["rule"] in WORSE_RULES, gate["reason"]
        cited = gate[CITED[gate["rule"]]]
        assert cited["candidate"] < cited["production"], gate
        assert "worse" in gate["reason"] or "less compliant" in gate["reason"]

        # Rejected: the candidate alias names it, production's did not move.
        assert records["promote"].outputs["alias"] == CANDIDATE
        ref = records["train"].outputs["adapters"][AGENT]
        assert registry.get(EntryKind.ADAPTER, f"{ADAPTER}@{CANDIDATE}").ref == ref
        assert registry.aliases.history(EntryKind.ADAPTER, ADAPTER, PRODUCTION) == before
    finally:
        # The session's storage is shared: leave no turn behind for the other loop tests.
        registry.storage.remove_dir(f"{loop.root}/t{turn:06d}")
