"""The serving agents' per-pack pieces that data construction asks, built once per pack.

Every prompt input of a training sample is filled by ``wow_ray.agents.prompt_inputs``, the
functions the agents call when they serve, and turned into messages by
``wow_ray.agents.prompts``. This class holds no agent logic of its own: it keeps the per-pack
objects those functions and the reply check need (the understanding agent's intent retriever,
the response agent with its brand, tone and reply validator), so that a dialogue builder or a
sample checker builds them once per pack.
"""

from __future__ import annotations

from wow_ray.agents.messages import RespondRequest
from wow_ray.agents.prompt_inputs import IntentOffer, intent_offer, pack_id_shapes
from wow_ray.agents.response import InvalidOutput, ResponseAgent
from wow_ray.agents.slots import IdShape
from wow_ray.agents.understanding import IntentRetriever
from wow_ray.scenario import ScenarioPack


class ServedAgents:
    """One pack's intent retriever and response agent (with the service's default config)."""

    def __init__(self, pack: ScenarioPack) -> None:
        self.pack = pack
        self.retriever = IntentRetriever(pack)
        self.responder = ResponseAgent(pack, None)
        self.shapes: dict[str, IdShape] = pack_id_shapes(pack)
        self.intents = [i.name for i in pack.intents]

    def offer(self, message: str, collecting: str | None = None) -> IntentOffer:
        """The intents the understanding agent offers its model for ``message``."""
        return intent_offer(self.retriever, self.intents, message, collecting)

    def reply_problem(self, text: str, kind: str, message: str, facts: list[str],
                      must_say: list[str], ask_for: list[str] | None = None) -> str | None:
        """Why the service's reply validator would reject ``text`` (None: it would accept it)."""
        # done=[]: a target may claim only what its facts say was done (the facts are the
        # executed writes' sentences), as the service's check allows.
        req = RespondRequest(session_id="data", kind=kind, message=message, facts=facts,
                             must_say=must_say, ask_for=list(ask_for or []), done=[])
        try:
            self.responder.validate(text, req)
        except InvalidOutput as exc:
            return str(exc)
        return None
