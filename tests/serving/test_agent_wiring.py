"""The agents are wired once: ``local_master`` and the dialogue app's deployments build the same
agents from the same ``DialogueConfig`` (fast: the app graph is only bound, no Ray starts)."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest
from pydantic import BaseModel
from ray import serve
from ray.serve import Application

from wow_ray.agents import Agent, DialogueConfig, ModelSettings, local_master
from wow_ray.agents.wiring import build_agent
from wow_ray.config import EMBEDDED_MODEL
from wow_ray.llm.chat import ScriptedChatClient
from wow_ray.registry import EntryKind, Registry
from wow_ray.scenario import load_pack
from wow_ray.serving import build_dialogue_app
from wow_ray.serving.adapters import resolve_adapters

# Everything set away from its default, so an option one side forgets shows up as a difference.
CONFIG = DialogueConfig(
    scenario="food_delivery", brand="Acme Eats", tone="brisk and warm", planner="model",
    planner_tools="all", flag_keywords={"legal_threat": ["solicitor"], "abusive": ["idiot"]},
    models={"master": ModelSettings(max_tokens=12),
            "solution": ModelSettings(max_tokens=200, temperature=0.3, retries=2),
            "response": ModelSettings(use_model=False)},
    adapters={"understanding": None, "handoff": "fd-handoff"},
)
ENDPOINTS = {"client", "executor", "specialists"}  # transport: objects here, handles served


class FakeHandle:
    """A Serve handle's shape, enough to build a deployment's agent."""

    def __init__(self, name: str) -> None:
        self.name = name

    def options(self, **_: Any) -> FakeHandle:
        return self


@pytest.fixture
def storage(tmp_path):
    """A registry with an adapter for the solution agent ('auto') and a named one for handoff."""
    registry = Registry(str(tmp_path / "store"))
    folder = tmp_path / "adapter"
    folder.mkdir()
    (folder / "adapter_config.json").write_text("{}")
    for name in ("food_delivery-solution", "fd-handoff"):
        registry.register(EntryKind.ADAPTER, name, folder, source="test",
                          base_model=f"{EMBEDDED_MODEL}:v1")
        registry.aliases.move(EntryKind.ADAPTER, name, "production", 1)
    return str(tmp_path / "store")


def served_agents(args: dict[str, Any], monkeypatch) -> dict[str, Any]:
    """Each agent deployment's agent, the deployments constructed as Serve would."""
    return {name: d.agent for name, d in served_deployments(args, monkeypatch).items()}


def served_deployments(args: dict[str, Any], monkeypatch) -> dict[str, Any]:
    """Each agent deployment of the built app, constructed as Serve would (handles faked)."""
    monkeypatch.setattr(serve, "get_deployment_handle",
                        lambda name, app_name: FakeHandle(f"{app_name}/{name}"))
    gateway = build_dialogue_app(args)._bound_deployment
    built: dict[str, Any] = {}

    def construct(app: Application) -> FakeHandle:
        deployment = app._bound_deployment
        if deployment.name not in built:
            init_args = [construct(a) if isinstance(a, Application) else a
                         for a in deployment.init_args]
            built[deployment.name] = deployment.func_or_class(*init_args, **deployment.init_kwargs)
        return FakeHandle(deployment.name)

    for arg in gateway.init_args:
        if isinstance(arg, Application):
            construct(arg)
    return {name.lower(): instance for name, instance in built.items()}


def local_agents(config: DialogueConfig, storage: str) -> dict[str, Any]:
    config = resolve_adapters(config, Registry(storage), EMBEDDED_MODEL)
    master = local_master(load_pack(config.scenario), ScriptedChatClient([]), config)
    s = master.specialists
    return {"master": master, "understanding": s.understanding, "policy": s.policy,
            "solution": s.solution, "response": s.response, "handoff": s.handoff_agent}


def wiring(agent: Any) -> dict[str, Any]:
    """An agent's wiring as plain data: its class, description (model, limits, tools), and
    every option it holds; its transport only as present or absent."""
    out: dict[str, Any] = {"class": type(agent).__name__, "pack": agent.pack.name}
    for key, value in vars(agent).items():
        if key != "pack":
            out[key] = value is not None if key in ENDPOINTS else _plain(value)
    return out


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, Agent):
        return {**dataclasses.asdict(value), "settings": value.settings.model_dump()}
    if isinstance(value, BaseModel):
        return value.model_dump()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted(repr(_plain(v)) for v in value)
    if isinstance(value, re.Pattern):
        return value.pattern
    return type(value).__name__  # stateful helpers (environments, retrievers): same class


def app_args(storage: str, config: DialogueConfig) -> dict[str, Any]:
    return {"dialogue": config.model_dump(mode="json", exclude_unset=True),
            "llm": {"app": "llm", "settings": {"storage_path": storage}}}


