"""The dialogue agents: a master that keeps control and specialists it calls as tools.

Independent of Ray: every agent runs in-process with any chat client (``wow_ray.llm.chat``),
and a Ray Serve deployment (``wow_ray/serving/dialogue_app.py``) is a thin wrapper around one,
built by the same factory (``wiring.build_agent``)::

    from wow_ray.agents import local_master, new_session
    from wow_ray.llm.client import AsyncOpenAIChatClient
    from wow_ray.scenario import load_pack

    master = local_master(load_pack("food_delivery"), AsyncOpenAIChatClient("http://127.0.0.1:8000"))
    outcome = await master.turn(new_session("food_delivery", user_id="U0214", identity_verified=True),
                                "My order O10337 arrived 20 minutes late")
    outcome.turn.reply, outcome.turn.steps, outcome.state

Contracts other stages build on: ``prompts`` (every prompt as a pure function, with its
output schema and training-target renderer), ``transcript`` (what a session leaves behind),
``sessions`` (where it is stored), ``audit`` (re-deciding a session's writes from trusted facts).
"""

from wow_ray.agents.audit import unauthorized_writes
from wow_ray.agents.base import Agent, AgentError, ModelSettings
from wow_ray.agents.config import AGENT_NAMES, DialogueConfig
from wow_ray.agents.local import local_master, new_session
from wow_ray.agents.master import MasterAgent, Specialists, TurnOutcome
from wow_ray.agents.messages import SessionState
from wow_ray.agents.prompts import PROMPT_VERSION, PROMPTS, PromptSpec
from wow_ray.agents.sessions import SessionStore
from wow_ray.agents.transcript import TRANSCRIPT_SCHEMA_VERSION, Transcript, TurnRecord

__all__ = [
    "AGENT_NAMES",
    "PROMPTS",
    "PROMPT_VERSION",
    "TRANSCRIPT_SCHEMA_VERSION",
    "Agent",
    "AgentError",
    "DialogueConfig",
    "MasterAgent",
    "ModelSettings",
    "PromptSpec",
    "SessionState",
    "SessionStore",
    "Specialists",
    "Transcript",
    "TurnOutcome",
    "TurnRecord",
    "local_master",
    "new_session",
    "unauthorized_writes",
]
