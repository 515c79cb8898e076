"""Simulated customers: a task's ``user_scenario`` played against the dialogue service.

Two players of the same instructions, both bounded in turns, both ending as tau2-bench's user
simulator does, with a signal instead of a message:

- :class:`ScriptedCustomer` is deterministic and reads only the task: it opens with the reason
  for the call (and any text the instructions tell it to paste), answers a question with the
  value the instructions give it or says it does not know, sends evidence it has when asked,
  takes an offered alternative unless told to accept nothing else, pushes back as often as the
  instructions say, and stops when every request was dealt with;
- :class:`ModelCustomer` lets a chat model write the turns from the same instructions (the
  served LLM, so a weak model plays a weak customer); its end tokens become the same signals.

Both send evidence the same way: an item the situation holds goes as an attachment when the
agent's reply names it. A customer never sees the service's trace, only its replies.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal, Protocol

from wow_ray.agents.claims import claims_in
from wow_ray.llm.chat import ChatClient
from wow_ray.scenario import ScenarioPack, Task
from wow_ray.scenario.tasks import IntentRequest

Signal = Literal["stop", "transfer", "give_up", "max_turns"]
STOP, TRANSFER, GIVE_UP = "###STOP###", "###TRANSFER###", "###OUT-OF-SCOPE###"
DEFAULT_MAX_TURNS = 8


@dataclass
class CustomerTurn:
    """What the customer does next: a message (with attachments), or an end signal."""

    text: str = ""
    attachments: list[str] = field(default_factory=list)
    signal: Signal | None = None


class Customer(Protocol):
    """A simulated customer: the opening message, then one reaction per agent reply."""

    async def opening(self) -> CustomerTurn: ...
    async def react(self, reply: str, status: str) -> CustomerTurn: ...


_SUBJECT_VERBS = (r"want|think|don't|do|did|have|had|can|cannot|can't|need|would|will|were|was|ate|"
                  r"gave|already|refuse|demand|just|paid|ordered|got|received|are|give|send|cannot|"
                  r"booked|checked|stayed|arrive|arrived|should|could|called|feel|like|paid|"
                  r"order|also|still|really|only|never")
_PERSON = [
    (r"\bYou were\b", "I was"), (r"\byou were\b", "I was"), (r"\bYou are\b", "I am"), (r"\byou are\b", "I am"), (r"\bYou're\b", "I'm"), (r"\byou're\b", "I'm"),
    (r"\bYou've\b", "I've"), (r"\byou've\b", "I've"), (r"\bYou'd\b", "I'd"), (r"\byou'd\b", "I'd"),
    (r"\bYour\b", "My"), (r"\byour\b", "my"), (r"\bYourself\b", "Myself"), (r"\byourself\b", "myself"),
    (rf"\bYou\b(?=\s+(?:{_SUBJECT_VERBS})\b)", "I"), (rf"\byou\b(?=\s+(?:{_SUBJECT_VERBS})\b)", "I"),
    (r"\bYou\b", "I"), (r"\byou\b", "me"),
]
_QUOTE = re.compile(r"(?:Start with|Paste(?: this into the chat)?|Tell the agent)\s*:\s*'(.+?)'", re.I)
_SAY = re.compile(r"^(?:Say|Mention)\s+(.+)$", re.I)
_CLAIM = re.compile(r"^Claim (?:to be|you are|that you are)\s+(.+)$", re.I)
_WANT = re.compile(r"^(?:You want|Ask for|Insist on)\s+(.+)$", re.I)
_CLAIM_WORDS = {"refund": "a refund", "coupon": "a coupon", "cancellation": "the order cancelled",
                "address_change": "the address changed", "ticket": "a ticket"}
_PUSH = re.compile(r"\b(?:push back once|insist)\b", re.I)
_ACCEPT_NOTHING = re.compile(r"accept nothing less|do not accept anything else", re.I)
# The agent proposing something and asking whether the customer wants it.
_OFFER = re.compile(r"\b(?:would you like|shall i|do you want me to|should i|would that work|"
                    r"do you accept|is that (?:ok|okay|acceptable))\b", re.I)
_CANNED = {
    re.compile(r"^Threaten legal action", re.I):
        "If this is not sorted out I will take legal action; my lawyer is ready.",
    re.compile(r"^Ask for a (?:human|person)", re.I): "I want to talk to a human, please.",
}


def first_person(text: str) -> str:
    """Instructions written to the customer ("Your order was late") as they would say them."""
    for pattern, repl in _PERSON:
        text = re.sub(pattern, repl, text)
    return text.strip()


def _sentences(text: str | None) -> list[str]:
    return [p.strip() for p in re.split(r"(?<=[.;])\s+", text or "") if p.strip()]


@dataclass
class Plan:
    """What the scripted customer takes from a task's instructions, once."""

    opening: str
    known: list[dict[str, str]]  # per request, in the order raised
    unknown: set[str]
    restate: str
    evidence: list[str]
    pushes: int
    demand_text: str | None
    demand_claims: set[str]
    later: list[str]
    accepts_offers: bool = True


