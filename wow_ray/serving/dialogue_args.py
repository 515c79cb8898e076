"""The arguments of the dialogue app (``build_dialogue_app``), validated once with pydantic.

Everything a YAML ``args:`` block may say, with a description per field, and the
``user_config`` every agent deployment accepts for rules and policy that change at run time.
What the agents do is the embedded :class:`DialogueConfig` (``dialogue:``), whole: the same
model ``local_master`` takes, so every option that works in-process works served. The rest is
how the app is deployed: resources, the LLM, the gateway, the session database.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from wow_ray.agents.config import AGENT_NAMES, DialogueConfig
from wow_ray.agents.sessions import DEFAULT_DATABASE_URL
from wow_ray.serving.access import ApiKey, Gatekeeper, KeyRing
from wow_ray.serving.credentials import DEFAULT_KEYS_FILE, DEFAULT_SECRET_FILE, read_secrets


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReplicaScaling(_Args):
    """How Serve's autoscaler sizes one deployment (its ``autoscaling_config``). The delays'
    defaults are Serve's own (Ray 2.60's ``AutoscalingConfig``): replicas are added after 30 s
    of load and removed only after 10 minutes below target; shorten ``downscale_delay_s`` to
    give the CPUs back sooner after a burst."""

    min_replicas: int = Field(1, ge=1, description="Autoscaling floor.")
    max_replicas: int = Field(2, ge=1, description="Autoscaling ceiling.")
    upscale_delay_s: float = Field(
        30.0, ge=0, description="Seconds the load must stay above target before Serve adds a "
        "replica (Serve's default, 30).")
    downscale_delay_s: float = Field(
        600.0, ge=0, description="Seconds the load must stay below target before Serve removes "
        "a replica (Serve's default, 600): how long replicas added for a burst outlive it.")

    @model_validator(mode="after")
    def _replicas(self) -> ReplicaScaling:
        if self.max_replicas < self.min_replicas:
            raise ValueError("max_replicas must be >= min_replicas")
        return self

    def autoscaling_config(self) -> dict[str, Any]:
        return {"min_replicas": self.min_replicas, "max_replicas": self.max_replicas,
                "upscale_delay_s": self.upscale_delay_s,
                "downscale_delay_s": self.downscale_delay_s}


class AgentServing(ReplicaScaling):
    """One agent's deployment: resources and autoscaling (its model: ``dialogue.models``)."""

    num_cpus: float = Field(0.1, gt=0, le=64, description="Logical CPUs per replica. Agents "
                            "mostly wait on the LLM; a tenth of a CPU lets them fit beside it.")
    target_ongoing_requests: float = Field(
        8, gt=0, description="Requests per replica the autoscaler aims for (agents await the "
        "LLM, so a replica can hold many at once).")
    max_ongoing_requests: int = Field(64, ge=1, description="Requests one replica accepts.")

    def deployment_options(self) -> dict[str, Any]:
        return {
            "ray_actor_options": {"num_cpus": self.num_cpus},
            "max_ongoing_requests": self.max_ongoing_requests,
            "autoscaling_config": {**self.autoscaling_config(),
                                   "target_ongoing_requests": self.target_ongoing_requests},
        }


class AuthOptions(_Args):
    """Who may call the gateway (wow_ray/serving/access.py): scoped API keys, customer tokens."""

    api_keys: list[ApiKey] = Field(default_factory=list, description="Accepted keys as "
                                   "{name, scope, sha256}: configs hold digests, never keys.")
    api_keys_file: str | None = Field(
        DEFAULT_KEYS_FILE, description="YAML file of hashed keys (`wow-ray auth new-key`), "
        "re-read when it changes: keys rotate without a restart. Must be readable where the "
        "gateway's replicas run (a shared path on a cluster). null: none.")
    api_keys_env: str | None = Field(
        "WOW_RAY_API_KEYS", description="Environment variable of 'scope:key,scope:key' (plain "
        "keys, hashed when read) on the gateway's replicas.")
    customer_token_secret_env: str | None = Field(
        "WOW_RAY_CUSTOMER_TOKEN_SECRET", description="Environment variable holding the secret "
        "(or comma-separated secrets, during a rotation) the business's app signs customer "
        "tokens with.")
    customer_token_secret_file: str | None = Field(
        DEFAULT_SECRET_FILE, description="File holding that secret (one per line), for one "
        "machine; `wow-ray auth customer-token` creates it on first use.")
    allow_anonymous: bool = Field(
        False, description="Sessions without a customer token: the gateway mints an anonymous "
        "token that owns the session; the agents then have no account to act on, so no write "
        "can pass the rules' identity checks.")
    trust_loopback: bool = Field(
        False, description="Development only: requests from this machine need no API key. A "
        "reverse proxy on the same host makes every caller loopback; never in production. "
        "Customer identity still comes from a token.")

    def gatekeeper(self) -> Gatekeeper:
        """The gate these options describe (read on the gateway's replica: files, environment)."""
        return Gatekeeper(
            KeyRing(self.api_keys, self.api_keys_file, self.api_keys_env),
            read_secrets(self.customer_token_secret_file, self.customer_token_secret_env),
            allow_anonymous=self.allow_anonymous, trust_loopback=self.trust_loopback)


