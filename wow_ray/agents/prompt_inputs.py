"""What each LLM-backed agent puts into its prompt, filled in one place.

``wow_ray.agents.prompts`` turns an input model into chat messages; this module fills the
input models from what an agent knows at that point of a dialogue: the intents offered to
the understanding agent, the master's state line and legal moves, the solution planner's tool
offer and observations, the reply's facts, knowledge snippets, ask labels and history window,
and the hand-over note's history window. The agents call these functions when they serve, and
data construction (``wow_ray.data.dialogues``) calls the same functions when it renders a
training sample, so a sample's prompt is the prompt the served agent sends at the same point
of the same dialogue. Change a window or a truncation here and both sides change together.

Pure functions of the pack and their arguments; per-pack work (intent options, id shapes,
tool schemas) is cached by pack object (packs compare by identity; their intents, tools and
fixtures never change after loading, only their rules hot-reload).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from wow_ray.agents.fact_sentences import offer_phrase, tool_sentence
from wow_ray.agents.messages import ActiveRequest, RespondRequest
from wow_ray.agents.prompts import (
    MASTER_MOVES,
    HandoffInput,
    IntentOption,
    Line,
    MasterInput,
    MoveOption,
    Observation,
    ReplyKind,
    ResponseInput,
    SolutionInput,
    UnderstandingInput,
    intent_options,
)
from wow_ray.agents.slots import IdShape, id_shapes
from wow_ray.scenario import ScenarioPack, ToolCall

if TYPE_CHECKING:
    from wow_ray.agents.understanding import IntentRetriever

UNDERSTANDING_HISTORY = 6  # lines of conversation the understanding agent reads
RESPONSE_HISTORY = 4  # lines the reply writer reads (before the customer's latest message)
HANDOFF_HISTORY = 6  # lines the hand-over note reads (the latest message included)
SOLUTION_OBSERVATIONS = 4  # latest tool results the model planner sees
OBSERVATION_CHARS = 600  # a tool result is cut to this many characters of JSON
KNOWLEDGE_RESULTS = 2  # knowledge-base passages per question
KNOWLEDGE_CHARS = 280  # characters of a passage's body
STRONG_SCORE = 4.0  # a BM25 score this high names the intent clearly (see tests)


def shown_slots(pack: ScenarioPack, intent: str | None, slots: dict[str, Any]) -> dict[str, Any]:
    """The slots in the intent's declared order (then any others), so a prompt shows the same
    slots the same way however the dialogue collected them."""
    spec = next((i for i in pack.intents if i.name == intent), None)
    order = [s.name for s in spec.slots] if spec else []
    return {**{k: slots[k] for k in order if k in slots}, **slots}


def _unique(items: Sequence[str]) -> list[str]:
    return [x for x in dict.fromkeys(items) if x]


@functools.lru_cache(maxsize=16)
def pack_id_shapes(pack: ScenarioPack) -> dict[str, IdShape]:
    """``id_shapes(pack)``, computed once per pack (it scans every fixture row)."""
    return id_shapes(pack)


# --------------------------------------------------------------------------- understanding


@dataclass(frozen=True)
class IntentOffer:
    """What the lexical retriever says about a message, and the intents the model may choose.

    Strong lexical evidence narrows the options to the close candidates and takes ``none``
    away, and to the first one raised where the message raises several; weak evidence offers
    the candidates (or every intent) and ``none``. The intent being collected (a question is
    open) is always offered.
    """

    ranked: list[tuple[str, float]]
    candidates: list[str]
    options: list[str]
    strong: bool

    @property
    def offer_none(self) -> bool:
        return not self.strong

    @property
    def strong_intent(self) -> str | None:
        """The intent the retriever names with confidence, if any."""
        return self.ranked[0][0] if self.strong else None


def intent_offer(retriever: IntentRetriever, intents: Sequence[str], message: str,
                 collecting: str | None = None) -> IntentOffer:
    """The intents offered to the understanding agent's model for ``message``."""
    ranked = retriever.rank(message)
    strong = bool(ranked) and ranked[0][1] >= STRONG_SCORE
    candidates = retriever.candidates(message)
    offered = candidates if strong else (candidates or list(intents))
    raised = retriever.raised(candidates, message) if strong else []
    if len(raised) > 1:
        # Two requests, each named strongly in its own clause: the one raised first is served
        # first (the customer raises the other again, as a person would); the model reads its
        # slots. The full loop's candidate chose the second one and left the first unserved on
        # fd-146 (dev), fd-142, fd-147 and fd-152 (test; 2026-11-29 14:21 run).
        offered = raised[:1]
    options = list(dict.fromkeys([*offered, *([collecting] if collecting else [])]))
    return IntentOffer(ranked=ranked, candidates=candidates, options=options, strong=strong)


