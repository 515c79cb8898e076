"""Settings: YAML file, environment and arguments, in that order of priority; bad values named."""

import pytest

from wow_ray.config import load_settings
from wow_ray.errors import ConfigError


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    import os

    for name in list(os.environ):
        if name.startswith("WOW_RAY_"):
            monkeypatch.delenv(name)


def test_defaults_serve_the_embedded_model_from_a_local_folder():
    settings = load_settings()
    assert settings.model == "smollm2-135m"
    assert settings.storage_path.endswith(".wow_ray/storage")
    assert settings.engine.enable_lora


def test_environment_overrides_one_nested_field_and_keeps_the_files_others(tmp_path, monkeypatch):
    config = tmp_path / "wow.yaml"
    config.write_text("engine:\n  max_model_len: 1024\n  dtype: float32\nserve:\n  port: 8100\n")
    monkeypatch.setenv("WOW_RAY_ENGINE__DTYPE", "bfloat16")
    settings = load_settings(config)
    assert settings.engine.dtype == "bfloat16"
    assert settings.engine.max_model_len == 1024
    assert settings.serve.port == 8100


def test_arguments_override_environment(monkeypatch):
    monkeypatch.setenv("WOW_RAY_MODEL", "from-env")
    assert load_settings(model="from-args").model == "from-args"


def test_config_file_from_environment_variable(tmp_path, monkeypatch):
    config = tmp_path / "wow.yaml"
    config.write_text(f"storage_path: {tmp_path / 'store'}\n")
    monkeypatch.setenv("WOW_RAY_CONFIG", str(config))
    assert load_settings().storage_path == str(tmp_path / "store")


def test_bad_value_in_file_names_the_field_the_file_and_the_env_name(tmp_path):
    config = tmp_path / "wow.yaml"
    config.write_text("serve:\n  port: 0\n")
    with pytest.raises(ConfigError) as err:
        load_settings(config)
    message = str(err.value)
    assert "serve.port" in message
    assert str(config) in message
    assert "WOW_RAY_SERVE__PORT" in message


def test_bad_value_in_environment_names_the_field(monkeypatch):
    monkeypatch.setenv("WOW_RAY_ENGINE__GPU_MEMORY_UTILIZATION", "1.5")
    with pytest.raises(ConfigError, match="engine.gpu_memory_utilization"):
        load_settings()


def test_unknown_field_is_rejected(tmp_path):
    config = tmp_path / "wow.yaml"
    config.write_text("engine:\n  max_modle_len: 1024\n")
    with pytest.raises(ConfigError, match="engine.max_modle_len"):
        load_settings(config)


@pytest.mark.parametrize(
    ("content", "fragment"),
    [("engine: [1, 2\n", "not valid YAML"), ("- a\n- b\n", "must hold a mapping")],
)
def test_malformed_file_is_reported_with_its_path(tmp_path, content, fragment):
    config = tmp_path / "wow.yaml"
    config.write_text(content)
    with pytest.raises(ConfigError, match=fragment) as err:
        load_settings(config)
    assert str(config) in str(err.value)


def test_missing_file_is_reported():
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings("/nonexistent/wow.yaml")


def test_engine_reuses_prompt_prefixes_and_binds_cpu_threads_only_when_told(monkeypatch):
    from wow_ray.llm.engine import engine_env_for, engine_kwargs_for

    settings = load_settings()
    assert engine_kwargs_for(settings, "cpu")["enable_prefix_caching"] is True
    assert engine_kwargs_for(settings, "cpu")["block_size"] == 32, "a block the shared prefix fills"
    assert "block_size" not in engine_kwargs_for(settings, "gpu")
    assert "VLLM_CPU_OMP_THREADS_BIND" not in engine_env_for(settings, "cpu")
    monkeypatch.setenv("WOW_RAY_ENGINE__ENABLE_PREFIX_CACHING", "false")
    monkeypatch.setenv("WOW_RAY_ENGINE__CPU_THREADS_BIND", "0-1")
    settings = load_settings()
    assert engine_kwargs_for(settings, "cpu")["enable_prefix_caching"] is False
    assert engine_env_for(settings, "cpu")["VLLM_CPU_OMP_THREADS_BIND"] == "0-1"
    assert "VLLM_CPU_OMP_THREADS_BIND" not in engine_env_for(settings, "gpu")
