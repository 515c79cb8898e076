"""The dialogue app's shipped configs and its argument checks (no Ray needed: fast)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError
from ray.serve.schema import ServeDeploySchema

from wow_ray.agents.config import AGENT_NAMES
from wow_ray.scenario import load_pack
from wow_ray.serving import DialogueAppArgs, ScenarioConfig

CONFIGS = sorted(p for p in Path("serve_apps").glob("*.yaml") if p.name != "llm.yaml")
DEPLOYMENTS = {"Policy", "Understanding", "Solution", "Response", "Handoff", "Master"}


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_shipped_configs_are_valid_and_give_every_agent_its_own_serving_options(path):
    config = ServeDeploySchema.model_validate(yaml.safe_load(path.read_text()))
    (app,) = config.applications
    assert app.import_path == "serve_apps.dialogue:build_dialogue_app"
    args = DialogueAppArgs.model_validate(app.args)
    load_pack(args.scenario)
    assert set(args.agents) == set(AGENT_NAMES), "every agent's resources are spelled out"
    for name in AGENT_NAMES:
        options = args.serving(name).deployment_options()
        assert options["ray_actor_options"]["num_cpus"] > 0
        assert options["autoscaling_config"]["max_replicas"] >= 1
    # Rules and policy reach every agent through user_config, which must survive JSON.
    assert {d.name for d in app.deployments} == DEPLOYMENTS
    for deployment in app.deployments:
        ScenarioConfig.model_validate(json.loads(json.dumps(deployment.user_config)))


def _bound_deployments(app) -> dict[str, object]:
    """Every deployment of a built app, by name, as Serve will deploy it (no Ray needed)."""
    from ray.serve import Application

    found, todo = {}, [app]
    while todo:
        deployment = todo.pop()._bound_deployment
        found[deployment.name] = deployment
        todo += [a for a in deployment.init_args if isinstance(a, Application)]
    return found


def test_the_autoscalers_delays_from_a_serve_config_reach_every_deployment():
    """`downscale_delay_s` / `upscale_delay_s` set in a config's args are the deployments'
    autoscaling config; left out, they are Serve's own defaults (behaviour unchanged)."""
    from ray.serve.config import AutoscalingConfig

    from wow_ray.serving import build_dialogue_app

    (app,) = yaml.safe_load(Path("serve_apps/food_delivery.yaml").read_text())["applications"]
    args = {**app["args"], "llm": {"app": "llm"}}  # an LLM app already running: no vLLM here
    args["agents"]["response"] = {**args["agents"]["response"], "downscale_delay_s": 30,
                                  "upscale_delay_s": 5}
    args["gateway"] = {**args["gateway"], "downscale_delay_s": 45}
    deployments = _bound_deployments(build_dialogue_app(args))
    assert set(deployments) == DEPLOYMENTS | {"Gateway"}
    scaling = {name: d._deployment_config.autoscaling_config for name, d in deployments.items()}
    assert (scaling["Response"].downscale_delay_s, scaling["Response"].upscale_delay_s) == (30, 5)
    assert scaling["Response"].target_ongoing_requests == 8  # the agent's own option kept
    assert scaling["Gateway"].downscale_delay_s == 45
    serve_default = AutoscalingConfig()
    for name in DEPLOYMENTS - {"Response"}:
        assert scaling[name].downscale_delay_s == serve_default.downscale_delay_s == 600
        assert scaling[name].upscale_delay_s == serve_default.upscale_delay_s


@pytest.mark.parametrize(("args", "field"), [
    ({"agents": {"planner": {}}}, "agents"),
    ({"agents": {"master": {"min_replicas": 3, "max_replicas": 2}}}, "max_replicas"),
    ({"agents": {"master": {"num_cpus": 0}}}, "num_cpus"),
    ({"agents": {"master": {"downscale_delay_s": -1}}}, "downscale_delay_s"),
    ({"gateway": {"upscale_delay_s": -0.5}}, "upscale_delay_s"),
    ({"gateway": {"min_replicas": 3, "max_replicas": 2}}, "max_replicas"),
    ({"gateway": {"auth": {"mode": "sometimes"}}}, "mode"),
    ({"gateway": {"limits": {"max_request_bytes": 10}}}, "max_request_bytes"),
    ({"databse_url": "sqlite://"}, "databse_url"),
])
def test_a_bad_argument_fails_at_build_time_naming_the_field(args, field):
    with pytest.raises(ValidationError, match=field):
        DialogueAppArgs.model_validate(args)


def test_no_caller_is_trusted_by_address_by_default_or_in_any_shipped_config():
    """Loopback trust is a development setting: a reverse proxy makes every caller loopback."""
    from pathlib import Path

    import yaml

    auth = DialogueAppArgs().gateway.auth
    assert not auth.trust_loopback and not auth.allow_anonymous
    shipped = sorted(Path(__file__).resolve().parents[2].glob("serve_apps/*.yaml"))
    dialogue_apps = [app for path in shipped for app in yaml.safe_load(path.read_text())["applications"]
                     if app["import_path"].endswith("build_dialogue_app")]
    assert len(dialogue_apps) >= 2
    for app in dialogue_apps:
        parsed = DialogueAppArgs.model_validate(app["args"]).gateway.auth
        assert not parsed.trust_loopback and not parsed.allow_anonymous, app["name"]
