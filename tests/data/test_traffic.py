"""From live traffic: real sessions in a real SQLite store, exported with personal data masked."""

from __future__ import annotations

import asyncio

from wow_ray.agents.local import local_master, new_session
from wow_ray.agents.sessions import SessionStore
from wow_ray.data.traffic import Masker, read_transcripts, traffic_samples

PII = ["Ying Rossi", "13540501279", "ying.rossi59@example.com", "276 Yan'an East Road"]


def run_session(pack, store: SessionStore, messages: list[str]) -> str:
    master = local_master(pack, None)
    state = new_session(pack.name, user_id="U0001", identity_verified=True)
    store.create(state)
    version = 0

    async def turns() -> None:
        nonlocal state, version
        for text in messages:
            out = await master.turn(state, text)
            version = store.save_turn(out.state, out.turn, version)
            state = out.state

    asyncio.run(turns())
    return state.session_id


def test_export_masks_people_and_keeps_outcomes(food_pack, tmp_path):
    url = f"sqlite:///{tmp_path}/sessions.db"
    store = SessionStore(url)
    sid = run_session(food_pack, store, [
        "Hi, I'm Ying Rossi, call me on 13540501279 or ying.rossi59@example.com. "
        "My order O10001 was late, I live at 276 Yan'an East Road, Pudong District.",
        "Thanks, that's all."])
    store.engine.dispose()
    [raw] = read_transcripts(url, scenario="food_delivery")
    assert raw.session_id == sid and any(p in raw.model_dump_json() for p in PII)
    masked = Masker.for_pack(food_pack).mask(raw)
    text = masked.model_dump_json()
    for value in PII:
        assert value not in text
    assert "<NAME_1>" in text and "<PHONE_1>" in text and "<EMAIL_1>" in text and "<ADDRESS_1>" in text
    assert "O10001" in text  # record ids are pseudonymous and kept
    assert masked.outcome.status == raw.outcome.status and len(masked.turns) == 2
    samples = traffic_samples(masked, "test")
    assert samples and {s.meta.agent for s in samples} >= {"response"}
    for s in samples:
        assert s.meta.source == "traffic" and s.meta.outcome["reviewed"] is False
        assert s.meta.outcome["status"] == raw.outcome.status
        assert not any(p in m.content for p in PII for m in s.messages)


def test_masking_is_deterministic_and_consistent():
    masker = Masker({"Ying Rossi"})
    from wow_ray.agents.transcript import Transcript, TurnRecord

    t = Transcript(session_id="s", scenario="x", turns=[
        TurnRecord(index=0, customer="Ying Rossi here, 138 0013 8000", reply="Hello Ying Rossi"),
        TurnRecord(index=1, customer="My name is Wei Chen", reply="ok")])
    a, b = masker.mask(t), masker.mask(t)
    assert a == b
    assert a.turns[0].customer == "<NAME_1> here, <PHONE_1>" and a.turns[0].reply == "Hello <NAME_1>"
    assert a.turns[1].customer == "My name is <NAME_2>"


def test_cli_exports_masked_transcripts(food_pack, tmp_path, monkeypatch):
    import json

    from typer.testing import CliRunner

    from wow_ray.cli import app
    from wow_ray.data.store import load_dataset
    from wow_ray.registry import Registry

    url = f"sqlite:///{tmp_path}/sessions.db"
    store = SessionStore(url)
    run_session(food_pack, store, ["I'm Ying Rossi, my order O10001 never came. Call 13540501279."])
    store.engine.dispose()
    monkeypatch.setenv("WOW_RAY_STORAGE_PATH", str(tmp_path / "storage"))
    result = CliRunner().invoke(app, ["data", "export-traffic", "--db", url])
    assert result.exit_code == 0, result.output
    version = load_dataset(Registry(str(tmp_path / "storage")), "food_delivery-traffic")
    assert "transcripts.jsonl" in version.manifest.extra_files
    dumped = (version.folder / "transcripts.jsonl").read_text() + (version.folder / "train.jsonl").read_text()
    assert "Ying Rossi" not in dumped and "13540501279" not in dumped and "<NAME_1>" in dumped
    first = json.loads((version.folder / "transcripts.jsonl").read_text().splitlines()[0])
    assert first["outcome"]["status"] == "active"


def test_human_replies_are_exported_as_candidates(food_pack, tmp_path):
    url = f"sqlite:///{tmp_path}/sessions.db"
    store = SessionStore(url)
    sid = run_session(food_pack, store, ["I want to talk to a real person"])
    ticket = store.transcript(sid).outcome.ticket_id
    store.take_ticket(ticket, "ops-ana")
    store.human_turn(sid, customer="my name is Ying Rossi, order O10001 never came")
    store.human_turn(sid, reply="Sorry Ying Rossi, I have refunded order O10001.",
                     operator="ops-ana")
    store.engine.dispose()
    [raw] = read_transcripts(url, scenario="food_delivery")
    samples = [s for s in traffic_samples(Masker.for_pack(food_pack).mask(raw), "test")
               if s.meta.kind == "human_reply"]
    [sample] = samples
    assert sample.messages[-1].role == "assistant" and "refunded order O10001" in sample.messages[-1].content
    assert sample.messages[-2].content.endswith("order O10001 never came")
    assert sample.meta.outcome["operator"] == "ops-ana" and sample.meta.outcome["reviewed"] is False
    assert not any("Ying Rossi" in m.content for m in sample.messages)