@functools.lru_cache(maxsize=256)
def _intent_options(pack: ScenarioPack, names: tuple[str, ...]) -> tuple[IntentOption, ...]:
    return tuple(intent_options(pack, list(names)))


def understanding_input(pack: ScenarioPack, options: Sequence[str], history: Sequence[Line],
                        message: str, *, expecting: Sequence[str] = (),
                        offer_none: bool = True) -> UnderstandingInput:
    """The understanding agent's prompt input: the offered intents and the latest lines."""
    return UnderstandingInput(
        scenario_title=pack.manifest.title, candidates=list(_intent_options(pack, tuple(options))),
        history=list(history)[-UNDERSTANDING_HISTORY:], message=message,
        expecting=list(expecting), offer_none=offer_none)


# --------------------------------------------------------------------------- master


def legal_moves(active: ActiveRequest | None, intent: str | None, *, goodbye: bool = False,
                hand_over: bool = False, new_evidence: bool = False, human: bool = False,
                resolvable: bool = False, answered_offer: bool = False) -> list[str]:
    """The master's moves open now; the first is the default.

    ``intent`` is what the understanding agent read in the latest message; ``hand_over``:
    the rules demand a human now; ``human``: the request is one only a human serves;
    ``resolvable``: the solution agent may find the missing ids in the customer's records;
    ``answered_offer``: the customer said yes or no to our offer (even "no, thanks, bye").
    """
    if hand_over:
        return ["handoff"]
    if answered_offer:
        return ["solve"]
    pending = active is not None and not active.resolved
    if goodbye and not (pending and intent):
        return ["end", "answer"]
    if intent is None:
        if pending and active.missing:
            return ["clarify", "answer"]
        if pending and new_evidence:  # a refused request the new evidence may unlock
            return ["solve"]
        return ["answer", "end"]
    if human:
        return ["solve"]
    if active is not None and active.missing and not resolvable:
        return ["clarify"]
    return ["solve"]


def master_state(pack: ScenarioPack, active: ActiveRequest | None) -> str:
    """The master's one-line summary of the request in progress."""
    if active is None:
        return "no request yet"
    return (f"request {active.intent}, slots {shown_slots(pack, active.intent, active.slots)}, "
            f"{'resolved' if active.resolved else 'in progress'}")


def master_input(pack: ScenarioPack, message: str, moves: Sequence[str],
                 active: ActiveRequest | None) -> MasterInput:
    """The master's prompt input: the state line and the legal moves."""
    return MasterInput(scenario_title=pack.manifest.title, message=message,
                       state=master_state(pack, active),
                       moves=[MoveOption(name=m, description=MASTER_MOVES[m]) for m in moves])


# --------------------------------------------------------------------------- solution


def planner_tools(pack: ScenarioPack, intent: str,
                  scope: Literal["intent", "all"] = "intent") -> list[str]:
    """Tools the model planner may propose, in the pack's order: those the intent's playbook
    uses plus every read (least privilege); ``scope="all"`` offers every tool and leaves it
    all to the gate."""
    if scope == "all":
        return list(pack.tools.names)
    names = {t.spec.name for t in pack.tools if t.spec.kind == "read"}
    playbook = pack.playbooks.playbooks.get(intent)
    names |= {c.call for c in playbook.calls()} if playbook else set()
    return [n for n in pack.tools.names if n in names]


@functools.lru_cache(maxsize=16)
def _tool_schemas(pack: ScenarioPack) -> dict[str, dict[str, Any]]:
    return {t["function"]["name"]: t for t in pack.tools.openai_schemas()}


def observation(tool: str, arguments: dict[str, Any], ok: bool, result: Any,
                error: str | None) -> Observation:
    """A tool result as the planner sees it: its JSON (or the error), truncated."""
    shown = result if ok else {"error": error}
    return Observation(tool=tool, arguments=arguments,
                       result=json.dumps(shown, ensure_ascii=False, default=str)[:OBSERVATION_CHARS])


