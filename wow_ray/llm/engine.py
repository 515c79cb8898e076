"""From our settings and a registry entry to a ``ray.serve.llm`` LLMConfig, per device.

The CPU defaults are the ones verified on a 2-core machine (docs/design.md): float32 weights, and
``gpu_memory_utilization`` read by vLLM's CPU build as a fraction of host memory, kept small so
training and evaluation fit beside it.
"""

from __future__ import annotations

from typing import Any, Literal

from ray.serve.llm import LLMConfig

from wow_ray.config import WowSettings
from wow_ray.registry import Registry, RegistryEntry

Device = Literal["cpu", "gpu"]

_DEVICE_DEFAULTS: dict[Device, dict[str, Any]] = {
    # Prefix caching is vLLM's own default; it is set here so that it is visible and can be
    # turned off to measure it (every agent's prompt begins with the same system text).
    # vLLM caches whole blocks only, and its CPU default block (128 tokens) is longer than the
    # system text the agents' prompts share: 32 (the CPU kernels want multiples of 32) lets
    # most of that prefix be reused.
    # Per-request metrics: each answer carries the engine's queue, prefill and decode times
    # (``metrics``; in a stream, on the final usage chunk), which the agents record per call.
    "cpu": {"dtype": "float32", "gpu_memory_utilization": 0.2, "enable_prefix_caching": True,
            "block_size": 32, "enable_per_request_metrics": True},
    "gpu": {"dtype": "auto", "gpu_memory_utilization": 0.9, "enable_prefix_caching": True,
            "enable_per_request_metrics": True},
}


def detect_device(requested: str = "auto") -> Device:
    """``gpu`` when asked, or when the Ray cluster this process is connected to has GPUs."""
    if requested in ("cpu", "gpu"):
        return requested  # type: ignore[return-value]
    import ray

    if ray.is_initialized():
        return "gpu" if ray.cluster_resources().get("GPU", 0) > 0 else "cpu"
    import torch

    return "gpu" if torch.cuda.is_available() else "cpu"


def engine_kwargs_for(settings: WowSettings, device: Device) -> dict[str, Any]:
    """vLLM engine arguments: device defaults, then the settings that are set, then ``extra``."""
    engine = settings.engine
    kwargs: dict[str, Any] = dict(_DEVICE_DEFAULTS[device])
    kwargs["max_model_len"] = engine.max_model_len
    for field in ("dtype", "gpu_memory_utilization", "max_num_seqs", "enable_prefix_caching",
                  "block_size"):
        if (value := getattr(engine, field)) is not None:
            kwargs[field] = value
    if engine.enable_lora:
        kwargs.update(
            enable_lora=True, max_lora_rank=engine.max_lora_rank, max_loras=engine.max_loras
        )
    kwargs.update(engine.extra)
    return kwargs


def engine_env_for(settings: WowSettings, device: Device) -> dict[str, str]:
    """Environment of the LLM replicas: the storage path, and the CPU build's thread binding."""
    env = {"WOW_RAY_STORAGE_PATH": settings.storage_path}
    if device == "cpu" and settings.engine.cpu_threads_bind is not None:
        env["VLLM_CPU_OMP_THREADS_BIND"] = settings.engine.cpu_threads_bind
    return env


def llm_config_for(
    settings: WowSettings,
    registry: Registry,
    entry: RegistryEntry,
    *,
    server_cls: Any = None,
    device: Device | None = None,
) -> LLMConfig:
    """The LLMConfig that serves ``entry`` under its registry name."""
    device = device or detect_device(settings.engine.device)
    if registry.storage.is_local:
        model_source: Any = str(registry.local_dir(entry))
    else:  # Ray mirrors the folder onto each replica's node before vLLM starts
        model_source = {"bucket_uri": registry.artifact_uri(entry)}
    config: dict[str, Any] = {
        "model_loading_config": {"model_id": entry.name, "model_source": model_source},
        "accelerator_config": {"kind": device},
        "engine_kwargs": engine_kwargs_for(settings, device),
        "deployment_config": {
            # On CPU the engine's placement bundle already reserves the CPU that vLLM computes
            # on; the replica actor beside it only relays requests. Ray's default (one more
            # CPU for the actor) would not fit the app on a 2-core machine.
            "ray_actor_options": {"num_cpus": 0 if device == "cpu" else 1},
            "autoscaling_config": {
                "min_replicas": settings.serve.min_replicas,
                "max_replicas": settings.serve.max_replicas,
            },
        },
        # Replicas read the same settings from the environment (storage path for adapters).
        "runtime_env": {"env_vars": engine_env_for(settings, device)},
    }
    if settings.engine.enable_lora:
        config["lora_config"] = {"max_num_adapters_per_replica": settings.engine.max_loras}
    if server_cls is not None:
        config["server_cls"] = server_cls
    return LLMConfig(**config)
