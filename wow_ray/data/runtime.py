"""What the agents put into their prompts at run time, computed the same way for training.

``wow_ray.agents.prompts`` fixes the prompt *format*; this module fills the prompt *inputs* the
way the running agents do (which intents the understanding agent offers, which tools the
solution agent lists, how a tool result becomes an observation or a fact, how a slot is asked
for), so a fine-tuned adapter sees at training time the inputs it will see in service. It is
the one place data construction leans on agent code beyond the prompt and transcript
contracts: the intent retriever, the fact sentences, and the response agent's own reply
validator (a reply the service would reject is never a training target). When the agents
change how they fill an input, this file changes with them.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from wow_ray.agents.prompts import (
    MASTER_MOVES,
    IntentOption,
    Line,
    MasterInput,
    MoveOption,
    Observation,
    UnderstandingInput,
    intent_options,
)
from wow_ray.agents.response import InvalidOutput, ResponseAgent
from wow_ray.agents.slots import IdShape, id_shapes
from wow_ray.agents.state import RespondRequest
from wow_ray.agents.templates import tool_sentence
from wow_ray.agents.understanding import STRONG_SCORE, IntentRetriever
from wow_ray.scenario import ScenarioPack
from wow_ray.scenario.spec import CallStep, ChooseStep

# History windows and truncation the agents apply (understanding.py, response.py,
# handoff.py, solution.py).
UNDERSTANDING_HISTORY = 6
RESPONSE_HISTORY = 4
HANDOFF_HISTORY = 6
SOLUTION_OBSERVATIONS = 4
OBSERVATION_CHARS = 600
KNOWLEDGE_RESULTS = 2


class Runtime:
    """Prompt inputs for one pack, filled in as the service fills them."""

    def __init__(self, pack: ScenarioPack) -> None:
        self.pack = pack
        self.title = pack.manifest.title
        self.retriever = IntentRetriever(pack)
        self.shapes: dict[str, IdShape] = id_shapes(pack)
        self.responder = ResponseAgent(pack, None)
        self.brand, self.tone = self.responder.brand, self.responder.tone
        self._schemas = {t["function"]["name"]: t for t in pack.tools.openai_schemas()}
        self.handoff_tool = next((t.spec.name for t in pack.tools if t.spec.ends_dialogue), None)

    # -- understanding --------------------------------------------------------------------

    def understanding_input(self, message: str, history: list[Line], intent: str | None,
                            collecting: str | None = None,
                            expecting: list[str] | None = None) -> UnderstandingInput:
        """The intents the agent would offer for ``message``, plus the true one if missing.

        As in the service: strong lexical evidence narrows the options and takes ``none``
        away; weak evidence offers the candidates (or every intent) and ``none``.
        """
        ranked = self.retriever.rank(message)
        strong = bool(ranked) and ranked[0][1] >= STRONG_SCORE
        candidates = self.retriever.candidates(message)
        names = candidates if strong else (candidates or [i.name for i in self.pack.intents])
        names = list(dict.fromkeys([*names, *([collecting] if collecting else [])]))
        if intent is not None and intent not in names:
            names.append(intent)  # what a better retriever would offer; never a wrong target
        return UnderstandingInput(
            scenario_title=self.title, candidates=self.intent_options(tuple(names)),
            history=history[-UNDERSTANDING_HISTORY:], message=message,
            expecting=list(expecting or []), offer_none=not strong or intent is None)

    @functools.lru_cache(maxsize=256)  # noqa: B019 - one Runtime per pack, kept for its life
    def intent_options(self, names: tuple[str, ...]) -> list[IntentOption]:
        return intent_options(self.pack, list(names))

    def strong_intent(self, message: str) -> str | None:
        """The intent the lexical retriever names with confidence, if any."""
        ranked = self.retriever.rank(message)
        return ranked[0][0] if ranked and ranked[0][1] >= STRONG_SCORE else None

    # -- master ---------------------------------------------------------------------------

    def master_input(self, message: str, moves: list[str], intent: str | None,
                     slots: dict[str, Any], resolved: bool) -> MasterInput:
        """The master's one-line state summary and the legal moves (master.py ``_decide``)."""
        state = (f"request {intent}, slots {slots}, {'resolved' if resolved else 'in progress'}"
                 if intent else "no request yet")
        return MasterInput(scenario_title=self.title, message=message, state=state,
                           moves=[MoveOption(name=m, description=MASTER_MOVES[m]) for m in moves])

    # -- solution -------------------------------------------------------------------------

    @functools.lru_cache(maxsize=64)  # noqa: B019
    def solution_tools(self, intent: str) -> tuple[str, ...]:
        """Tools offered to the model planner: the intent's playbook tools plus every read."""
        names = {t.spec.name for t in self.pack.tools if t.spec.kind == "read"}
        playbook = self.pack.playbooks.playbooks.get(intent)
        for step in playbook.steps if playbook else []:
            options = step.choose + step.otherwise if isinstance(step, ChooseStep) else [step]
            names |= {o.call for o in options if isinstance(o, CallStep)}
        return tuple(n for n in self.pack.tools.names if n in names)

    def tool_schemas(self, names: tuple[str, ...]) -> list[dict[str, Any]]:
        return [self._schemas[n] for n in names]

    @staticmethod
    def observation(name: str, arguments: dict[str, Any], ok: bool, content: Any,
                    error: str | None) -> Observation:
        shown = content if ok else {"error": error}
        return Observation(tool=name, arguments=arguments,
                           result=json.dumps(shown, ensure_ascii=False, default=str)[:OBSERVATION_CHARS])

    # -- response -------------------------------------------------------------------------

    def fact(self, name: str, arguments: dict[str, Any], result: Any) -> str:
        """The sentence the service tells the response agent about a successful call."""
        return tool_sentence(self.pack.name, self.pack.manifest.currency, name, result, arguments)

    def knowledge(self, query: str) -> list[str]:
        return [f"{a.title}: {' '.join(a.body.split())[:280]}"
                for a, _ in self.pack.kb.search(query, k=KNOWLEDGE_RESULTS)]

    def ask_labels(self, slots: list[str]) -> list[str]:
        return [self.responder.ask_label(s) for s in slots]

    def reply_problem(self, text: str, kind: str, message: str, facts: list[str],
                      must_say: list[str], ask_for: list[str] | None = None) -> str | None:
        """Why the service's reply validator would reject ``text`` (None: it would accept it)."""
        req = RespondRequest(session_id="data", kind=kind, message=message, facts=facts,
                             must_say=must_say, ask_for=list(ask_for or []))
        try:
            self.responder.validate(text, req)
        except InvalidOutput as exc:
            return str(exc)
        return None
