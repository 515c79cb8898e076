"""The loop without Ray: its steps in order, recorded; resume after a failure at every step;
one loop per scenario; and a gate that promotes only a better candidate (hand-made scores)."""

from __future__ import annotations

import json
import socket

import pytest

from wow_ray.evaluation import EpisodeScores, EvalReport, build_report
from wow_ray.evaluation.scorers import AgentShare, Claims, Compliance, Information, Success, Usage
from wow_ray.flywheel import STEPS, WORSE_RULES, Flywheel, FlywheelBusy, decide, sign_test
from wow_ray.registry import EntryKind, Registry

AGENTS = ("response", "solution")


def episode(task: str, trial: int, success: bool, *, compliant: bool = True, used: int = 1,
            outputs: int = 2) -> EpisodeScores:
    return EpisodeScores(
        task_id=task, trial=trial,
        success=Success(success=success, reward=float(success), db_match=success,
                        information=Information()),
        compliance=Compliance(compliant=compliant), claims=Claims(consistent=True),
        model_share={"response": AgentShare(steps=outputs, model_outputs=outputs, used=used)},
        usage=Usage())


def scores(successes: list[bool], *, k: int = 2, **kw) -> list[EpisodeScores]:
    return [episode(f"t{i}", trial, s, **kw) for i, s in enumerate(successes) for trial in range(k)]


# -- the gate --------------------------------------------------------------------------------

def test_the_sign_test_needs_enough_differing_tasks():
    assert sign_test(0, 0) == 1.0
    assert sign_test(4, 0) == pytest.approx(1 / 16)  # four of four: not below 0.05
    assert sign_test(5, 0) == pytest.approx(1 / 32)
    assert sign_test(5, 1) == pytest.approx(7 / 64)


def test_a_clearly_better_candidate_is_promoted():
    decision = decide(scores([False] * 8), scores([True] * 6 + [False] * 2))
    assert decision.promote and "better on success" in decision.reason
    assert decision.rule == "better_success"
    assert decision.success["wins"] == 6 and decision.success["p"] < 0.05


def test_a_worse_or_less_compliant_candidate_is_rejected_with_the_reason():
    worse = decide(scores([True] * 8), scores([True] * 7 + [False]))
    assert not worse.promote and "worse on success" in worse.reason
    # Better on success and model share, but one violation: rejected all the same.
    production = scores([False] * 8, used=0)
    candidate = scores([True] * 8, used=2)
    candidate[0] = episode("t0", 0, True, compliant=False, used=2)
    rule_breaker = decide(production, candidate)
    assert not rule_breaker.promote and "less compliant" in rule_breaker.reason
    assert (worse.rule, rule_breaker.rule) == ("worse_success", "less_compliant")


def test_a_candidate_as_successful_but_using_the_model_less_is_rejected_as_worse():
    decision = decide(scores([True] * 8, used=2), scores([True] * 8, used=1))
    assert not decision.promote and decision.rule == "worse_model_share"
    assert "worse on model share: 0.5 < 1.0" in decision.reason
    assert decision.model_share["losses"] == 8 and decision.model_share["wins"] == 0
    # Equal on everything: merely not better, which is not a worse candidate.
    same = decide(scores([True] * 8), scores([True] * 8))
    assert same.rule == "noise" and same.rule not in WORSE_RULES
    assert {"worse_model_share", "worse_success", "less_compliant"} == WORSE_RULES


def test_a_candidate_within_the_noise_is_rejected_and_model_share_breaks_ties():
    noise = decide(scores([False] * 8), scores([True] * 3 + [False] * 5))
    assert not noise.promote and "noise" in noise.reason and noise.rule == "noise"
    share = decide(scores([True] * 8, used=0), scores([True] * 8, used=2))
    assert share.promote and "model share" in share.reason and share.rule == "better_model_share"


# -- the loop --------------------------------------------------------------------------------

class FakeStages:
    """Scores and adapters made up on the spot; ``fail_at`` raises once at that step."""

    agents = AGENTS

    def __init__(self, registry: Registry, tmp_path, *, better: bool = True,
                 fail_at: str | None = None) -> None:
        self.registry, self.tmp, self.better, self.fail_at = registry, tmp_path, better, fail_at
        self.calls: list[str] = []

    def _maybe_fail(self, step: str) -> None:
        self.calls.append(step)
        if step == self.fail_at:
            self.fail_at = None
            raise KeyboardInterrupt(f"interrupted at {step}")

    def evaluate(self, adapters, split, label) -> EvalReport:
        self._maybe_fail({"production": "evaluate_production", "baseline": "evaluate_baseline",
                          "candidate": "evaluate_candidate"}[label])
        good = label == "candidate" and self.better
        details = scores([good] * 6 + [False] * 2)
        return build_report(details, scenario="food_delivery", split=split, trials=2, model=label)

    def score_traffic(self):
        self._maybe_fail("score_traffic")
        return {"sessions": 0, "skipped": "no traffic"}

    def cold_start_dataset(self) -> str:
        return "food_delivery-cold-start:v1"

    def failures_dataset(self, report, turn):
        self._maybe_fail("build_data")
        return f"food_delivery-failures:v{turn}"

    def train(self, datasets, init, turn):
        self._maybe_fail("train")
        folder = self.tmp / "adapter"
        folder.mkdir(exist_ok=True)
        (folder / "adapter_config.json").write_text("{}")
        refs = {a: self.registry.register(EntryKind.ADAPTER, f"food_delivery-{a}", folder,
                                          source=f"turn {turn}").ref for a in AGENTS}
        return {"adapters": refs, "job": f"job-{turn}"}


