"""The dialogue service: every agent a Ray Serve deployment, one shared LLM, one gateway.

``serve run serve_apps/food_delivery.yaml`` calls :func:`build_dialogue_app` (through the thin
import path ``serve_apps.dialogue``). The graph::

    Gateway (FastAPI: sessions API, OpenAI facade)
      -> Master -> Understanding, Policy, Solution (-> Policy), Response, Handoff (-> Policy)
                   every LLM-backed agent -> the LLM deployment (ray.serve.llm, vLLM)

Each deployment is a thin wrapper around the Ray-free agent of the same name in
``wow_ray.agents``: it loads the scenario pack, builds the agent with ``wiring.build_agent``
(the factory ``local_master`` uses) from the embedded ``DialogueConfig`` with the adapters the
registry's aliases point at (``<scenario>-<agent>@production`` unless the config pins one), gives
it a Serve-handle chat client, and forwards calls. The aliases are re-read every couple of
seconds: a promotion reaches new calls without a restart, a call in flight finishes on the
version it started with, and a restarted or added replica resolves the same alias. Agents keep
no session state, so replicas scale and restart freely. Rules and policy arrive as every agent
deployment's ``user_config`` (:class:`ScenarioConfig`) and are swapped in without a restart.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from ray import serve
from ray.serve.handle import DeploymentHandle

from wow_ray.agents.events import TurnEvent
from wow_ray.agents.messages import (
    AnswerRequest,
    ExecuteRequest,
    ExecuteResult,
    HandoffRequest,
    HandoffResult,
    Reply,
    RespondRequest,
    Review,
    ReviewRequest,
    SessionState,
    SolveRequest,
    SolveResult,
    Understanding,
    UnderstandRequest,
    WrittenSummary,
)
from wow_ray.serving.dialogue_args import DialogueAppArgs, ScenarioConfig
from wow_ray.serving.session_logs import in_session, install_session_logging, session_context

logger = logging.getLogger("ray.serve")
LLM_SERVER_PREFIX = "RegistryLLMServer:"


class _AgentHost:
    """What every agent deployment shares: the pack, the model client, the user_config."""

    agent_name = ""

    def _setup(self, args_json: str, llm: DeploymentHandle | None, *, executor: Any = None,
               specialists: Any = None) -> None:
        """Build this deployment's agent with the factory ``local_master`` uses."""
        from wow_ray.agents.wiring import build_agent
        from wow_ray.scenario import load_pack

        self.args = DialogueAppArgs.model_validate_json(args_json)
        self.pack = load_pack(self.args.scenario)
        self._llm = llm
        self.applied = ScenarioConfig()
        self._adapters = None
        if self.agent_name == "policy":  # the gate calls no model
            self.config, self._model_client = self.args.dialogue, None
        else:
            self._adapters = self._resolver()
            self.config, self._model_client = self._adapters.current(), self._client()
        self._endpoints = {"executor": executor, "specialists": specialists}
        self.agent = build_agent(self.agent_name, self.pack, self.config, self._model_client,
                                 **self._endpoints)

    def _current(self) -> Any:
        """The agent a new call runs on: rebuilt when an adapter alias moved (re-read every
        couple of seconds). A call in flight holds the agent it started on, so it finishes on
        the adapter version it began with."""
        if self._adapters is not None:
            config = self._adapters.current()
            if config.models != self.config.models:
                from wow_ray.agents.wiring import build_agent

                self.agent = build_agent(self.agent_name, self.pack, config, self._model_client,
                                         **self._endpoints)
                self.config = config
        return self.agent

    def _client(self) -> Any:
        from wow_ray.llm.serve_handle import ServeHandleChatClient

        handle = self._llm
        if handle is None:  # the LLM lives in another app: look it up by name
            llm = self.args.llm
            name = llm.deployment or f"{LLM_SERVER_PREFIX}{self._base_model()}"
            handle = serve.get_deployment_handle(name, app_name=llm.app)
        return ServeHandleChatClient(handle, self._base_model())

    def _settings(self) -> Any:
        from wow_ray.config import load_settings

        return load_settings(self.args.llm.config_file, **self.args.llm.settings)

    def _base_model(self) -> str:
        return self._settings().model.split(":")[0]

    def _resolver(self) -> Any:
        """The dialogue config with the adapters its aliases point at as the agents' model ids."""
        from wow_ray.registry import Registry
        from wow_ray.serving.adapters import AdapterResolver

        registry = Registry(self._settings().storage_path)
        return AdapterResolver(self.args.dialogue, registry, self._base_model())

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        """Apply new rules and policy; invalid rules raise and the old ones stay in force."""
        config = ScenarioConfig.model_validate(user_config or {})
        # What the config leaves out is the pack's own file: a config without rules restores them.
        if config.rules is not None:
            self.pack.rules.load_data(config.rules, source="user_config.rules")
        else:
            self.pack.rules.load_file(Path(config.rules_file or self.pack.path / "rules.yaml").expanduser())
        policy = config.policy
        if policy is None:
            policy = Path(config.policy_file or self.pack.path / "policy.md").expanduser().read_text(
                encoding="utf-8")
        self._set_policy(policy)
        self.applied = config
        logger.info("%s: rules %s in force", self.agent_name, self.pack.rules.version)

    def _set_policy(self, text: str) -> None:
        self.pack.policy = text

    async def rules_version(self) -> str:
        return self.pack.rules.version

    async def rules_in_force(self) -> dict[str, Any]:
        """The rules this replica checks with: version, where they came from, and the rules."""
        rules = self.pack.rules.rules
        return {"version": self.pack.rules.version, "source": rules.source,
                "rules": rules.data.model_dump(mode="json", exclude_defaults=True),
                "user_config": self.applied.model_dump(exclude_defaults=True)}


