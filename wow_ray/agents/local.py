"""All agents of one scenario in this process: for tests, scripts and notebooks.

``local_master(pack, client)`` wires the specialists with plain method calls where the Serve
app wires them with handles; both build every agent with ``wiring.build_agent`` from one
``DialogueConfig``, so what works here works served::

    from wow_ray.agents.local import local_master, new_session
    from wow_ray.llm.client import AsyncOpenAIChatClient

    master = local_master(load_pack("food_delivery"), AsyncOpenAIChatClient("http://127.0.0.1:8000"))
    state = new_session("food_delivery", user_id="U0061", identity_verified=True)
    outcome = await master.turn(state, "My order O10158 was 40 minutes late")
    outcome.turn.reply, outcome.state
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

from wow_ray.agents.config import DialogueConfig
from wow_ray.agents.handoff import HandoffAgent
from wow_ray.agents.master import MasterAgent
from wow_ray.agents.messages import (
    AnswerRequest,
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
from wow_ray.agents.policy import PolicyAgent
from wow_ray.agents.response import ResponseAgent
from wow_ray.agents.solution import SolutionAgent
from wow_ray.agents.understanding import UnderstandingAgent
from wow_ray.agents.wiring import build_agent
from wow_ray.llm.chat import ChatClient
from wow_ray.scenario import DialogueState, ScenarioPack


def new_session(scenario: str, *, user_id: str | None = None, identity_verified: bool = False,
                evidence: list[str] | None = None, session_id: str | None = None,
                owner: str | None = None) -> SessionState:
    """A fresh session; identity and evidence are facts the caller vouches for (the gateway:
    a verified customer token). The id is 128 random bits: unguessable, but never enough on
    its own, since every use is checked against ``owner``."""
    return SessionState(
        session_id=session_id or secrets.token_hex(16), scenario=scenario, owner=owner or user_id,
        dialogue=DialogueState(user_id=user_id, identity_verified=identity_verified,
                               evidence=list(evidence or [])))


async def stream_reply(agent: ResponseAgent, req: RespondRequest) -> AsyncIterator[str | Reply]:
    """The reply's text pieces as the model writes them, then the final ``Reply``."""
    queue: asyncio.Queue[str] = asyncio.Queue()
    task = asyncio.ensure_future(agent.respond(req, on_piece=queue.put_nowait))
    try:
        while True:
            getter = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
            if getter in done:
                yield getter.result()
                continue
            getter.cancel()
            while not queue.empty():
                yield queue.get_nowait()
            yield task.result()
            return
    finally:
        if not task.done():
            task.cancel()


class LocalSpecialists:
    """The specialists as in-process objects (what the Serve app reaches through handles)."""

    def __init__(self, understanding: UnderstandingAgent, policy: PolicyAgent,
                 solution: SolutionAgent, response: ResponseAgent, handoff: HandoffAgent) -> None:
        self.understanding, self.policy, self.solution = understanding, policy, solution
        self.response, self.handoff_agent = response, handoff

    async def understand(self, req: UnderstandRequest) -> Understanding:
        return await self.understanding.understand(req)

    async def review(self, req: ReviewRequest) -> Review:
        return await self.policy.review(req)

    async def solve(self, req: SolveRequest) -> SolveResult:
        return await self.solution.solve(req)

    async def answer(self, req: AnswerRequest) -> list[str]:
        return self.solution.knowledge(req.question)

    async def respond(self, req: RespondRequest) -> Reply:
        return await self.response.respond(req)

    def respond_stream(self, req: RespondRequest) -> AsyncIterator[str | Reply]:
        return stream_reply(self.response, req)

    async def handoff(self, req: HandoffRequest) -> HandoffResult:
        return await self.handoff_agent.handoff(req)

    async def summarize(self, req: HandoffRequest) -> WrittenSummary:
        return await self.handoff_agent.summarize(req)


def local_master(pack: ScenarioPack, client: ChatClient | None,
                 config: DialogueConfig | None = None) -> MasterAgent:
    """The master with every specialist in this process, all calling ``client``.

    Built by ``wiring.build_agent``, as the Serve app's deployments build theirs; pass
    ``wow_ray.serving.adapters.resolve_adapters(config, registry, base_model)`` to use registered adapters.
    """
    config = config or DialogueConfig(scenario=pack.name)
    policy = build_agent("policy", pack, config, client)
    specialists = LocalSpecialists(
        build_agent("understanding", pack, config, client),
        policy,
        build_agent("solution", pack, config, client, executor=policy),
        build_agent("response", pack, config, client),
        build_agent("handoff", pack, config, client, executor=policy),
    )
    return build_agent("master", pack, config, client, specialists=specialists)