def solution_input(pack: ScenarioPack, user_id: str | None, intent: str, slots: dict[str, Any],
                   tools: Sequence[str], observations: Sequence[Observation]) -> SolutionInput:
    """The model planner's prompt input: the offered tools and the latest observations.

    The policy text is left empty: the rule gate enforces the policy on every proposal.
    """
    schemas = _tool_schemas(pack)
    return SolutionInput(
        scenario_title=pack.manifest.title, user_id=user_id, intent=intent,
        slots=shown_slots(pack, intent, slots), policy="", tools=[schemas[n] for n in tools],
        observations=list(observations)[-SOLUTION_OBSERVATIONS:])


def tool_fact(pack: ScenarioPack, tool: str, arguments: dict[str, Any], result: Any) -> str:
    """The sentence the reply writer is told about a successful call."""
    return tool_sentence(pack.name, pack.manifest.currency, tool, result, arguments)


def offer_fact(pack: ScenarioPack, call: ToolCall) -> str:
    """The sentence the reply writer is told about an offer (nothing done yet)."""
    return ("What I can do instead is "
            f"{offer_phrase(pack.name, pack.manifest.currency, call.name, call.arguments)}.")


def knowledge(pack: ScenarioPack, query: str, k: int = KNOWLEDGE_RESULTS) -> list[str]:
    """The best knowledge-base passages for ``query`` (title and opening, short)."""
    return [f"{a.title}: {' '.join(a.body.split())[:KNOWLEDGE_CHARS]}"
            for a, _ in pack.kb.search(query, k=k)]


# --------------------------------------------------------------------------- response


@functools.lru_cache(maxsize=16)
def _slot_specs(pack: ScenarioPack) -> dict[str, Any]:
    return {s.name: s for i in pack.intents for s in i.slots}


def ask_label(pack: ScenarioPack, slot: str) -> str:
    """How to ask for a slot: 'the order number (like O12345)'."""
    spec = _slot_specs(pack).get(slot)
    base = slot.removesuffix("_id").replace("_", " ")
    label = f"the {base} number" if slot.endswith("_id") else f"the {base}"
    if spec is not None and spec.description and not slot.endswith("_id"):
        label = spec.description.rstrip(".").lower()
    shape = pack_id_shapes(pack).get(slot)
    if shape is not None:
        label += f" (like {shape.prefix}{'1234567890'[:shape.max_digits]})"
    if spec is not None and spec.enum:
        label += f" ({', '.join(v.replace('_', ' ') for v in spec.enum)})"
    return label


def solved_reply(facts: Sequence[str], must_say: Sequence[str], refusals: Sequence[str],
                 wrote: bool, offered: bool = False) -> tuple[ReplyKind, list[str], list[str]]:
    """The reply after a solve: its kind, the facts it may rely on, the values it must quote.

    A refusal with nothing written is a denial (an offer, when something else was offered);
    refusals are told in the policy's own words, so the reply must quote them.
    """
    kind: ReplyKind = "offer" if offered else "deny" if refusals and not wrote else "resolve"
    told = [*refusals, *facts] if offered else [*facts, *refusals]  # the offer after the no
    return kind, _unique(told), _unique([*must_say, *refusals])


def handed_over_reply(facts: Sequence[str], must_say: Sequence[str], refused: Sequence[str],
                      customer_reason: str, ticket_id: str) -> tuple[list[str], list[str]]:
    """The facts and the values to quote of the reply that announces a hand-over."""
    told = _unique([*facts, customer_reason, f"Your ticket number is {ticket_id}."])
    return told, _unique([*must_say, *refused, ticket_id])


def response_input(pack: ScenarioPack, req: RespondRequest, brand: str, tone: str) -> ResponseInput:
    """The reply writer's prompt input: the request's facts, ask labels and latest lines."""
    return ResponseInput(brand=brand, tone=tone, kind=req.kind, message=req.message,
                         history=req.history[-RESPONSE_HISTORY:], facts=req.facts,
                         must_say=req.must_say, ask_for=[ask_label(pack, s) for s in req.ask_for])


# --------------------------------------------------------------------------- handoff


def handoff_input(pack: ScenarioPack, *, user_id: str | None, identity_verified: bool,
                  reason: str, intent: str | None, slots: dict[str, Any], done: Sequence[str],
                  refused: Sequence[str], history: Sequence[Line]) -> HandoffInput:
    """The hand-over note's prompt input: what was done and refused, and the latest lines."""
    return HandoffInput(
        scenario_title=pack.manifest.title, user_id=user_id, identity_verified=identity_verified,
        reason=reason, intent=intent, slots=shown_slots(pack, intent, slots), done=list(done), refused=list(refused),
        history=list(history)[-HANDOFF_HISTORY:])