@serve.deployment(name="Policy")
class PolicyDeployment(_AgentHost):
    agent_name = "policy"

    def __init__(self, args_json: str) -> None:
        self._setup(args_json, None)

    def _set_policy(self, text: str) -> None:
        self.agent.set_policy(text)

    async def execute(self, req: ExecuteRequest) -> ExecuteResult:
        return await self.agent.execute(req)

    async def review(self, req: ReviewRequest) -> Review:
        return await self.agent.review(req)


class _PolicyByHandle:
    """The solution and handoff agents' executor: the Policy deployment."""

    def __init__(self, handle: DeploymentHandle) -> None:
        self.handle = handle

    async def execute(self, req: ExecuteRequest) -> ExecuteResult:
        return await self.handle.execute.remote(req)


@serve.deployment(name="Understanding")
class UnderstandingDeployment(_AgentHost):
    agent_name = "understanding"

    def __init__(self, args_json: str, llm: DeploymentHandle | None) -> None:
        self._setup(args_json, llm)

    async def understand(self, req: UnderstandRequest) -> Understanding:
        return await self._current().understand(req)


@serve.deployment(name="Solution")
class SolutionDeployment(_AgentHost):
    agent_name = "solution"

    def __init__(self, args_json: str, policy: DeploymentHandle, llm: DeploymentHandle | None) -> None:
        self._setup(args_json, llm, executor=_PolicyByHandle(policy))

    async def solve(self, req: SolveRequest) -> SolveResult:
        return await self._current().solve(req)

    async def answer(self, req: AnswerRequest) -> list[str]:
        return self._current().knowledge(req.question)


@serve.deployment(name="Response")
class ResponseDeployment(_AgentHost):
    agent_name = "response"

    def __init__(self, args_json: str, llm: DeploymentHandle | None) -> None:
        self._setup(args_json, llm)

    async def respond(self, req: RespondRequest) -> Reply:
        return await self._current().respond(req)

    async def respond_stream(self, req: RespondRequest) -> AsyncIterator[str | Reply]:
        from wow_ray.agents.local import stream_reply

        async for piece in stream_reply(self._current(), req):
            yield piece


@serve.deployment(name="Handoff")
class HandoffDeployment(_AgentHost):
    agent_name = "handoff"

    def __init__(self, args_json: str, policy: DeploymentHandle, llm: DeploymentHandle | None) -> None:
        self._setup(args_json, llm, executor=_PolicyByHandle(policy))

    async def handoff(self, req: HandoffRequest) -> HandoffResult:
        return await self._current().handoff(req)

    async def summarize(self, req: HandoffRequest) -> WrittenSummary:
        return await self._current().summarize(req)


