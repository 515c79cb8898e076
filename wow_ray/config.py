"""The one settings model: storage, Ray, the served model and vLLM engine options.

Read, highest priority first, from keyword arguments, environment variables (``WOW_RAY_``
prefix, ``__`` between nested fields, e.g. ``WOW_RAY_ENGINE__MAX_MODEL_LEN=4096``), and a YAML
file (``--config`` or ``WOW_RAY_CONFIG``). A bad value fails at start with the field named.
"""

from __future__ import annotations

import os
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from wow_ray.errors import ConfigError

DEFAULT_STORAGE_PATH = "~/.wow_ray/storage"
EMBEDDED_MODEL = "smollm2-135m"


class EngineOptions(BaseModel):
    """vLLM engine options; ``None`` means "the default for the device Ray sees" (CPU or GPU)."""

    model_config = ConfigDict(extra="forbid")

    device: Literal["auto", "cpu", "gpu"] = Field(
        "auto", description="Where vLLM runs. auto: on GPUs when the Ray cluster has any."
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] | None = Field(
        None, description="Weights dtype. Default: float32 on CPU, auto on GPU."
    )
    max_model_len: int = Field(2048, ge=128, description="Longest prompt plus completion, tokens.")
    max_num_seqs: int | None = Field(
        None, ge=1, description="Sequences batched at once. Default: vLLM's."
    )
    gpu_memory_utilization: float | None = Field(
        None,
        gt=0,
        le=1,
        description="Fraction of device memory for weights and KV cache. On CPU vLLM reads it as "
        "a fraction of host memory. Default: 0.2 on CPU, 0.9 on GPU.",
    )
    enable_prefix_caching: bool | None = Field(
        None, description="Reuse the KV cache of prompt prefixes shared across requests (the "
        "agents' system prompts, policy, tool lists). vLLM's CPU build supports it except for "
        "MLA models. Default: on.")
    block_size: int | None = Field(
        None, ge=16, description="Tokens per KV-cache block; prefix caching reuses whole blocks "
        "only. Default: 32 on CPU (vLLM's CPU default, 128, is longer than the prefix the "
        "agents' prompts share: the reply prompts share 78-127 tokens), vLLM's on GPU.")
    cpu_threads_bind: str | None = Field(
        None, description="CPU build only: the cores vLLM's worker computes on, as "
        "VLLM_CPU_OMP_THREADS_BIND ('0-1': two threads on cores 0 and 1; 'nobind'). Default: "
        "vLLM's 'auto', which reserves one core for its scheduler, so a 2-core machine "
        "decodes on one thread.")
    warm_up: bool = Field(
        True, description="Generate a few tokens when a replica starts, before it reports "
        "ready, so the first customer does not pay for the engine's first steps.")
    enable_lora: bool = Field(True, description="Serve LoRA adapters from the registry by name.")
    max_lora_rank: int = Field(16, ge=1, le=256, description="Largest adapter rank accepted.")
    max_loras: int = Field(4, ge=1, description="Adapters resident in one batch at once.")
    extra: dict[str, Any] = Field(
        default_factory=dict, description="Passed through to vLLM's engine arguments as-is."
    )


class ServeOptions(BaseModel):
    """Where the HTTP ingress listens and how many LLM replicas run."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field("127.0.0.1", description="HTTP host of Ray Serve's proxy.")
    port: int = Field(8000, ge=1, le=65535, description="HTTP port of Ray Serve's proxy.")
    min_replicas: int = Field(1, ge=0, description="Autoscaling floor of the LLM deployment.")
    max_replicas: int = Field(1, ge=1, description="Autoscaling ceiling of the LLM deployment.")
    ingress_cpus: float = Field(
        0.25,
        gt=0,
        description="Logical CPUs reserved by the HTTP ingress. It only forwards requests, and a "
        "whole CPU for it would leave a 2-core machine none for vLLM's replica.",
    )
    default_max_tokens: int = Field(
        512,
        ge=1,
        description="Reply length limit when a request sets none (vLLM's own default is the "
        "whole remaining context, minutes of generation on a CPU).",
    )
    app_name: str = Field("llm", description="Name of the Serve application.")
    route_prefix: str = Field("/", description="Route prefix of the Serve application.")


class WowSettings(BaseSettings):
    """Everything a WOW-Ray process needs to know about its environment."""

    model_config = SettingsConfigDict(
        env_prefix="WOW_RAY_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    storage_path: str = Field(
        DEFAULT_STORAGE_PATH,
        description="Root of datasets, checkpoints, reports and the registry: a local folder or "
        "any pyarrow filesystem URI (s3://bucket/prefix, gs://..., an NFS mount).",
    )
    ray_address: str | None = Field(
        None,
        description="Ray cluster to join ('auto', 'ray://host:10001'). None starts a local Ray.",
    )
    ray_num_cpus: int | None = Field(
        None,
        ge=1,
        description="Logical CPUs of a local Ray. Default: at least 8, since vLLM's replica, the "
        "ingress and the proxy each reserve CPUs and would wait forever on a 2-core machine.",
    )
    model: str = Field(
        EMBEDDED_MODEL, description="Registered model (name or name:version) to serve."
    )
    engine: EngineOptions = Field(default_factory=EngineOptions)
    serve: ServeOptions = Field(default_factory=ServeOptions)

    @field_validator("storage_path")
    @classmethod
    def _expand_local_path(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        if "://" in value:
            return value
        return str(Path(value).expanduser().resolve())

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Explicit arguments beat the environment, which beats the YAML file; nested sections
        # are merged field by field, so WOW_RAY_ENGINE__DTYPE keeps the file's other engine keys.
        return (init_settings, env_settings, _YamlFileSource(settings_cls))


_config_file: ContextVar[Path | None] = ContextVar("wow_ray_config_file", default=None)


class _YamlFileSource(PydanticBaseSettingsSource):
    """The YAML file that load_settings() was given, read once, as the lowest-priority source."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ returns the whole mapping

    def __call__(self) -> dict[str, Any]:
        path = _config_file.get()
        return _read_yaml(path) if path else {}


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping, not {type(data).__name__}")
    return data


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> WowSettings:
    """Build the settings from YAML, environment and overrides; raise ConfigError naming the field."""
    config_file = config_file or os.environ.get("WOW_RAY_CONFIG")
    path = Path(config_file) if config_file else None
    if path is not None:
        _read_yaml(path)  # fail early, naming the file, before pydantic sees anything
    token = _config_file.set(path)
    try:
        return WowSettings(**overrides)
    except ValidationError as exc:
        where = f"config file {path}, " if path else ""
        source = f"{where}environment (WOW_RAY_*) or arguments"
        raise ConfigError(_describe_validation_error(exc, source)) from None
    finally:
        _config_file.reset(token)


def _describe_validation_error(exc: ValidationError, source: str) -> str:
    lines = [f"invalid settings (from {source}):"]
    for err in exc.errors():
        field = ".".join(str(part) for part in err["loc"]) or "<root>"
        env = "WOW_RAY_" + "__".join(str(p) for p in err["loc"]).upper()
        lines.append(f"  {field} (env {env}): {err['msg']}; got {err.get('input')!r}")
    return "\n".join(lines)
