"""The response agent: writes the reply in the brand's tone, grounded in what was done.

The model writes from a list of facts (sentences about tool results, the policy's reasons for
a refusal, knowledge-base passages) and values it must quote (amounts, ticket numbers). Its
text is checked sentence by sentence before anyone sees it (``reply_gate``):

- every value it must quote is there;
- every number and id in it appears in the facts, the values or the customer's message, so it
  cannot promise an amount nobody granted or cite an order nobody named;
- it does not leak the prompt, and a question is asked when one was needed.

Text that stands is released as it is written and never taken back. From the first sentence
that fails, the model's text is dropped and the reply is completed with the facts it had to
state (``complete``); when no sentence stood it is one built from the facts themselves
(``fallback``), which is what a weak model mostly gets. Only a reply kept whole counts as the
model's (``AgentStep.model_use``); fine-tuning the response adapter is what moves replies from
the template to the model.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any, get_args

from wow_ray.agents.base import Agent, InvalidOutput, ModelSettings, run_text
from wow_ray.agents.claims import Recital, claims_in, unsupported_claims
from wow_ray.agents.messages import Reply, RespondRequest
from wow_ray.agents.prompt_inputs import ask_label, response_input
from wow_ray.agents.prompts import ResponseInput, response_messages
from wow_ray.agents.reply_gate import ReplyGate
from wow_ray.agents.slots import id_shapes
from wow_ray.agents.transcript import AgentStep
from wow_ray.llm.chat import ChatClient
from wow_ray.scenario import ScenarioPack

DEFAULT_TONE = "Be warm, concise and professional; apologise when something went wrong."
MAX_REPLY_CHARS = 700
_NUMBER = re.compile(r"(?<![A-Za-z0-9.])[0-9]+(?:\.[0-9]+)?(?![0-9])")
# The prompt's own labels and placeholders ("(none yet)" for an empty conversation, "(none)"
# for no facts): a small model echoes them as its first line, and a customer must not read them.
_LEAKS = ("Facts:", "Task:", "Quote exactly", "Ask for:", "Conversation so far", "Customer:",
          "Agent:", "customer service agent, I", "As an AI", "the task", "(none")

OFFER_QUESTION = "Would you like me to do that?"
_ANYTHING_ELSE = re.compile(r"\b(?:anything|something) else\b", re.I)


def asks_about_offer(text: str) -> bool:
    """Whether ``text`` asks the customer about the offer: a question other than "anything
    else?" (a trained model closed an offer with that, and the customer took it as the end)."""
    return any(q.endswith("?") and not _ANYTHING_ELSE.search(q)
               for q in re.split(r"(?<=[.!?])\s+", text.strip()))

RESPONSE_AGENT = Agent(
    name="response",
    instructions="Write the reply in the brand's tone, grounded in tool results and policy.",
    prompt="response",
    settings=ModelSettings(max_tokens=64, retries=0, temperature=0.0),
)


