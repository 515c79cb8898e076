"""The main job's scorecard, over fake stages: production before the turn and the candidate are
evaluated on the test split (the subset the stages are limited to), and production after the
turn too when the gate promoted."""

from __future__ import annotations

import json

from wow_ray.evaluation import build_report
from wow_ray.flywheel import Flywheel
from wow_ray.flywheel.demo import DemoResult, run_demo, scorecard_lines, write_scorecard
from wow_ray.registry import Registry

from .test_loop import FakeStages, scores


class OnTestSplit(FakeStages):
    """Evaluates on the test split: the candidate (and production once it is the candidate)
    succeeds on every task when ``better``."""

    def evaluate(self, adapters, split, label):
        if not label.startswith("demo-"):
            return super().evaluate(adapters, split, label)
        self.calls.append((label, split, dict(adapters)))
        good = self.better and bool(adapters)
        return build_report(scores([good] * 3, k=1), scenario="food_delivery", split=split,
                            trials=1, model=label)


def test_the_demo_scores_before_and_after_on_the_test_split(tmp_path):
    registry = Registry(str(tmp_path / "storage"))
    stages = OnTestSplit(registry, tmp_path)
    result = run_demo(Flywheel(registry, "food_delivery", stages), stages)
    assert result.decision["promote"] and result.split == "test"
    assert [r.label for r in result.rows] == ["before", "candidate", "after"]
    assert result.rows[0].adapters == {} and result.rows[2].adapters == result.rows[1].adapters
    assert result.tasks == ["t0", "t1", "t2"]
    assert all(split == "test" for _, split, _ in [c for c in stages.calls if isinstance(c, tuple)])
    # production after the turn holds the candidate's adapters: evaluated once, not twice
    assert [c[0] for c in stages.calls if isinstance(c, tuple)] == ["demo-before", "demo-candidate"]
    header, before, candidate, after = scorecard_lines(result)
    assert header[:3] == ["", "success", "compliance"]
    assert before[1] == "0%" and candidate[1] == after[1] == "100%"
    # every stage of the turn and each scorecard evaluation timed
    assert {"train", "gate", "scorecard before", "scorecard after"} <= set(result.seconds)


def test_the_scorecard_is_written_for_a_person_to_look_at(tmp_path):
    registry = Registry(str(tmp_path / "storage"))
    stages = OnTestSplit(registry, tmp_path)
    result = run_demo(Flywheel(registry, "food_delivery", stages), stages)
    paths = write_scorecard(result, tmp_path / "out")
    assert [p.name for p in paths] == ["scorecard.json", "scorecard.md", "scorecard.png"]
    assert DemoResult.model_validate(json.loads(paths[0].read_text())) == result
    md = paths[1].read_text()
    assert "| after | 100% |" in md and "promoted" in md and "| train |" in md
    assert paths[2].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_rejected_candidate_leaves_production_out_of_the_scorecard(tmp_path):
    registry = Registry(str(tmp_path / "storage"))
    stages = OnTestSplit(registry, tmp_path, better=False)
    result = run_demo(Flywheel(registry, "food_delivery", stages), stages)
    assert not result.decision["promote"]
    assert [r.label for r in result.rows] == ["before", "candidate"]


def test_an_llm_url_that_does_not_answer_is_a_clear_error(tmp_path, monkeypatch):
    """Given --llm-url, the loop never starts its own LLM app in its place."""
    from typer.testing import CliRunner

    from wow_ray.cli import app

    monkeypatch.setenv("WOW_RAY_STORAGE_PATH", str(tmp_path / "storage"))
    for command in ("run", "demo"):
        out = CliRunner().invoke(app, ["flywheel", command, "--llm-url", "http://127.0.0.1:9"],
                                 env={"COLUMNS": "250"})
        assert out.exit_code == 2 and "no LLM app answers at http://127.0.0.1:9" in out.output
