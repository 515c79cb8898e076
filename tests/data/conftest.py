"""Shared fixtures: the food pack, and one small cold-start build on Ray Data (per session)."""

from __future__ import annotations

import pytest

from wow_ray.scenario import load_pack


@pytest.fixture(scope="session")
def food_pack():
    return load_pack("food_delivery")


@pytest.fixture(scope="session")
def built(ray_session, tmp_path_factory):
    """A registered cold-start dataset (small) and the build result behind it."""
    from wow_ray.data.pipeline import BuildConfig, build_cold_start
    from wow_ray.data.store import register_build
    from wow_ray.registry import Registry

    registry = Registry(str(tmp_path_factory.mktemp("storage")))
    result = build_cold_start(BuildConfig(situations=40, seed=3, concurrency=2))
    entry, manifest = register_build(registry, result)
    return registry, entry, manifest, result
