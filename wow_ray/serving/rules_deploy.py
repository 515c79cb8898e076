"""Deploy an edited rules file to the running agents, through their Serve ``user_config``.

The one path for new rules at run time, whether they come from ``serve deploy`` with a config
file or from the console / ``PUT /v1/admin/rules``: every agent deployment's ``user_config``
(:class:`~wow_ray.serving.dialogue_args.ScenarioConfig`) gets the rules inline, and Serve calls
each replica's ``reconfigure`` in place (no restart; a replica started later gets the same
config). Here the gateway asks the Serve controller for that itself: the app's deployments are
deployed again exactly as they run (same code version, same options) with only the agents'
``user_config`` changed, which is what Serve treats as a lightweight update.

Before anything is sent, the file is checked on a scratch copy of the pack, both as the text
(so problems name file, line and field) and in the JSON form the replicas receive; an invalid
file is refused and nothing in force changes (the replicas would refuse it too: ``reconfigure``
keeps the old rules on any error). Each accepted deployment is stored in
:class:`~wow_ray.serving.rules_history.RulesHistory`.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import yaml
from pydantic import BaseModel, Field

from wow_ray.errors import WowRayError
from wow_ray.serving.rules_history import RulesDeployment, RulesHistory

AGENT_DEPLOYMENTS = ("Policy", "Understanding", "Solution", "Response", "Handoff", "Master")
IN_FORCE_WAIT_S = 60.0


class RulesIssue(BaseModel):
    file: str
    line: int | None = None
    field: str = ""
    message: str


class RulesCheck(BaseModel):
    """The rule engine's verdict on a rules file, before anything is deployed."""

    ok: bool
    version: str | None = Field(None, description="The version id the agents would report.")
    issues: list[RulesIssue] = Field(default_factory=list)
    rules: dict[str, Any] | None = Field(None, description="The rules as the user_config "
                                         "carries them (JSON: dates become ISO strings).")


class RulesRefused(WowRayError):
    """An invalid rules file: nothing was deployed."""

    def __init__(self, issues: list[RulesIssue]) -> None:
        super().__init__("; ".join(f"{i.file}:{i.line or '?'} {i.field}: {i.message}"
                                   for i in issues))
        self.issues = issues


class RulesDeployed(BaseModel):
    deployment: RulesDeployment
    in_force: bool = Field(description="Every agent deployment reported the new version.")


_scratch: dict[str, Any] = {}


def check_rules(scenario: str, text: str) -> RulesCheck:
    """Validate ``text`` as the scenario's rules file on a scratch copy of its pack (the
    rules in force stay): file, line and field for each problem, else the version id."""
    from wow_ray.scenario import load_pack
    from wow_ray.scenario.errors import PackValidationError

    scratch = _scratch.get(scenario) or _scratch.setdefault(scenario, load_pack(scenario))
    try:
        scratch.rules.load_text(text, "rules.yaml")
        data = json.loads(json.dumps(yaml.safe_load(text), default=str))
        version = scratch.rules.load_data(data, source="user_config.rules")
    except PackValidationError as exc:
        return RulesCheck(ok=False, issues=[RulesIssue(file=i.file, line=i.line, field=i.field,
                                                       message=i.message) for i in exc.issues])
    return RulesCheck(ok=True, version=version, rules=data)


def deploy_yaml(rules: dict[str, Any]) -> str:
    """The same change as a Serve config block, for clusters deployed from a config file."""
    deployments = [{"name": n, "user_config": {"rules": rules}} for n in AGENT_DEPLOYMENTS]
    return yaml.safe_dump({"deployments": deployments}, sort_keys=False, allow_unicode=True)


async def deploy_rules(gateway: Any, text: str, by: str) -> RulesDeployed:
    """Check ``text``, set it as every agent's ``user_config`` rules, record the deployment,
    and wait (a while) until the agents report the new version. Raises RulesRefused."""
    check = await asyncio.to_thread(check_rules, gateway.args.scenario, text)
    if not check.ok:
        raise RulesRefused(check.issues)
    in_force = await gateway.master.rules_in_force.remote()
    # What else the agents were configured with (policy...) stays; a rules file yields to these.
    user_config = {k: v for k, v in in_force["user_config"].items() if k != "rules_file"}
    user_config["rules"] = check.rules
    await asyncio.to_thread(push_user_config, user_config)
    history = RulesHistory(gateway.store.engine)
    deployment = await asyncio.to_thread(
        history.record, gateway.pack.name, version=check.version or "",
        previous_version=in_force["version"], by=by, text=text)
    return RulesDeployed(deployment=deployment,
                         in_force=await wait_in_force(check.version or ""))


# --------------------------------------------------------------------------- Serve


def _app_name() -> str:
    from ray import serve

    return serve.get_replica_context().app_name