def test_local_and_served_agents_are_wired_alike(storage, monkeypatch):
    served = served_agents(app_args(storage, CONFIG), monkeypatch)
    local = local_agents(CONFIG, storage)
    assert set(served) == set(local) == {"master", "understanding", "policy", "solution",
                                          "response", "handoff"}
    for name in local:
        assert wiring(served[name]) == wiring(local[name]), name
    # ...and the options really arrived (so the comparison is not of two defaults).
    solution, handoff = served["solution"], served["handoff"]
    assert solution.planner == "model" and solution.planner_tools == "all"
    assert solution.agent.settings.model == f"{EMBEDDED_MODEL}:food_delivery-solution:v1"
    assert solution.agent.settings.max_tokens == 200 and solution.agent.settings.retries == 2
    assert handoff.agent.settings.model == f"{EMBEDDED_MODEL}:fd-handoff:v1"
    assert served["understanding"].agent.settings.model is None
    assert served["understanding"].flag_keywords == {"legal_threat": ["solicitor"],
                                                     "abusive": ["idiot"]}
    assert served["response"].brand == "Acme Eats" and served["response"].tone == "brisk and warm"
    assert served["response"].agent.settings.use_model is False
    assert served["master"].agent.settings.max_tokens == 12


def test_the_comparison_sees_an_option_wired_differently(storage, monkeypatch):
    served = served_agents(app_args(storage, CONFIG), monkeypatch)
    other = local_agents(CONFIG.model_copy(update={"planner_tools": "intent"}), storage)
    assert wiring(served["solution"]) != wiring(other["solution"])
    other = local_agents(CONFIG.model_copy(update={"adapters": {}}), storage)
    assert wiring(served["handoff"]) != wiring(other["handoff"])


def test_the_factory_names_what_an_agent_is_missing():
    pack = load_pack("food_delivery")
    with pytest.raises(ValueError, match="solution agent needs its executor"):
        build_agent("solution", pack, CONFIG, None)
    with pytest.raises(ValueError, match="unknown agent 'planner'"):
        build_agent("planner", pack, CONFIG, None)


def test_unknown_agents_in_models_or_adapters_are_refused():
    with pytest.raises(ValueError, match="unknown agents"):
        DialogueConfig(models={"planner": ModelSettings()})
    with pytest.raises(ValueError, match="unknown agents"):
        DialogueConfig(adapters={"policy": "x"})


def test_a_running_deployment_takes_an_alias_move_and_a_restart_keeps_the_alias(
        storage, monkeypatch):
    """Serving resolves '<scenario>-<agent>@production' (never the newest version), re-reads it
    every couple of seconds, and a call in flight keeps the agent (adapter) it started on."""
    import wow_ray.serving.adapters as adapters

    registry = Registry(storage)
    adapter_files = registry.local_dir(registry.get(EntryKind.ADAPTER, "fd-handoff:v1"))
    registry.register(EntryKind.ADAPTER, "food_delivery-solution", adapter_files, source="test",
                      base_model=f"{EMBEDDED_MODEL}:v1")  # v2: registered, not promoted
    monkeypatch.setattr(adapters, "REFRESH_S", 0.0)
    args = app_args(storage, CONFIG.model_copy(update={"adapters": {"handoff": "fd-handoff:v1"}}))
    deployments = served_deployments(args, monkeypatch)
    solution = deployments["solution"]
    in_flight = solution._current()
    assert in_flight.agent.settings.model == f"{EMBEDDED_MODEL}:food_delivery-solution:v1"
    registry.aliases.move(EntryKind.ADAPTER, "food_delivery-solution", "production", 2,
                          by="test", report="eval:v1")
    assert solution._current().agent.settings.model == f"{EMBEDDED_MODEL}:food_delivery-solution:v2"
    assert in_flight.agent.settings.model.endswith(":v1")  # the old call's agent is untouched
    # A pinned version does not follow the alias; an agent without an alias stays on the base.
    assert deployments["handoff"]._current().agent.settings.model == f"{EMBEDDED_MODEL}:fd-handoff:v1"
    assert deployments["response"]._current().agent.settings.model is None
    # A restart (or a replica added by autoscaling) resolves the same alias...
    registry.aliases.rollback(EntryKind.ADAPTER, "food_delivery-solution", "production")
    restarted = served_deployments(args, monkeypatch)["solution"]
    assert restarted.agent.agent.settings.model == f"{EMBEDDED_MODEL}:food_delivery-solution:v1"
    # ...and without an alias, 'auto' means the base model, even with adapters registered.
    registry.register(EntryKind.ADAPTER, "food_delivery-response", adapter_files, source="test",
                      base_model=f"{EMBEDDED_MODEL}:v1")
    assert served_deployments(args, monkeypatch)["response"].agent.agent.settings.model is None


def test_a_registry_hiccup_keeps_the_adapters_in_force(storage, monkeypatch):
    import wow_ray.serving.adapters as adapters

    resolver = adapters.AdapterResolver(CONFIG, Registry(storage), EMBEDDED_MODEL, refresh_s=0)
    before = resolver.current()
    monkeypatch.setattr(adapters, "resolve_adapters", lambda *a: 1 / 0)
    assert resolver.current() is before
