"""Versioned artifacts on one storage path: models, adapters, datasets, checkpoints, reports,
and the aliases (``production``, ``candidate``) that point at their versions."""

from wow_ray.registry.aliases import (
    CANDIDATE,
    PRODUCTION,
    AliasConflict,
    Aliases,
    AliasMove,
)
from wow_ray.registry.models import (
    prepare_embedded_model,
    register_model,
    resolve_model,
)
from wow_ray.registry.records import EntryKind, Registry, RegistryEntry, parse_ref
from wow_ray.registry.storage import Storage

__all__ = [
    "CANDIDATE",
    "PRODUCTION",
    "AliasConflict",
    "AliasMove",
    "Aliases",
    "EntryKind",
    "Registry",
    "RegistryEntry",
    "Storage",
    "parse_ref",
    "prepare_embedded_model",
    "register_model",
    "resolve_model",
]
