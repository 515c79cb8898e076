"""Fixtures shared by the whole suite.

One local Ray for the whole session: starting Ray costs seconds, and vLLM's replica, Serve's
proxy and Train's workers all fit in it. It is started with more logical CPUs than the machine
has cores (DESIGN.md: otherwise replicas wait forever for resources on a 2-core machine).
"""

from __future__ import annotations

import os

import pytest

RAY_TEST_CPUS = int(os.environ.get("WOW_RAY_TEST_RAY_CPUS", "16"))


@pytest.fixture(scope="session")
def ray_session():
    """A local Ray shared by every test that needs one; shut down at the end of the session."""
    import ray

    if not ray.is_initialized():
        ray.init(
            num_cpus=RAY_TEST_CPUS,
            include_dashboard=False,
            log_to_driver=False,
            runtime_env={"env_vars": {"PYTHONPATH": os.getcwd()}},
        )
    yield ray
    ray.shutdown()
