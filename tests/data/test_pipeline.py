"""The Ray Data build end to end: no held-out task leaks in (by content), every action passes
the rules, the dataset reads back from the registry, and the CLI builds and registers one."""

from __future__ import annotations

import json

import pytest

from wow_ray.data.formats import ChatSample
from wow_ray.data.situations import normalise, request_keys, situation_key
from wow_ray.data.store import load_dataset
from wow_ray.scenario import Situation, ToolCall, replay

pytestmark = pytest.mark.slow


def records(built) -> list[ChatSample]:
    registry, entry, _, _ = built
    return list(load_dataset(registry, entry.ref).records())


def test_no_held_out_task_leaks_into_training_data(built, food_pack):
    held = [t for t in food_pack.tasks if t.split in ("dev", "test")]
    assert held
    ids, texts, situations, combos = set(), set(), set(), set()
    for t in held:
        s = t.situation
        ids.add(s.user_id)
        ids |= {str(v) for r in s.requests for k, v in r.slots.items() if k.endswith("_id")}
        ins = t.user_scenario.instructions
        texts |= {normalise(x) for x in (ins.reason_for_call, ins.known_info) if x}
        situations.add(situation_key(s))
        combos |= request_keys(s)
    samples = records(built)
    assert len(samples) > 200
    for sample in samples:
        body = "\n".join(m.content for m in sample.messages)
        words = set(body.replace('"', " ").replace(",", " ").replace(".", " ").split())
        assert not ids & words, (sample.id, ids & words)
        flat = normalise(body)
        assert not [t for t in texts if t in flat], sample.id
        assert sample.meta.situation_id not in {t.id for t in held}
        if sample.meta.check is not None:
            s = Situation.model_validate(sample.meta.check.situation)
            assert situation_key(s) not in situations and not request_keys(s) & combos


def test_every_action_in_the_dataset_passes_the_rule_engine(built, food_pack):
    checked = 0
    for sample in records(built):
        check = sample.meta.check
        if check is None:
            continue
        calls = [ToolCall(**a) for a in [*check.prior, *check.actions]]
        assert replay(food_pack, Situation.model_validate(check.situation), calls).all_allowed, sample.id
        checked += 1
    assert checked > 50


def test_manifest_counts_and_filters(built):
    registry, entry, manifest, result = built
    version = load_dataset(registry, entry.ref)
    version.verify()
    m = version.manifest
    assert m.kind == "sft" and set(m.files) == {"train.jsonl", "eval.jsonl"}
    assert sum(m.counts.by_agent.values()) == m.counts.total == sum(f.records for f in m.files.values())
    assert set(m.counts.by_agent) == {"understanding", "master", "solution", "response", "handoff"}
    assert [f.name for f in m.filters] == ["schema", "rules", "length", "language", "held_out", "near_duplicate"]
    assert m.filters[0].checked - sum(f.removed for f in m.filters) == m.counts.total
    assert m.sources.pack.name == "food_delivery" and len(m.sources.pack.content_sha256) == 16
    assert m.sources.held_out["splits"] == ["dev", "test"] and m.sources.held_out["tasks"] > 0
    report = json.loads((version.folder / "filter_report.json").read_text())
    assert report["stats"][-1]["name"] == "near_duplicate"
    assert "near_duplicate" in (version.folder / "REPORT.md").read_text()
    train = {s.meta.dialogue_id for s in version.records("train")}
    assert not train & {s.meta.dialogue_id for s in version.records("eval")}


def test_cli_build_registers_a_new_version(built, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from wow_ray.cli import app

    monkeypatch.setenv("WOW_RAY_STORAGE_PATH", str(tmp_path))
    runner = CliRunner()
    args = ["data", "build", "--scenario", "food_delivery", "--situations", "13", "--no-train-tasks"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "registered dataset food_delivery-cold-start:v1" in first.output
    assert "quality filters" in first.output and "samples per intent and agent" in first.output
    second = runner.invoke(app, args)
    assert "food_delivery-cold-start:v2" in second.output
    shown = runner.invoke(app, ["data", "show", "food_delivery-cold-start:v1"])
    assert shown.exit_code == 0 and "every line valid" in shown.output
