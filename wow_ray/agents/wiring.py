"""The one agent factory: every agent of a dialogue, built from its config.

``local_master`` (all agents in one process) and every Serve deployment of the dialogue app
(``wow_ray.serving.dialogue_app``) call :func:`build_agent`, so an option of
:class:`~wow_ray.agents.config.DialogueConfig` reaches an agent the same way wherever it runs;
only the transport differs (the policy executor and the specialists are objects here and Serve
handles there). :func:`resolve_adapters` turns the config's adapter choices into model ids,
for callers that know the registry and the base model the LLM serves.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from wow_ray.agents.base import ModelSettings
from wow_ray.agents.config import AGENT_NAMES, AUTO_ADAPTER, DialogueConfig
from wow_ray.agents.handoff import HandoffAgent
from wow_ray.agents.master import MasterAgent, Specialists
from wow_ray.agents.policy import PolicyAgent
from wow_ray.agents.response import ResponseAgent
from wow_ray.agents.solution import Executor, SolutionAgent
from wow_ray.agents.understanding import UnderstandingAgent
from wow_ray.llm.chat import ChatClient
from wow_ray.scenario import ScenarioPack

if TYPE_CHECKING:
    from wow_ray.registry import Registry

logger = logging.getLogger(__name__)


def build_agent(name: str, pack: ScenarioPack, config: DialogueConfig, client: ChatClient | None,
                *, executor: Executor | None = None, specialists: Specialists | None = None) -> Any:
    """The agent ``name`` of ``config`` over ``pack``, calling ``client``.

    ``executor`` (the policy gate: a ``PolicyAgent`` or a handle to one) is needed by the
    solution and handoff agents, ``specialists`` by the master.
    """
    if name == "policy":
        return PolicyAgent(pack)
    if name == "understanding":
        return UnderstandingAgent(pack, client, config.agent(name), config.flag_keywords)
    if name == "solution":
        return SolutionAgent(pack, _needed(executor, name, "executor"), client, config.agent(name),
                             config.planner, planner_tools=config.planner_tools)
    if name == "response":
        return ResponseAgent(pack, client, config.agent(name), config.brand, config.tone)
    if name == "handoff":
        return HandoffAgent(pack, _needed(executor, name, "executor"), client, config.agent(name))
    if name == "master":
        return MasterAgent(pack, _needed(specialists, name, "specialists"), client,
                           config.agent(name))
    raise ValueError(f"unknown agent {name!r}; expected one of {list(AGENT_NAMES)}")


def _needed(value: Any, agent: str, what: str) -> Any:
    if value is None:
        raise ValueError(f"the {agent} agent needs its {what}")
    return value


def resolve_adapters(config: DialogueConfig, registry: Registry, base_model: str) -> DialogueConfig:
    """``config`` with each agent's adapter choice turned into the model id it requests.

    An adapter found in ``registry`` over ``base_model`` becomes ``<base>:<name>:vN`` in that
    agent's ``models`` entry; 'auto' without a registered '<scenario>-<agent>' and null leave
    the agent on its configured model. A named adapter that is missing, or is over another
    base model, raises.
    """
    models = dict(config.models)
    for agent in config.model_agents():
        model = _adapter_model(registry, config, agent, base_model)
        if model is None:
            continue
        logger.info("agent %s uses adapter %s", agent, model)
        models[agent] = config.models.get(agent, ModelSettings()).model_copy(update={"model": model})
    return config.model_copy(update={"models": models})


def _adapter_model(registry: Registry, config: DialogueConfig, agent: str,
                   base_model: str) -> str | None:
    from wow_ray.registry import EntryKind

    setting = config.adapter(agent)
    if setting is None:
        return None
    name = f"{config.scenario}-{agent}" if setting == AUTO_ADAPTER else setting
    try:
        entry = registry.get(EntryKind.ADAPTER, name)
    except Exception:  # noqa: BLE001 - no adapter registered under that name
        if setting != AUTO_ADAPTER:
            raise
        return None
    if not entry.base_model or entry.base_model.split(":")[0] != base_model:
        raise ValueError(f"adapter {entry.ref} is over {entry.base_model}, not {base_model}")
    return f"{base_model}:{entry.ref}"
