"""Promotion reaches the running dialogue service: an alias move is taken without a restart,
and a replica that restarts resolves the same alias, not the newest version (real Serve, vLLM)."""

from __future__ import annotations

import time

import pytest

from tests.serving.test_dialogue_app import Service, _replicas
from wow_ray.registry import EntryKind, Registry

pytestmark = pytest.mark.slow
HANDOFF = "food_delivery-handoff"


def handoff_model(svc: Service) -> str:
    sid = svc.create("U0001")
    out = svc.say(sid, "I want to talk to a real person")
    assert out["status"] == "handed_off"
    step = next(s for s in svc.transcript(sid).turns[0].steps if s.agent == "handoff")
    return step.llm_calls[0].model


def test_an_alias_move_reaches_the_running_service_and_a_restart_keeps_it(
        dialogue_app, tiny_adapter_dir):
    import ray

    svc = Service(dialogue_app)
    registry = Registry(dialogue_app.storage)
    aliases = registry.aliases
    before = aliases.current(EntryKind.ADAPTER, HANDOFF, "production")
    base = registry.get(EntryKind.MODEL, "smollm2-135m").ref

    def register(source: str):
        return registry.register(EntryKind.ADAPTER, HANDOFF, tiny_adapter_dir, source=source,
                                 base_model=base)

    promoted = register("test-promotion")
    try:
        aliases.move(EntryKind.ADAPTER, HANDOFF, "production", promoted.version, by="test")
        time.sleep(2.5)  # replicas re-read aliases at most every two seconds
        assert handoff_model(svc) == f"smollm2-135m:{promoted.ref}"  # no restart
        newest = register("test-newest")  # registered, not promoted
        victims = _replicas(dialogue_app.name, ("Handoff",))["Handoff"]
        for name in victims:
            ray.kill(ray.get_actor(name, namespace="serve"), no_restart=True)
        assert handoff_model(svc) == f"smollm2-135m:{promoted.ref}"  # not {newest.ref}
        assert set(_replicas(dialogue_app.name, ("Handoff",))["Handoff"]).isdisjoint(victims)
        assert newest.version > promoted.version
    finally:
        aliases.move(EntryKind.ADAPTER, HANDOFF, "production", before.version, by="test")
