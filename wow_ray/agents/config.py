"""How the dialogue agents of one scenario are configured (model settings per agent, tone).

The one source of the agents' options: the in-process agents (``local_master``) and the Serve
app (whose arguments embed it whole as ``dialogue:``) both build their agents from it through
``wow_ray.agents.wiring.build_agent``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from wow_ray.agents.base import Agent, ModelSettings
from wow_ray.agents.handoff import HANDOFF_AGENT
from wow_ray.agents.master import MASTER_AGENT
from wow_ray.agents.response import DEFAULT_TONE, RESPONSE_AGENT
from wow_ray.agents.solution import SOLUTION_AGENT
from wow_ray.agents.understanding import UNDERSTANDING_AGENT

AGENT_NAMES = ("master", "understanding", "policy", "solution", "response", "handoff")
_DEFAULTS: dict[str, Agent] = {a.name: a for a in (MASTER_AGENT, UNDERSTANDING_AGENT,
                                                     SOLUTION_AGENT, RESPONSE_AGENT, HANDOFF_AGENT)}
AUTO_ADAPTER = "auto"


class DialogueConfig(BaseModel):
    """The agents of one scenario."""

    model_config = ConfigDict(extra="forbid")

    scenario: str = Field("food_delivery", description="Built-in pack name or a pack folder.")
    brand: str | None = Field(None, description="Name used in replies; default: the pack's title.")
    tone: str = Field(DEFAULT_TONE, description="How replies should sound.")
    planner: Literal["playbook", "model"] = Field(
        "playbook", description="How the solution agent plans tool calls (see solution.py)."
    )
    planner_tools: Literal["intent", "all"] = Field(
        "intent", description="Tools the model planner may propose: those of the intent's "
        "playbook plus reads (least privilege), or all of them."
    )
    models: dict[str, ModelSettings] = Field(
        default_factory=dict,
        description="Model settings per agent (master, understanding, solution, response, "
        "handoff), over each agent's defaults.",
    )
    flag_keywords: dict[str, list[str]] | None = Field(
        None, description="Keywords raising each pack flag; default: understanding.py's table."
    )
    adapters: dict[str, str | None] = Field(
        default_factory=dict,
        description="LoRA adapter per agent for its model calls: a registry adapter over the "
        "base model, through an alias ('name@alias'; a bare 'name' means 'name@production') or "
        "pinned ('name:vN'); 'auto' (the default for agents not listed) uses "
        "'<scenario>-<agent>@production' when that alias is set; null: the configured model. "
        "Resolved, and re-read every couple of seconds, where the registry is known (the Serve "
        "app; wow_ray.serving.adapters).",
    )

    @field_validator("models", "adapters")
    @classmethod
    def _model_agents_only(cls, value: dict) -> dict:
        unknown = sorted(set(value) - set(_DEFAULTS))
        if unknown:
            raise ValueError(f"unknown agents {unknown}; expected some of {sorted(_DEFAULTS)}")
        return value

    def model_agents(self) -> tuple[str, ...]:
        """The agents that call a model (every agent but the policy gate)."""
        return tuple(n for n in AGENT_NAMES if n in _DEFAULTS)

    def adapter(self, name: str) -> str | None:
        """The agent's adapter choice: 'auto', a registry name, or None for no adapter."""
        setting = self.adapters.get(name, AUTO_ADAPTER)
        return None if setting in (None, "none") else setting

    def agent(self, name: str) -> Agent:
        """The agent ``name`` with its configured model settings."""
        base = _DEFAULTS[name]
        if name not in self.models:
            return base
        merged = base.settings.model_copy(update=self.models[name].model_dump(exclude_unset=True))
        return Agent(base.name, base.instructions, base.prompt, merged, base.tools, base.handoffs)
