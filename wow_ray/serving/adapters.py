"""Which LoRA adapter each agent's model calls use, resolved through the registry's aliases.

Serving knows the registry and the base model the LLM deployment serves; the agents know
neither, so the dialogue app resolves the config's adapter choices here before it builds the
agents (``wow_ray.agents.wiring``). A choice is an alias by default: 'auto' means
``<scenario>-<agent>@production`` and a bare name means ``<name>@production``, so a replica that
starts (a restart, an autoscale-up) serves what the alias says, never "the newest version"; a
pinned ``name:vN`` stays allowed. :class:`AdapterResolver` re-reads the aliases every couple of
seconds, which is how a running service takes an alias move without a restart.
"""

from __future__ import annotations

import logging
import time

from wow_ray.agents.base import ModelSettings
from wow_ray.agents.config import AUTO_ADAPTER, DialogueConfig
from wow_ray.errors import RegistryError
from wow_ray.registry import PRODUCTION, EntryKind, Registry

logger = logging.getLogger(__name__)
REFRESH_S = 2.0  # how stale an alias may be in a running replica


def adapter_ref(config: DialogueConfig, agent: str) -> str | None:
    """The registry reference the agent's adapter choice names: 'name@alias' or 'name:vN'."""
    setting = config.adapter(agent)
    if setting is None:
        return None
    if setting == AUTO_ADAPTER:
        return f"{config.scenario}-{agent}@{PRODUCTION}"
    if "@" in setting or ":" in setting:
        return setting
    return f"{setting}@{PRODUCTION}"


def resolve_adapters(config: DialogueConfig, registry: Registry, base_model: str) -> DialogueConfig:
    """``config`` with each agent's adapter choice turned into the model id it requests.

    The adapter a choice names becomes ``<base>:<name>:vN`` in that agent's ``models`` entry;
    'auto' without a ``production`` alias and null leave the agent on its configured model. A
    named adapter (or alias) that is missing, or is over another base model, raises.
    """
    models = dict(config.models)
    for agent in config.model_agents():
        model = _adapter_model(registry, config, agent, base_model)
        if model is None:
            continue
        models[agent] = config.models.get(agent, ModelSettings()).model_copy(update={"model": model})
    return config.model_copy(update={"models": models})


def _adapter_model(registry: Registry, config: DialogueConfig, agent: str,
                   base_model: str) -> str | None:
    ref = adapter_ref(config, agent)
    if ref is None:
        return None
    try:
        entry = registry.get(EntryKind.ADAPTER, ref)
    except RegistryError:  # nothing registered or promoted under that name yet
        if config.adapter(agent) != AUTO_ADAPTER:
            raise
        return None
    if not entry.base_model or entry.base_model.split(":")[0] != base_model:
        raise ValueError(f"adapter {entry.ref} is over {entry.base_model}, not {base_model}")
    return f"{base_model}:{entry.ref}"


class AdapterResolver:
    """The config with its adapters resolved, re-read at most every ``refresh_s`` seconds.

    A failed re-read (storage unreachable, an alias moved to a broken entry) keeps the last
    good resolution and logs why: a turn never fails because the registry hiccuped.
    """

    def __init__(self, config: DialogueConfig, registry: Registry, base_model: str, *,
                 refresh_s: float | None = None) -> None:
        self.base = config
        self.registry, self.base_model = registry, base_model
        self.refresh_s = REFRESH_S if refresh_s is None else refresh_s
        self._resolved = resolve_adapters(config, registry, base_model)  # at start: must work
        self._read_at = time.monotonic()
        logger.info("adapters: %s", self.models())

    def models(self) -> dict[str, str | None]:
        return {a: s.model for a, s in self._resolved.models.items()}

    def current(self) -> DialogueConfig:
        if time.monotonic() - self._read_at >= self.refresh_s:
            self._read_at = time.monotonic()
            try:
                fresh = resolve_adapters(self.base, self.registry, self.base_model)
            except Exception as exc:  # noqa: BLE001 - keep serving what was resolved last
                logger.warning("adapters not re-read, keeping %s: %s", self.models(), exc)
            else:
                if fresh.models != self._resolved.models:
                    self._resolved = fresh
                    logger.info("an alias moved; adapters now %s", self.models())
        return self._resolved