class ResponseAgent:
    """Replies for one pack."""

    def __init__(self, pack: ScenarioPack, client: ChatClient | None,
                 agent: Agent = RESPONSE_AGENT, brand: str | None = None,
                 tone: str = DEFAULT_TONE) -> None:
        self.pack = pack
        self.client = client
        self.agent = agent
        self.brand = brand or pack.manifest.title
        self.tone = tone
        self.shapes = id_shapes(pack)
        self.recital = Recital(
            m["content"] for kind in get_args(RespondRequest.model_fields["kind"].annotation)
            for m in response_messages(ResponseInput(brand=self.brand, tone=self.tone,
                                                     kind=kind, message="")))

    def ask_label(self, slot: str) -> str:
        """How to ask for a slot: 'the order number (like O12345)'."""
        return ask_label(self.pack, slot)

    async def respond(self, req: RespondRequest, on_piece: Callable[[str], Any] | None = None) -> Reply:
        """The reply to ``req``. With ``on_piece`` its text is streamed as it stands: every
        piece passed on is part of the final reply, which is never taken back (``ReplyGate``)."""
        started = time.perf_counter()
        inp = response_input(self.pack, req, self.brand, self.tone)
        step = AgentStep(agent=self.agent.name, input=inp.model_dump())
        gate = ReplyGate(lambda t: self.check_prefix(t, req), on_piece)
        text = await run_text(self.client, self.agent, inp, step,
                              lambda t: self.validate(t, req), gate)
        if text is None and gate.shown:
            # The model's checked prefix was shown: keep it, add what only the whole lacked.
            gate.push(self.complete(gate.shown, req, inp))
            text, step.completed = gate.shown, True
        elif text is None:
            step.fallback = self.client is not None and self.agent.settings.use_model
            text = self.fallback(req, inp)
            gate.push(text)
        step.output = {"text": text}
        step.latency_s = round(time.perf_counter() - started, 6)
        return Reply(text=text, step=step)

    def validate(self, text: str, req: RespondRequest) -> str:
        """The reply, cleaned, or ``InvalidOutput`` saying what is wrong with it."""
        text = " ".join(text.strip().split())
        if not text:
            raise InvalidOutput("empty reply")
        self.check_prefix(text, req)
        missing = [v for v in req.must_say if v not in text]
        if missing:
            raise InvalidOutput(f"reply does not quote {', '.join(missing)}")
        if req.kind == "clarify" and "?" not in text:
            raise InvalidOutput("a clarifying reply must ask a question")
        if req.kind == "offer" and not asks_about_offer(text):
            raise InvalidOutput("an offer must ask whether the customer wants it")
        return text

    def check_prefix(self, text: str, req: RespondRequest) -> None:
        """The checks a beginning of the reply can fail: whatever a prefix says must already
        be true (grounded numbers and ids, backed claims, no leak or recital, not too long)."""
        if len(text) > MAX_REPLY_CHARS:
            raise InvalidOutput("reply too long")
        if any(leak.lower() in text.lower() for leak in _LEAKS):
            raise InvalidOutput("reply repeats the instructions")
        if req.kind in ("offer", "clarify") and _ANYTHING_ELSE.search(text):
            # The question is whether they want it, or what is missing; "anything else?" moves
            # them on (the full loop's candidate closed all 4 of its offers on the test split
            # with it, and asked for an invoice title with it on fd-152, in two runs).
            asked = "an offer asks about the offer" if req.kind == "offer" else \
                "a question asks for what is missing"
            raise InvalidOutput(f"{asked}, not whether there is anything else")
        recited = self.recital.recited(text)
        if recited:
            raise InvalidOutput(f"reply recites its instructions ('{recited}')")
        if req.done is not None:
            # A claim is backed by a write executed in this dialogue, or stated by the facts
            # themselves (a rule's reason: "this order was already refunded").
            backed = {*req.done, *claims_in(" ".join([*req.facts, *req.must_say]))}
            unsupported = unsupported_claims(text, backed)
            if unsupported:
                raise InvalidOutput(f"reply says a {' and a '.join(unsupported)} was done, "
                                    "but no write in this dialogue did it")
        # The ask labels are grounds too: they carry example ids ("like O12345") that a good
        # clarifying question repeats. (Data construction passes the labels themselves.)
        labels = [*req.ask_for, *(self.ask_label(s) for s in req.ask_for)]
        grounds = " ".join([*req.facts, *req.must_say, req.message, *req.allowed_values, *labels])
        supported = {float(n) for n in _NUMBER.findall(grounds)}
        for number in _NUMBER.findall(text):
            if float(number) not in supported:
                raise InvalidOutput(f"reply mentions {number}, which no fact supports")
        for shape in self.shapes.values():
            for ident in shape.find_all(text):
                if ident not in grounds.upper():
                    raise InvalidOutput(f"reply mentions {ident}, which no fact supports")

    def complete(self, shown: str, req: RespondRequest, inp: ResponseInput) -> str:
        """What to add after ``shown`` (text that stands) so the reply says all it must: the
        facts holding each value it failed to quote, and the question a clarification asks."""
        missing = [v for v in req.must_say if v not in shown]
        added: list[str] = []
        for value in missing:
            if any(value in a for a in added):
                continue
            fact = next((f for f in req.facts if value in f), None)
            added.append(fact or (value if len(value) > 40 else f"(Reference: {value}.)"))
        if req.kind == "clarify" and "?" not in shown:
            asks = " and ".join(inp.ask_for) or "a few more details"
            added.append(f"To help you with that, could you tell me {asks}?")
        if req.kind == "offer" and not asks_about_offer(shown):
            added.append(OFFER_QUESTION)
        return " ".join(added)

    def fallback(self, req: RespondRequest, inp: ResponseInput) -> str:
        """A reply made of the facts themselves: always grounded, never inventive."""
        facts = " ".join(dict.fromkeys([*req.facts, *(m for m in req.must_say if len(m) > 40)]))
        quoted = [v for v in req.must_say if v not in facts]
        extra = f" (reference: {', '.join(quoted)})" if quoted else ""
        if req.kind == "greet":
            return f"Hello, and welcome to {self.brand} customer service! How can I help you today?"
        if req.kind == "end":
            return f"Thank you for contacting {self.brand}. Have a nice day!"
        if req.kind == "clarify":
            asks = " and ".join(inp.ask_for) or "a few more details"
            lead = f"{facts} " if facts else ""
            return f"{lead}To help you with that, could you tell me {asks}?"
        if req.kind == "answer":
            if not req.facts:
                return (f"I'm here to help with your {self.brand} orders and account. "
                        "What can I do for you?")
            return f"Here is what I can tell you: {req.facts[0]}"
        if req.kind == "handoff":
            return f"{facts}{extra} A colleague will continue from here.".strip()
        sorry = "" if facts.lower().startswith(("i'm sorry", "sorry")) else "I'm sorry. "
        if req.kind == "deny":
            return f"{sorry}{facts}{extra} Is there anything else I can help with?".strip()
        if req.kind == "offer":
            return f"{sorry}{facts}{extra} {OFFER_QUESTION}".strip()
        return f"{facts}{extra} Is there anything else I can help with?".strip()
