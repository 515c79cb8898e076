"""Session-wide pools of gloo ranks (tests/dear/cluster.py), one per world size."""

from __future__ import annotations

import pytest

from .cluster import GlooCluster

_POOLS: dict[int, GlooCluster] = {}


def _pool(world: int) -> GlooCluster:
    pool = _POOLS.get(world)
    if pool is None or pool.broken:
        pool = _POOLS[world] = GlooCluster(world)
    return pool


@pytest.fixture(scope="session")
def gloo():
    """`gloo(n)`: a healthy pool of n gloo ranks (started on first use, kept for the session)."""
    yield _pool
    for pool in _POOLS.values():
        pool.close()
    _POOLS.clear()