@pytest.fixture
def registry(tmp_path):
    return Registry(str(tmp_path / "storage"))


def test_a_turn_runs_every_step_records_it_and_promotes_a_better_candidate(registry, tmp_path):
    loop = Flywheel(registry, "food_delivery", FakeStages(registry, tmp_path))
    [records] = loop.run(turns=1)
    assert list(records) == list(STEPS)
    assert records["gate"].outputs["promote"] is True
    assert records["build_data"].outputs["datasets"] == [
        {"dataset": "food_delivery-cold-start:v1", "weight": 1.0},  # no production: cold start whole
        {"dataset": "food_delivery-failures:v1", "weight": 2.0}]
    assert loop.production() == {"response": "food_delivery-response:v1",
                                 "solution": "food_delivery-solution:v1"}
    move = registry.aliases.current(EntryKind.ADAPTER, "food_delivery-response", "production")
    assert move.by == "flywheel turn 1" and move.report.endswith("candidate.report.json")
    # A second turn starts from production, keeps cold start at half weight and earlier failures.
    [second] = loop.run(turns=1)
    assert second["train"].inputs["init"] == {"response": "food_delivery-response:v1",
                                              "solution": "food_delivery-solution:v1"}
    assert [d["weight"] for d in second["build_data"].outputs["datasets"]] == [0.5, 1.0, 2.0]
    assert [len(t) for t in loop.history()] == [len(STEPS), len(STEPS)]


def test_a_worse_candidate_is_rejected_and_production_stays(registry, tmp_path):
    stages = FakeStages(registry, tmp_path, better=False)
    [records] = Flywheel(registry, "food_delivery", stages).run()
    assert records["gate"].outputs["promote"] is False
    assert records["promote"].outputs["alias"] == "candidate"
    assert Flywheel(registry, "food_delivery", stages).production() == {}
    assert registry.get(EntryKind.ADAPTER, "food_delivery-response@candidate").version == 1


@pytest.mark.parametrize("step", STEPS[:-2] + ("promote_move",))
def test_an_interrupted_turn_resumes_where_it_stopped(registry, tmp_path, step, monkeypatch):
    stages = FakeStages(registry, tmp_path, fail_at=step)
    loop = Flywheel(registry, "food_delivery", stages)
    if step == "promote_move":  # killed in the middle of moving the aliases
        real_move, moved = registry.aliases.move, []

        def move_then_die(*args, **kwargs):
            if moved:
                raise KeyboardInterrupt("killed between two alias moves")
            moved.append(real_move(*args, **kwargs))
            return moved[-1]
        monkeypatch.setattr(type(registry.aliases), "move",
                            lambda self, *a, **k: move_then_die(*a, **k))
    with pytest.raises(KeyboardInterrupt):
        loop.run()
    monkeypatch.undo()
    before = list(stages.calls)
    [records] = Flywheel(registry, "food_delivery", stages).run()  # the lock was released
    assert list(records) == list(STEPS) and loop.turns() == [1]
    done_before = before[:-1] if step in before else before
    assert all(stages.calls[len(before):].count(s) <= 1 for s in STEPS)
    assert not set(done_before) & set(stages.calls[len(before):]), "a finished step ran again"
    assert len(registry.entries(EntryKind.ADAPTER, "food_delivery-response")) == 1
    assert len(registry.aliases.history(EntryKind.ADAPTER, "food_delivery-response",
                                        "production")) == 1


def test_two_loops_on_one_scenario_refuse_to_run_at_once(registry, tmp_path):
    stages = FakeStages(registry, tmp_path)
    first, second = (Flywheel(registry, "food_delivery", stages) for _ in range(2))
    first._lock()
    with pytest.raises(FlywheelBusy, match="running already"):
        second.run()
    first._unlock()
    second.run()
    # A lock left by a process that died (kill -9) on this host is taken over.
    dead = {"host": socket.gethostname(), "pid": 999999999}
    registry.storage.write_text("registry/flywheel/food_delivery/lock.json", json.dumps(dead))
    second.run()


def test_history_shows_each_turn_its_data_and_the_gate(registry, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from wow_ray.cli import app

    Flywheel(registry, "food_delivery", FakeStages(registry, tmp_path, better=False)).run()
    monkeypatch.setenv("WOW_RAY_STORAGE_PATH", registry.storage.root)
    out = CliRunner().invoke(app, ["flywheel", "history"], env={"COLUMNS": "250"})
    assert out.exit_code == 0, out.output
    assert "food_delivery-failures:v1 x2.0" in out.output and "rejected" in out.output
