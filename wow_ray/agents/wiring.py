"""The one agent factory: every agent of a dialogue, built from its config.

``local_master`` (all agents in one process) and every Serve deployment of the dialogue app
(``wow_ray.serving.dialogue_app``) call :func:`build_agent`, so an option of
:class:`~wow_ray.agents.config.DialogueConfig` reaches an agent the same way wherever it runs;
only the transport differs (the policy executor and the specialists are objects here and Serve
handles there). Which adapter each agent's model calls use is decided where the registry is
known (``wow_ray.serving.adapters``), before the config reaches this factory.
"""

from __future__ import annotations

from typing import Any

from wow_ray.agents.config import AGENT_NAMES, DialogueConfig
from wow_ray.agents.handoff import HandoffAgent
from wow_ray.agents.master import MasterAgent, Specialists
from wow_ray.agents.policy import PolicyAgent
from wow_ray.agents.response import ResponseAgent
from wow_ray.agents.solution import Executor, SolutionAgent
from wow_ray.agents.understanding import UnderstandingAgent
from wow_ray.llm.chat import ChatClient
from wow_ray.scenario import ScenarioPack


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
