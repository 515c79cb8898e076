"""Fixtures shared by the whole suite.

One local Ray for the whole session: starting Ray costs seconds, and vLLM's replica, Serve's
proxy and Train's workers all fit in it. It is started with more logical CPUs than the machine
has cores (docs/design.md: otherwise replicas wait forever for resources on a 2-core machine).
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

    from wow_ray.serving import build_llm_app

    port = int(os.environ.get("WOW_RAY_TEST_SERVE_PORT", "18000"))
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(build_llm_app({"storage_path": embedded_storage}), name="llm", route_prefix="/")
    yield f"http://127.0.0.1:{port}"
    serve.delete("llm")


DIALOGUE_TEST_KEY = "test-key-not-secret"  # scope customer
DIALOGUE_OPERATOR_KEY = "operator-key-not-secret"
DIALOGUE_ADMIN_KEY = "admin-key-not-secret"
DIALOGUE_TOKEN_SECRET = "test-customer-token-secret-not-secret-0123456789"


class DialogueApp:
    """The food_delivery dialogue service as deployed for tests, and how to redeploy it."""

    name = "fd"
    route = "/fd"

    def __init__(self, base_url: str, storage: str, database_url: str, secret_file: str) -> None:
        self.url = base_url + self.route
        self.storage = storage
        self.database_url = database_url
        self.secret_file = secret_file
        self.headers = {"Authorization": f"Bearer {DIALOGUE_TEST_KEY}"}
        self.operator_headers = {"Authorization": f"Bearer {DIALOGUE_OPERATOR_KEY}"}
        self.admin_headers = {"Authorization": f"Bearer {DIALOGUE_ADMIN_KEY}"}

    def customer(self, user: str, verified: bool = True) -> dict[str, str]:
        """Headers of the customer channel acting for ``user``, as the business's app sends them."""
        from wow_ray.serving.access import mint_customer_token

        token = mint_customer_token(DIALOGUE_TOKEN_SECRET, user, verified=verified)
        return {**self.headers, "X-Customer-Token": token}

    def config(self, user_config: dict | None = None):
        from ray.serve.schema import ServeDeploySchema

        from wow_ray.serving.access import hash_api_key

        app = {
            "name": self.name, "route_prefix": self.route,
            "import_path": "serve_apps.dialogue:build_dialogue_app",
            "runtime_env": {"env_vars": {"PYTHONPATH": os.getcwd()}},
            "logging_config": {"encoding": "JSON"},  # as docs/operations.md advises
            "args": {
                "dialogue": {"scenario": "food_delivery"}, "database_url": self.database_url,
                "llm": {"app": "llm", "settings": {"storage_path": self.storage}},
                "gateway": {"auth": {
                    "api_keys": [{"name": scope, "scope": scope, "sha256": hash_api_key(key)}
                                 for scope, key in (("customer", DIALOGUE_TEST_KEY),
                                                    ("operator", DIALOGUE_OPERATOR_KEY),
                                                    ("admin", DIALOGUE_ADMIN_KEY))],
                    "api_keys_file": None, "api_keys_env": None,
                    "customer_token_secret_env": None,
                    "customer_token_secret_file": self.secret_file}},
            },
        }
        if user_config is not None:  # what `serve deploy` with a changed YAML sends
            app["deployments"] = [{"name": n, "user_config": user_config} for n in
                                  ("Policy", "Understanding", "Solution", "Response", "Handoff", "Master")]
        return ServeDeploySchema(applications=[app])

    def deploy(self, user_config: dict | None = None, timeout_s: float = 600) -> None:
        """Apply the config declaratively (the code path of `serve deploy`), wait until running."""
        from benchmarks.multinode_dialogue import deploy_and_wait

        deploy_and_wait(self.config(user_config), self.name, timeout_s)


@pytest.fixture(scope="session")
def dialogue_app(served_llm, embedded_storage, tiny_adapter_dir, tmp_path_factory):
    """The food_delivery dialogue service (a Serve deployment per agent, the gateway) sharing
    the session's LLM app, so vLLM starts once. Deployed like `serve deploy`, so tests can
    change its user_config in place. The handoff agent has a LoRA adapter in the registry
    (registered under the '<scenario>-<agent>' name it looks for, its 'production' alias set)."""
    from ray import serve

    from wow_ray.registry import Registry, register_model

    registry = Registry(embedded_storage)
    adapter = register_model(registry, "food_delivery-handoff",
                             str(tiny_adapter_dir), base_model="smollm2-135m")
    registry.aliases.move(adapter.kind, adapter.name, "production", adapter.version,
                          by="tests/conftest.py")
    folder = tmp_path_factory.mktemp("sessions")
    secret_file = folder / "customer_token_secret"
    secret_file.write_text(DIALOGUE_TOKEN_SECRET + "\n")
    app = DialogueApp(served_llm, embedded_storage, f"sqlite:///{folder / 'sessions.db'}",
                      str(secret_file))
    app.handoff_model = f"smollm2-135m:{adapter.ref}"
    app.deploy()
    yield app
    serve.delete(app.name)