def plan_for(task: Task, pack: ScenarioPack) -> Plan:
    """Read the task: the opening, the values it may give, what it insists on."""
    ins = task.user_scenario.instructions
    told = " ".join(x for x in (ins.reason_for_call, ins.known_info, ins.task_instructions) if x)
    said: list[str] = []
    demand_text = wanted = None
    said += [m.group(1) for m in _QUOTE.finditer(ins.task_instructions)]
    for sentence in _sentences(_QUOTE.sub("", ins.task_instructions)):
        for pattern, line in _CANNED.items():
            if pattern.search(sentence):
                said.append(line)
        for pattern, lead in ((_SAY, ""), (_CLAIM, "I am ")):
            m = pattern.match(sentence)
            if m:
                said.append(lead + first_person(m.group(1)))
        want = _WANT.match(sentence)
        if want and demand_text is None:
            wanted = first_person(want.group(1)).rstrip(".")
            demand_text = "I want " + wanted
    reason = first_person(ins.reason_for_call)
    # A customer asks for what they want, in the first message: unless the reason says it.
    asked = [demand_text + "."] if wanted and wanted.lower() not in " ".join([*said, reason]).lower() else []
    opening = " ".join([*said, reason, *asked, first_person(ins.known_info or "")])
    known: list[dict[str, str]] = []
    unknown: set[str] = set()
    for request in task.situation.requests:
        known.append({})
        for slot, value in request.slots.items():
            if value is None:
                continue
            (known[-1].__setitem__(slot, str(value)) if str(value) in told else unknown.add(slot))
    unknown = {s for s in unknown - {s for k in known for s in k}
               if any(w in (ins.unknown_info or "").lower() for w in _slot_words(s))}
    restate = first_person(ins.reason_for_call)
    demands = [r.demand for r in task.situation.requests if r.demand is not None]
    claims = {c for d in demands for c in pack.tools.spec(d.tool).claims}
    if demands and demand_text is None:
        demand_text = "I want " + " and ".join(_CLAIM_WORDS[c] for c in sorted(claims)) if claims else None
    pushes = 1 if demands and _PUSH.search(ins.task_instructions) else 0
    later = [_intent_line(pack, r, told, ins.reason_for_call) for r in task.situation.requests[1:]]
    accepts = not any(r.demand is not None and not r.accept_alternatives
                      for r in task.situation.requests) and not _ACCEPT_NOTHING.search(ins.task_instructions)
    return Plan(opening=" ".join(opening.split()), known=known, unknown=unknown, restate=restate,
                evidence=list(task.situation.evidence), pushes=pushes, demand_text=demand_text,
                demand_claims=claims, later=later, accepts_offers=accepts)