class LimitOptions(_Args):
    max_request_bytes: int = Field(16_384, ge=256, description="Largest request body accepted.")
    max_message_chars: int = Field(2_000, ge=1, le=100_000, description="Longest message.")
    turns_per_window: int = Field(30, ge=1, description="Turns one session may take per window.")
    window_s: float = Field(60.0, gt=0, description="The rate limit's window, seconds.")


class GatewayServing(ReplicaScaling):
    num_cpus: float = Field(0.1, gt=0)
    auth: AuthOptions = Field(default_factory=AuthOptions)
    limits: LimitOptions = Field(default_factory=LimitOptions)
    turn_retry_s: float = Field(
        120.0, ge=0, description="How long a turn is retried while a replica it needs is dead "
        "or restarting; safe, since nothing of an unsaved turn persists.")


class LLMServing(_Args):
    app: str | None = Field(
        None, description="Name of a running Serve app whose LLM deployment the agents share "
        "(e.g. 'llm' from serve_apps/llm.yaml). None: this app serves its own.")
    deployment: str | None = Field(
        None, description="That deployment's name; default 'RegistryLLMServer:<model>'.")
    settings: dict[str, Any] = Field(
        default_factory=dict, description="WOW-Ray settings for the model and engine "
        "(wow_ray/config.py: storage_path, model, engine, serve), over WOW_RAY_* variables.")
    config_file: str | None = Field(None, description="A WOW-Ray settings YAML file.")


class ScenarioConfig(_Args):
    """The ``user_config`` of every agent deployment: rules and policy, swapped in at run time.

    Change it and ``serve deploy`` again: replicas reload in place, no restart. ``rules`` (the
    rules.yaml mapping inline, which works on any cluster) wins over ``rules_file`` (a path
    every node can read); likewise ``policy`` over ``policy_file``. Bump ``revision`` to
    re-read an edited file whose path did not change.
    """

    rules: dict[str, Any] | None = None
    rules_file: str | None = None
    policy: str | None = None
    policy_file: str | None = None
    revision: int = 0


class DialogueAppArgs(_Args):
    """Arguments of ``build_dialogue_app`` (YAML ``args:``)."""

    dialogue: DialogueConfig = Field(
        default_factory=DialogueConfig, description="The agents: scenario, planner, brand, "
        "tone, models and adapters per agent... (wow_ray/agents/config.py), as in-process.")
    database_url: str = Field(DEFAULT_DATABASE_URL, description="Sessions and transcripts: "
                              "sqlite:///path (default) or any SQLAlchemy URL (PostgreSQL...).")
    llm: LLMServing = Field(default_factory=LLMServing)
    agents: dict[str, AgentServing] = Field(default_factory=dict,
                                            description="Per agent deployment: "
                                            + ", ".join(AGENT_NAMES))
    gateway: GatewayServing = Field(default_factory=GatewayServing)
    scenario_config: ScenarioConfig = Field(default_factory=ScenarioConfig,
                                            description="Initial user_config of the agents.")

    @field_validator("agents")
    @classmethod
    def _known_agents(cls, value: dict[str, AgentServing]) -> dict[str, AgentServing]:
        unknown = sorted(set(value) - set(AGENT_NAMES))
        if unknown:
            raise ValueError(f"unknown agents {unknown}; expected some of {list(AGENT_NAMES)}")
        return value

    def serving(self, agent: str) -> AgentServing:
        return self.agents.get(agent) or AgentServing()

    @property
    def scenario(self) -> str:
        """The scenario the app serves (``dialogue.scenario``)."""
        return self.dialogue.scenario

    def to_json(self) -> str:
        """What each deployment is bound with. Only the fields that were set: a model setting
        left out must stay unset on the other side, where the agent's own default applies
        (dumping the defaults too would set every ModelSettings field over the agent's)."""
        return self.model_dump_json(exclude_unset=True)
