"""Joining a Ray cluster, or starting a local one sized for this kind of machine."""

from __future__ import annotations

import logging
import os

from wow_ray.config import WowSettings

# vLLM's replica, the HTTP ingress, Serve's controller and Train's workers all reserve logical
# CPUs; on a 2-core machine they would wait forever for each other (docs/design.md). Logical CPUs
# are only a scheduling budget, so a local Ray gets at least this many.
MIN_LOCAL_LOGICAL_CPUS = 8


def local_num_cpus(settings: WowSettings) -> int:
    return settings.ray_num_cpus or max(MIN_LOCAL_LOGICAL_CPUS, os.cpu_count() or 1)


def init_ray(settings: WowSettings, **kwargs: object) -> None:
    """Join ``settings.ray_address`` (or ``RAY_ADDRESS``, which ``ray job submit`` sets), else
    start a private local Ray; a no-op when this process is already connected."""
    import ray

    if ray.is_initialized():
        return
    address = settings.ray_address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(address="local", num_cpus=local_num_cpus(settings), **kwargs)
    # Ray's logging setup makes the driver's root logger print INFO as JSON: every HTTP request
    # the evaluation's clients make would be a line on the user's terminal.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