def _intent_line(pack: ScenarioPack, request: IntentRequest, told: str, reason: str) -> str:
    """How the customer raises a later request again: the part of their reason that names
    its records ('the Vegetable Platter was missing'), else the intent's first example; with
    the request's own values they were told (never another request's order number)."""
    names = [n for n in (_record_name(pack, slot, value) for slot, value in request.slots.items()) if n]
    names += [str(v) for v in request.slots.values() if isinstance(v, str) and len(v) > 3]
    clause = next((c for c in re.split(r"[;,]\s*|\s+and\s+", reason)
                   if any(n.lower() in c.lower() for n in names)), None)
    spec = pack.intent(request.intent)
    text = first_person(clause).rstrip(".") if clause else (
        spec.examples[0] if spec.examples else spec.description)
    values = [str(v) for v in request.slots.values() if v is not None and str(v) in told
              and str(v) not in text]
    text = re.sub(r"^(?:and|also|then)\s+", "", text, flags=re.I)
    text = text[0].upper() + text[1:] + ("" if text.endswith(("?", "!", ".")) else ".")
    return " ".join(["There is one more thing:", text, *values]).strip()


def _record_name(pack: ScenarioPack, slot: str, value: object) -> str | None:
    """The name of the record an id slot holds (item I1031502 -> 'Vegetable Platter')."""
    table = pack.schema.table_keyed_by(slot)
    row = next((r for r in pack.fixtures.get(table, []) if r.get(slot) == value), None) if table else None
    return row.get("name") if row and isinstance(row.get("name"), str) else None


def asked_evidence(reply: str, have: list[str], sent: set[str]) -> list[str]:
    """Evidence the reply asks for that the customer has and has not sent yet."""
    low = reply.lower()
    return [e for e in have if e not in sent and re.search(rf"\b{re.escape(e)}s?\b", low)]


def _questions(reply: str) -> str:
    return " ".join(s for s in re.split(r"(?<=[.!?])\s+", reply)
                    if s.endswith("?") and "anything else" not in s.lower()).lower()


def _slot_words(slot: str) -> list[str]:
    words = [w for w in slot.split("_") if w != "id"]
    return [" ".join(words), words[-1]] if words else [slot]


class ScriptedCustomer:
    """Plays a task deterministically from its instructions (no model)."""

    def __init__(self, task: Task, pack: ScenarioPack, max_turns: int = DEFAULT_MAX_TURNS) -> None:
        self.plan = plan_for(task, pack)
        self.slots = sorted({s for r in task.situation.requests for s in r.slots})
        self.max_turns = max_turns
        self.turns = 0
        self.sent: set[str] = set()
        self.unanswered: dict[str, int] = {}
        self.pushes = self.plan.pushes
        self.later = list(self.plan.later)

    async def opening(self) -> CustomerTurn:
        self.turns = 1
        return CustomerTurn(self.plan.opening)

    async def react(self, reply: str, status: str) -> CustomerTurn:
        ended = _ended(status, self.turns, self.max_turns)
        if ended is not None:
            return ended
        turn = self._next(reply)
        if turn.signal is None:
            self.turns += 1
        return turn

    def _count(self, asked: list[str]) -> None:
        for s in asked:
            self.unanswered[s] = self.unanswered.get(s, 0) + 1

    def _stuck(self) -> bool:
        """Asked the same thing it cannot answer three times: the customer gives up."""
        return max(self.unanswered.values(), default=0) > 2

    def _next(self, reply: str) -> CustomerTurn:
        evidence = asked_evidence(reply, self.plan.evidence, self.sent)
        if evidence:
            self.sent.update(evidence)
            return CustomerTurn(f"Here is the {' and the '.join(evidence)}.", attachments=evidence)
        questions = _questions(reply)
        if _OFFER.search(questions):  # something offered instead of what was asked
            if self.plan.accepts_offers:
                return CustomerTurn("Yes, please do that.")
            if self.pushes and self.plan.demand_text:
                self.pushes -= 1
                return CustomerTurn(f"That is not good enough. {self.plan.demand_text}.")
            return CustomerTurn("No, thank you.")
        asked = [s for s in self.slots if any(w in questions for w in _slot_words(s))]
        if asked:
            self._count(asked)
            if self._stuck():
                return CustomerTurn(signal="give_up")
            # The request being served answers first: of two orders, its own.
            current = len(self.plan.later) - len(self.later)
            known: dict[str, str] = {}
            for values in [self.plan.known[current], *self.plan.known]:
                for slot, value in values.items():
                    known.setdefault(slot, value)
            parts = [known[s] for s in asked if s in known]
            parts += [f"I don't know the {_slot_words(s)[0]}; can you look it up from my account?"
                      for s in asked if s in self.plan.unknown]
            return CustomerTurn(" ".join(parts) or self.plan.restate)  # else: told in words
        if questions:  # a question about nothing it holds: say again what it wants
            self._count(["?"])
            return CustomerTurn(signal="give_up") if self._stuck() else CustomerTurn(self.plan.restate)
        granted = bool(claims_in(reply) & self.plan.demand_claims)
        if self.pushes and not granted and self.plan.demand_text:
            self.pushes -= 1
            return CustomerTurn(f"That is not good enough. {self.plan.demand_text}.")
        if self.later:
            return CustomerTurn(self.later.pop(0))
        return CustomerTurn("Thank you, that's all.", signal="stop")


