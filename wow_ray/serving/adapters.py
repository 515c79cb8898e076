"""Which LoRA adapter each agent's model calls use, resolved through the registry.

Serving knows the registry and the base model the LLM deployment serves; the agents know
neither, so the dialogue app resolves the config's adapter choices here before it builds the
agents (``wow_ray.agents.wiring``).
"""

from __future__ import annotations

import logging

from wow_ray.agents.base import ModelSettings
from wow_ray.agents.config import AUTO_ADAPTER, DialogueConfig
from wow_ray.registry import EntryKind, Registry

logger = logging.getLogger(__name__)


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
