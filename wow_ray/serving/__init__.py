"""The Serve app builders: the LLM app and a scenario's dialogue app.

As in ``ray.serve.llm``, the builders live in the library and ``serve_apps/`` holds only the
YAML configs and thin import paths (``import_path: serve_apps.dialogue:build_dialogue_app``).
The builders import their modules when called: the LLM app's imports vLLM (seconds, and
gigabytes), which reading the dialogue app's arguments should not cost.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from wow_ray.serving.dialogue_args import (
    AgentServing,
    DialogueAppArgs,
    GatewayServing,
    LLMServing,
    ScenarioConfig,
)

if TYPE_CHECKING:
    from ray.serve import Application


def build_llm_app(args: dict[str, Any] | None = None) -> Application:
    """A registered model on vLLM behind an OpenAI-compatible API (``serve_apps/llm.yaml``);
    ``args`` are WowSettings fields plus ``config_file`` (see ``llm_app.py``)."""
    from wow_ray.serving.llm_app import build_llm_app as build

    return build(args)


def build_dialogue_app(args: dict[str, Any] | None = None) -> Application:
    """A scenario's dialogue service (``serve_apps/food_delivery.yaml``); ``args`` are
    :class:`DialogueAppArgs` (see ``dialogue_app.py``)."""
    from wow_ray.serving.dialogue_app import build_dialogue_app as build

    return build(args)


__all__ = [
    "AgentServing",
    "DialogueAppArgs",
    "GatewayServing",
    "LLMServing",
    "ScenarioConfig",
    "build_dialogue_app",
    "build_llm_app",
]