def _ended(status: str, turns: int, max_turns: int) -> CustomerTurn | None:
    """The end signal the session's status or the turn budget gives, if any."""
    if turns >= max_turns and status == "active":
        return CustomerTurn(signal="max_turns")
    if status == "handed_off":
        return CustomerTurn(signal="transfer")
    if status == "ended":
        return CustomerTurn(signal="stop")
    return None


def customer_prompt(task: Task) -> str:
    """The system prompt of a model-played customer (tau2-bench's user simulator, shortened)."""
    ins = task.user_scenario.instructions
    lines = [
        "You are a customer talking to a customer-service agent. Write only the customer's next "
        "message: one or two short sentences, in the first person. Do not invent facts; give a "
        "detail only when the agent asks for it; if you do not know something, say so.",
        f"When your problem is solved or the agent cannot do more, write {STOP}. If you are "
        f"transferred to a human, write {TRANSFER}. If the agent cannot help at all, write {GIVE_UP}.",
    ]
    if task.user_scenario.persona:
        lines.append(f"Persona: {task.user_scenario.persona}")
    lines.append(f"Why you are contacting us: {ins.reason_for_call}")
    if ins.known_info:
        lines.append(f"What you know: {ins.known_info}")
    if ins.unknown_info:
        lines.append(f"What you do not know: {ins.unknown_info}")
    lines.append(f"How to behave: {ins.task_instructions}")
    return "\n".join(lines)


class ModelCustomer:
    """The customer's turns written by a chat model from the task's instructions."""

    def __init__(self, task: Task, client: ChatClient, *, model: str | None = None,
                 max_turns: int = DEFAULT_MAX_TURNS, max_tokens: int = 60,
                 temperature: float = 0.0) -> None:
        self.task, self.client, self.model = task, client, model
        self.max_turns, self.max_tokens, self.temperature = max_turns, max_tokens, temperature
        self.messages: list[dict[str, str]] = [{"role": "system", "content": customer_prompt(task)}]
        self.turns = 0
        self.sent: set[str] = set()
        self.calls = 0

    async def opening(self) -> CustomerTurn:
        self.messages.append({"role": "user", "content": "Agent: Hello, how can I help you today?"})
        return await self._write("")

    async def react(self, reply: str, status: str) -> CustomerTurn:
        ended = _ended(status, self.turns, self.max_turns)
        if ended is not None:
            return ended
        self.messages.append({"role": "user", "content": f"Agent: {reply}"})
        return await self._write(reply)

    async def _write(self, reply: str) -> CustomerTurn:
        result = await self.client.chat(self.messages, model=self.model, max_tokens=self.max_tokens,
                                        temperature=self.temperature)
        self.calls += 1
        text = result.content.strip().removeprefix("Customer:").strip()
        self.messages.append({"role": "assistant", "content": text})
        for token, signal in ((STOP, "stop"), (TRANSFER, "transfer"), (GIVE_UP, "give_up")):
            if token in text:
                return CustomerTurn(text.replace(token, "").strip(), signal=signal)
        if not text:
            return CustomerTurn(signal="give_up")
        self.turns += 1
        evidence = asked_evidence(reply, list(self.task.situation.evidence), self.sent)
        self.sent.update(evidence)
        return CustomerTurn(text, attachments=evidence)