def push_user_config(user_config: dict[str, Any],
                     deployments: tuple[str, ...] = AGENT_DEPLOYMENTS) -> None:
    """Deploy this replica's app again as it runs, with ``user_config`` on ``deployments``.

    Uses the controller's deploy call the way ``serve.run`` does, but keeps each deployment's
    code version (``serve.run`` would pick new random ones and restart every replica, vLLM's
    too): an unchanged deployment is left alone and a changed ``user_config`` is applied with
    ``reconfigure``. (Ray Serve internals, checked against Ray 2.60.)
    """
    import ray
    from ray.serve._private.constants import SERVE_CONTROLLER_NAME, SERVE_NAMESPACE
    from ray.serve._private.deploy_utils import get_deploy_args
    from ray.serve.generated.serve_pb2 import ApplicationArgs, DeploymentArgs

    app = _app_name()
    controller = ray.get_actor(SERVE_CONTROLLER_NAME, namespace=SERVE_NAMESPACE)
    infos = ray.get(controller.list_deployments_internal.remote())
    ours = {d.name: info for d, (info, _route) in infos.items() if d.app_name == app}
    missing = sorted(set(deployments) - set(ours))
    if missing:
        raise WowRayError(f"app {app!r} has no deployments {missing}")
    listed = []
    for name, info in ours.items():
        config = info.deployment_config.model_copy(deep=True)
        if name in deployments:
            config.user_config = user_config
        args = get_deploy_args(name, info.replica_config, ingress=info.ingress,
                               ingress_request_router=info.ingress_request_router,
                               deployment_config=config, version=info.version,
                               route_prefix=info.route_prefix)
        proto = DeploymentArgs(deployment_name=name,
                               deployment_config=args["deployment_config_proto_bytes"],
                               replica_config=args["replica_config_proto_bytes"],
                               deployer_job_id=info.deployer_job_id or args["deployer_job_id"],
                               ingress=info.ingress,
                               ingress_request_router=info.ingress_request_router)
        if info.route_prefix:
            proto.route_prefix = info.route_prefix
        listed.append(proto.SerializeToString())
    scaler = ray.get(controller.get_external_scaler_enabled.remote(app))
    app_args = ApplicationArgs(external_scaler_enabled=bool(scaler)).SerializeToString()
    ray.get(controller.deploy_applications.remote({app: listed}, {app: app_args}))


async def wait_in_force(version: str, deployments: tuple[str, ...] = AGENT_DEPLOYMENTS,
                        timeout_s: float = IN_FORCE_WAIT_S) -> bool:
    """True once every agent deployment answers with ``version`` (three times in a row, so a
    deployment's other replicas are likely asked too); False after ``timeout_s``."""
    from ray import serve

    app = _app_name()
    handles = {n: serve.get_deployment_handle(n, app_name=app) for n in deployments}
    deadline = time.monotonic() + timeout_s
    confirmed = dict.fromkeys(deployments, 0)
    while time.monotonic() < deadline:
        for name, handle in handles.items():
            if confirmed[name] < 3:
                seen = await _asked(handle, deadline)
                confirmed[name] = confirmed[name] + 1 if seen == version else 0
        if all(n >= 3 for n in confirmed.values()):
            return True
        await asyncio.sleep(0.5)
    return False


async def _asked(handle: Any, deadline: float) -> str | None:
    """A deployment's rules version, or None when no answer comes by ``deadline`` (a call
    routed to a replica being replaced waited 400 s in CI, 2026-11-29: the wait must end)."""
    from ray.exceptions import RayError

    response = handle.rules_version.remote()
    try:
        return await asyncio.wait_for(response, timeout=max(0.5, min(5.0, deadline - time.monotonic())))
    except (TimeoutError, RayError):
        response.cancel()
        return None


# --------------------------------------------------------------------------- the admin API

MAX_RULES_BYTES = 1_000_000


class RulesFileIn(BaseModel):
    """``PUT /v1/admin/rules``: a whole rules file, as YAML text."""

    text: str = Field(min_length=1, max_length=MAX_RULES_BYTES)


async def deploy_request(gateway: Any, request: Any) -> dict[str, Any]:
    """The admin API's deploy: 422 with every problem (file, line, field) for an invalid file,
    else the stored deployment and whether the agents already decide with it."""
    from fastapi import HTTPException
    from pydantic import ValidationError

    from wow_ray.serving.access import bearer_key

    data = b""
    async for chunk in request.stream():
        data += chunk
        if len(data) > MAX_RULES_BYTES:
            raise HTTPException(413, f"a rules file over {MAX_RULES_BYTES} bytes")
    try:
        body = RulesFileIn.model_validate_json(data or b"{}")
    except ValidationError as exc:
        raise HTTPException(422, [{"field": ".".join(map(str, e["loc"])) or "body",
                                   "error": e["msg"]} for e in exc.errors()]) from None
    entry = gateway.gate.keys.find(bearer_key(request.headers))
    try:
        done = await deploy_rules(gateway, body.text, entry.name if entry else "loopback")
    except RulesRefused as exc:
        raise HTTPException(422, [i.model_dump() for i in exc.issues]) from None
    return {"scenario": gateway.pack.name, "version": done.deployment.version,
            "in_force": done.in_force,
            "deployment": done.deployment.model_dump(mode="json", exclude={"text"})}
