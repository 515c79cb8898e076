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
            address="local",  # a private Ray, even when another one runs on this machine
            num_cpus=RAY_TEST_CPUS,
            include_dashboard=False,
            log_to_driver=False,
            runtime_env={"env_vars": {"PYTHONPATH": os.getcwd()}},
        )
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def embedded_storage(tmp_path_factory) -> str:
    """A storage root with the embedded model converted and registered (once per session)."""
    from wow_ray.registry import Registry, prepare_embedded_model

    root = str(tmp_path_factory.mktemp("storage"))
    prepare_embedded_model(Registry(root))
    return root


@pytest.fixture(scope="session")
def tiny_adapter_dir(embedded_storage, tmp_path_factory):
    """A PEFT LoRA adapter over the embedded model, with random (non-zero) weights so that
    serving it visibly changes the output."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from wow_ray.registry import EntryKind, Registry

    registry = Registry(embedded_storage)
    base = registry.local_dir(registry.get(EntryKind.MODEL, "smollm2-135m"))
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(base)
    lora = LoraConfig(
        r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False
    )
    out = tmp_path_factory.mktemp("adapter")
    get_peft_model(model, lora).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def served_llm(ray_session, embedded_storage):
    """The LLM app (vLLM on CPU behind Ray Serve's OpenAI ingress) serving the embedded model.

    Started once per session: vLLM takes a minute or two to start on this machine, and every
    test that needs a real model talks to this one. Yields the base URL.
    """
    from ray import serve

    from serve_apps.llm import build_llm_app

    port = int(os.environ.get("WOW_RAY_TEST_SERVE_PORT", "18000"))
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(build_llm_app({"storage_path": embedded_storage}), name="llm", route_prefix="/")
    yield f"http://127.0.0.1:{port}"
    serve.delete("llm")