class _SpecialistHandles:
    """``wow_ray.agents.master.Specialists`` over Serve handles."""

    def __init__(self, understanding: DeploymentHandle, policy: DeploymentHandle,
                 solution: DeploymentHandle, response: DeploymentHandle,
                 handoff: DeploymentHandle) -> None:
        self.u, self.p, self.s, self.r, self.h = understanding, policy, solution, response, handoff
        self.r_stream = response.options(stream=True)

    async def understand(self, req: UnderstandRequest) -> Understanding:
        return await self.u.understand.remote(req)

    async def review(self, req: ReviewRequest) -> Review:
        return await self.p.review.remote(req)

    async def solve(self, req: SolveRequest) -> SolveResult:
        return await self.s.solve.remote(req)

    async def answer(self, req: AnswerRequest) -> list[str]:
        return await self.s.answer.remote(req)

    async def respond(self, req: RespondRequest) -> Reply:
        return await self.r.respond.remote(req)

    async def respond_stream(self, req: RespondRequest) -> AsyncIterator[str | Reply]:
        async for piece in self.r_stream.respond_stream.remote(req):
            yield piece

    async def handoff(self, req: HandoffRequest) -> HandoffResult:
        return await self.h.handoff.remote(req)

    async def summarize(self, req: HandoffRequest) -> WrittenSummary:
        return await self.h.summarize.remote(req)


@serve.deployment(name="Master")
class MasterDeployment(_AgentHost):
    agent_name = "master"

    def __init__(self, args_json: str, understanding: DeploymentHandle, policy: DeploymentHandle,
                 solution: DeploymentHandle, response: DeploymentHandle,
                 handoff: DeploymentHandle, llm: DeploymentHandle | None) -> None:
        self._setup(args_json, llm, specialists=_SpecialistHandles(
            understanding, policy, solution, response, handoff))
        install_session_logging()

    async def turn(self, state: SessionState, message: str, attachments: list[str]) -> Any:
        with session_context(state.session_id):
            return await self._current().turn(state, message, attachments)

    async def events(self, state: SessionState, message: str,
                     attachments: list[str]) -> AsyncIterator[TurnEvent]:
        async for event in in_session(state.session_id, self._current().events(
                state, message, attachments, stream=True)):
            yield event


def build_dialogue_app(args: dict[str, Any] | None = None) -> serve.Application:
    """Serve builder for one scenario's dialogue service (YAML ``import_path`` target)."""
    from wow_ray.scenario import load_pack
    from wow_ray.serving.gateway import Gateway

    parsed = DialogueAppArgs.model_validate(args or {})
    load_pack(parsed.scenario)  # a broken pack fails here, with every problem listed
    args_json = parsed.to_json()
    user_config = parsed.scenario_config.model_dump(exclude_defaults=True)

    def opts(agent: str) -> dict[str, Any]:
        return {**parsed.serving(agent).deployment_options(), "user_config": user_config}

    llm = None if parsed.llm.app else _llm_deployment(parsed)
    policy = PolicyDeployment.options(**opts("policy")).bind(args_json)
    understanding = UnderstandingDeployment.options(**opts("understanding")).bind(args_json, llm)
    solution = SolutionDeployment.options(**opts("solution")).bind(args_json, policy, llm)
    response = ResponseDeployment.options(**opts("response")).bind(args_json, llm)
    handoff = HandoffDeployment.options(**opts("handoff")).bind(args_json, policy, llm)
    master = MasterDeployment.options(**opts("master")).bind(
        args_json, understanding, policy, solution, response, handoff, llm)
    gateway = parsed.gateway
    return Gateway.options(
        ray_actor_options={"num_cpus": gateway.num_cpus},
        autoscaling_config=gateway.autoscaling_config(),
    ).bind(args_json, master)


def _llm_deployment(parsed: DialogueAppArgs) -> Any:
    """The foundation's LLM deployment (vLLM, registry adapters), built inside this app."""
    from ray.serve.llm import build_llm_deployment

    from wow_ray.config import load_settings
    from wow_ray.serving.llm_app import build_llm_serving_args

    settings = load_settings(parsed.llm.config_file, **parsed.llm.settings)
    llm_config = build_llm_serving_args(settings).llm_configs[0]
    return build_llm_deployment(llm_config)
