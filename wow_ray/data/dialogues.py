"""A whole dialogue for one situation, and the training samples of every agent in it.

The oracle says what a by-the-book agent does for the case (per request: the tool calls, what
the rules refused, the facts to tell). The dialogue is then written the way the service would
hold it: the customer opens (some slot values said, some not), the agent asks for what is
missing, the customer answers, the request is solved, the reply quotes the facts, and the
customer may ask a question or say goodbye. At each step the sample of the agent that would
call the model there is rendered through ``wow_ray.agents.prompts``: the understanding agent's
JSON, the master's move where several are legal, the solution agent's next tool call (or
``done``), the reply, and the hand-over note.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from wow_ray.agents.fact_sentences import money
from wow_ray.agents.messages import ActiveRequest, RespondRequest
from wow_ray.agents.offers import DemandReader
from wow_ray.agents.prompt_inputs import (
    handed_over_reply,
    handoff_input,
    knowledge,
    legal_moves,
    master_input,
    observation,
    offer_fact,
    planner_tools,
    response_input,
    solution_input,
    solved_reply,
    tool_fact,
    understanding_input,
)
from wow_ray.agents.prompts import (
    NO_INTENT,
    PROMPT_VERSION,
    PROMPTS,
    HandoffSummary,
    Line,
    ToolProposal,
    UnderstandingOutput,
)
from wow_ray.agents.understanding import DEFAULT_FLAG_KEYWORDS
from wow_ray.data import texts
from wow_ray.data.formats import ActionCheck, ChatSample, Message, SampleMeta, Source
from wow_ray.data.served_agents import ServedAgents
from wow_ray.scenario import Oracle, Replay, ScenarioPack, Situation, ToolCall
from wow_ray.scenario.rules import Decision
from wow_ray.scenario.tasks import IntentRequest

MENTION = {"id": 0.75, "enum": 0.85, "text": 0.6}


@dataclass
class Step:
    """One oracle action replayed: the call, its result, and whether a rule demanded it."""

    call: ToolCall
    ok: bool
    content: Any
    error: str | None
    kind: str
    obligation: bool
    ends: bool


@dataclass
class Segment:
    """What the oracle did for one request."""

    steps: list[Step] = field(default_factory=list)
    communicate: list[str] = field(default_factory=list)
    denials: list[Decision] = field(default_factory=list)


@dataclass
class Draft:
    """The dialogue being written: lines so far, samples so far, actions done so far."""

    case_id: str
    situation: Situation
    rng: random.Random
    source: Source
    history: list[Line] = field(default_factory=list)
    samples: list[ChatSample] = field(default_factory=list)
    done: list[ToolCall] = field(default_factory=list)
    known: dict[str, Any] = field(default_factory=dict)
    turn: int = 0
    resolved: bool = False  # the last request's state, as the master summarises it
    situation_id: str = ""  # default: the case id

    @property
    def dialogue_id(self) -> str:
        return f"{self.source}:{self.case_id}"


class DialogueBuilder:
    """Writes dialogues and their samples for one pack."""

    def __init__(self, pack: ScenarioPack, pack_version: str, *, source: Source = "cold_start",
                 extras: float = 0.25, goodbye: float = 0.8, filler: float = 0.15,
                 paraphrase: Callable[[str, list[str]], str | None] | None = None) -> None:
        self.pack = pack
        self.pack_version = pack_version
        self.source = source
        self.agents = ServedAgents(pack)
        self.oracle = Oracle(pack)
        self.demands = DemandReader(pack)  # built once: it compiles the pack's phrases
        self.intents = {i.name: i for i in pack.intents}
        self.p_question, self.p_goodbye, self.p_filler = extras, goodbye, filler
        self.paraphrase = paraphrase
        self.flag_words = [k for keys in DEFAULT_FLAG_KEYWORDS.values() for k in keys]
        self.questions = sorted(a.title for a in pack.kb.articles.values())
        self._rows: dict[str, dict[str, dict[str, Any]]] = {}

    # -- the oracle, request by request ---------------------------------------------------

    def segments(self, situation: Situation) -> list[Segment]:
        """The oracle's actions split by request (each prefix of the requests solved once)."""
        results = [self.oracle.solve(situation.model_copy(update={"requests": situation.requests[:k]}))
                   for k in range(1, len(situation.requests) + 1)]
        segments, n_den, n_com, before = [], 0, 0, 0
        for result in results:
            seg = Segment(communicate=result.communicate_info[n_com:], denials=result.denials[n_den:])
            seg.steps = [None] * (len(result.actions) - before)  # filled by replay
            n_den, n_com, before = len(result.denials), len(result.communicate_info), len(result.actions)
            segments.append(seg)
        self._replay(situation, results[-1].actions, segments)
        return segments

    def _replay(self, situation: Situation, actions: list[ToolCall], segments: list[Segment]) -> None:
        with Replay(self.pack, situation, check=False) as rerun:
            index = 0
            for request, seg in zip(situation.requests, segments, strict=True):
                rerun.state.slots = dict(request.slots)
                for j in range(len(seg.steps)):
                    call = actions[index]
                    index += 1
                    required = {o.tool for o in rerun.env.obligations(rerun.state)}
                    spec = self.pack.tools.spec(call.name)
                    result = rerun.step(call).result
                    seg.steps[j] = Step(call, result.ok, result.content, result.error, spec.kind,
                                        call.name in required, spec.ends_dialogue)

    # -- the dialogue ---------------------------------------------------------------------

    def build(self, case_id: str, situation: Situation, seed: int = 0,
              history: Sequence[Line] = ()) -> list[ChatSample]:
        """Every agent's samples for one dialogue of ``situation`` (deterministic in seed);
        ``history``: earlier turns of the same conversation (customer and agent lines)."""
        digest = hashlib.sha256(f"{seed}:{case_id}".encode()).digest()
        d = Draft(case_id, situation, random.Random(int.from_bytes(digest[:8], "big")), self.source,
                  history=list(history), turn=len(history) // 2)
        segments = self.segments(situation)
        for k, (request, seg) in enumerate(zip(situation.requests, segments, strict=True)):
            if not self._request(d, k, request, seg):
                return d.samples  # handed over: the session is closed
        if self.questions and d.rng.random() < self.p_question:
            self._question(d)
        if d.rng.random() < self.p_goodbye:
            self._goodbye(d)
        return d.samples

    def _request(self, d: Draft, k: int, request: Any, seg: Segment) -> bool:
        intent = self.intents[request.intent]
        slots = dict(request.slots)
        mention, missing = self._mentions(d, intent, slots)
        if seg.steps and seg.steps[0].ends and seg.steps[0].obligation:
            # The rules demand a hand-over at once (a flag): the service asks nothing first,
            # so the customer's opening carries everything the hand-over names.
            mention.update({name: slots[name] for name in missing})
            missing = []
        extras = []
        if request.demand is not None:
            extras.append(texts.demand_phrase(d.rng, request.demand.tool, request.demand.args,
                                              self.pack.manifest.currency))
        attachments: list[str] = []
        if k == 0:
            for item in d.situation.evidence:
                extras.append(d.rng.choice(texts.EVIDENCE.get(item, [f"I've attached a {item}."])))
                attachments.append(item)
            extras += [d.rng.choice(texts.FLAGS.get(f, [f"This is a {f} issue."])) for f in d.situation.flags]
            if d.situation.human_requests:
                extras.append("I already asked for a human before.")
        said = texts.opening(d.rng, self.pack.name, intent, mention, self._context(slots), extras, k > 0)
        text, reworded = self._reworded(said, request)
        self.understand(d, text, request.intent, said.said,
                            said.template + ("+paraphrase" if reworded else ""), paraphrased=reworded)
        for name, value in said.said.items():
            if name in self.agents.shapes:
                d.known[name] = value
        if missing:
            self._clarify(d, request.intent, slots, missing)
        return self.solve(d, request.intent, slots, seg, request=request)

    def _reworded(self, said: texts.Rendered, request: Any) -> tuple[str, bool]:
        """The opening, reworded by the LLM if one is configured and its text keeps every value
        the labels rely on (ids, free text, flag keywords, a demanded amount)."""
        if self.paraphrase is None:
            return said.text, False
        enums = {s.name for s in self.intents[request.intent].slots if s.enum}
        keep = [v for k, v in said.said.items() if k not in enums]
        keep += [w for w in self.flag_words if re.search(rf"\b{re.escape(w)}\b", said.text.lower())]
        if request.demand is not None and "amount" in request.demand.args:
            keep.append(money(request.demand.args["amount"]))
        new = self.paraphrase(said.text, keep)
        return (new, True) if new else (said.text, False)

    def _mentions(self, d: Draft, intent: Any, slots: dict[str, Any]) -> tuple[dict, list[str]]:
        """Which values the opening states; which required ones the agent must ask for."""
        mention, missing = {}, []
        for spec in intent.slots:
            if spec.name not in slots:
                continue
            value = slots[spec.name]
            if d.known.get(spec.name) == value:
                continue  # carried over from an earlier request, as the service does
            kind = "enum" if spec.enum else "id" if spec.name in self.agents.shapes else "text"
            if not spec.required or d.rng.random() < MENTION[kind]:
                mention[spec.name] = value
            else:
                missing.append(spec.name)
        return mention, missing

    def _context(self, slots: dict[str, Any]) -> dict[str, str]:
        """Names a customer would use: the item's, the restaurant's (from the records)."""
        out: dict[str, str] = {}
        tables = self.pack.schema.tables
        for name, value in slots.items():
            table = self.pack.schema.table_keyed_by(name)
            row = self._row(table, value) if table else None
            if not row:
                continue
            if isinstance(row.get("name"), str):
                out[name.removesuffix("_id")] = row["name"]
            for column, col in tables[table].columns.items():
                # Customers tell times by the clock: "due at 19:09, here at 19:31".
                if col.type == "datetime" and isinstance(row.get(column), str) and "T" in row[column]:
                    out.setdefault(column, row[column].split("T", 1)[1][:5])
            for column, col in tables[table].columns.items():
                if col.references and column != tables[table].primary_key:
                    ref = self._row(col.references.split(".")[0], row.get(column))
                    if ref and isinstance(ref.get("name"), str):
                        out.setdefault(column.removesuffix("_id"), ref["name"])
        return out

    def _row(self, table: str, key: Any) -> dict[str, Any] | None:
        if table not in self._rows:
            pk = self.pack.schema.tables[table].primary_key
            self._rows[table] = {str(r.get(pk)): r for r in self.pack.fixtures.get(table, [])}
        return self._rows[table].get(str(key))

    def _clarify(self, d: Draft, intent: str, slots: dict[str, Any], missing: list[str]) -> None:
        said = {k: v for k, v in slots.items() if k not in missing}
        self._reply(d, intent, "clarify", [], [], ask=missing)
        if d.rng.random() < self.p_filler:
            text = d.rng.choice(texts.FILLERS)
            self.understand(d, text, None, {}, "filler", collecting=intent, expecting=missing)
            self._master(d, text, "clarify", ActiveRequest(intent=intent, slots=said, missing=missing))
            self._reply(d, intent, "clarify", [], [], ask=missing)
        specs = {s.name: s for s in self.intents[intent].slots}
        parts = [texts.answer(d.rng, specs[name], slots[name]) for name in missing]
        text = " ".join(p.text for p in parts)
        self.understand(d, text, intent, {n: slots[n] for n in missing}, parts[0].template,
                            collecting=intent, expecting=missing)
        for name in missing:
            if name in self.agents.shapes:
                d.known[name] = slots[name]

    def solve(self, d: Draft, intent: str, slots: dict[str, Any], seg: Segment,
               start: int = 0, request: IntentRequest | None = None) -> bool:
        """The solution agent's samples from step ``start`` on (earlier steps are only
        observed), then the reply; False when the request ended in a hand-over. A demand of
        ``request`` the rules refused is answered as the service does: an offer, the
        customer's yes or no, then the reply to that."""
        steps = seg.steps
        handed = next((s for s in steps if s.ends), None)
        observations = []
        required = bool(steps and steps[0].ends and steps[0].obligation)
        if not required:  # a required hand-over skips the solution agent
            for index, step in enumerate(steps):
                if not step.obligation and index >= start:
                    self._solution(d, intent, slots, observations, step.call)
                if step.ends:
                    break
                observations.append(observation(step.call.name, step.call.arguments,
                                                step.ok, step.content, step.error))
                d.done.append(step.call)
            else:
                self._solution(d, intent, slots, observations, None)
        writes = [s for s in steps if s.kind == "write" and s.ok and not s.ends]
        facts = [tool_fact(self.pack, s.call.name, s.call.arguments, s.content) for s in writes]
        refusals = list(dict.fromkeys(x.customer_reason for x in seg.denials if x.customer_reason))
        if not facts and not refusals:
            facts = list(dict.fromkeys(tool_fact(self.pack, s.call.name, s.call.arguments, s.content)
                                       for s in steps if s.kind == "read" and s.ok))
        if handed is not None:
            self._handoff(d, intent, slots, handed, list(dict.fromkeys([*facts, *refusals])),
                          refusals, seg.communicate, required)
            return False
        offered = self._offered(d, request, seg, writes) if request is not None else None
        if offered is not None:
            self._offer(d, intent, request, seg, writes, refusals, offered)
            return True
        if not facts and not refusals and not seg.communicate:
            return True  # nothing to say: no reply worth learning from
        kind, facts, must = solved_reply(facts, seg.communicate, refusals, bool(writes))
        self._reply(d, intent, kind, facts, must)
        return True

    def _offered(self, d: Draft, request: IntentRequest, seg: Segment,
                 writes: list[Step]) -> ToolCall | None:
        """What the service offers in place of a refused demand: the write the oracle took
        instead, or would have taken had the customer accepted alternatives; None when the
        demand was granted or nothing else is allowed."""
        demand = request.demand
        options = self.demands.tools_for(request.intent)
        if demand is None or demand.tool not in options or not any(
                x.tool == demand.tool and not x.allowed for x in seg.denials):
            return None
        if request.accept_alternatives:
            return next((s.call for s in writes if s.call.name in options), None)
        k = next(i for i, r in enumerate(d.situation.requests) if r is request)
        asked = d.situation.model_copy(update={"requests": d.situation.requests[:k + 1]})
        taken = asked.model_copy(update={"requests": [
            *asked.requests[:k], request.model_copy(update={"accept_alternatives": True})]})
        done = {a.key() for a in self.oracle.solve(asked).actions}
        return next((a for a in self.oracle.solve(taken).actions
                     if a.name in options and a.key() not in done), None)

    def _offer(self, d: Draft, intent: str, request: IntentRequest, seg: Segment,
               writes: list[Step], refusals: list[str], offered: ToolCall) -> None:
        """The offer reply, the customer's answer, and the reply to it. Other writes of the
        request are told with the offer (done before the choice, as the service does)."""
        before = [s for s in writes if s.call.key() != offered.key()]
        told = [tool_fact(self.pack, s.call.name, s.call.arguments, s.content) for s in before]
        quoted = [v for v in seg.communicate if any(v in f for f in told)]
        kind, facts, must = solved_reply([*told, offer_fact(self.pack, offered)], quoted,
                                         refusals, bool(before), offered=True)
        self._reply(d, intent, kind, facts, must)
        accepted = request.accept_alternatives
        d.turn += 1  # the answer is read without a model, and "solve" is the only move
        d.history.append(Line(role="customer", text=d.rng.choice(
            texts.ACCEPT_OFFER if accepted else texts.DECLINE_OFFER)))
        taken = next((s for s in writes if s.call.key() == offered.key()), None)
        if accepted and taken is not None:
            fact = tool_fact(self.pack, taken.call.name, taken.call.arguments, taken.content)
            self._reply(d, intent, "resolve", [fact], [v for v in seg.communicate if v in fact])
        else:
            self._reply(d, intent, "deny", refusals, refusals)

    def _handoff(self, d: Draft, intent: str, slots: dict[str, Any], step: Step,
                 facts: list[str], refusals: list[str], must: list[str], required: bool) -> None:
        d.done.append(step.call)
        reason = str(step.call.arguments.get("reason", "customer_request"))
        env_reason = self._handoff_reason(d, step.call)
        # A hand-over the rules demand at once is announced with the rule's reason, which the
        # master passes on as what was done (master.py ``_act``).
        done = [env_reason] if required else facts
        inp = handoff_input(
            self.pack, user_id=d.situation.user_id, identity_verified=d.situation.identity_verified,
            reason=reason, intent=intent, slots=slots, done=done, refused=refusals,
            history=d.history)
        text = texts.summary(d.rng, d.situation.user_id, d.situation.identity_verified, intent,
                             slots, facts, refusals, reason)
        self._emit(d, "handoff", inp, HandoffSummary(summary=text), intent, kind=reason)
        ticket = f"HT-{hashlib.sha256(d.dialogue_id.encode()).hexdigest()[:8]}-{len(d.done)}"
        told, quote = handed_over_reply(done, must, refusals, env_reason, ticket)
        self._reply(d, intent, "handoff", told, quote)

    def _handoff_reason(self, d: Draft, call: ToolCall) -> str:
        """What the rule that allowed (or required) the hand-over tells the customer."""
        with Replay(self.pack, d.situation, check=False) as rerun:
            rerun.run(d.done[:-1])
            return rerun.env.check(call, rerun.state).customer_reason

    def _question(self, d: Draft) -> None:
        for _ in range(3):
            topic = d.rng.choice(self.questions).lower()
            text = d.rng.choice(texts.QUESTIONS).format(t=topic)
            if self.agents.offer(text).strong_intent is None:
                break
        else:
            return
        self.understand(d, text, None, {}, "question")
        self._master(d, text, "answer", self._last_request(d))
        self._reply(d, None, "answer", knowledge(self.pack, text), [])

    def _goodbye(self, d: Draft) -> None:
        text = d.rng.choice(texts.GOODBYES)
        d.turn += 1
        self._master(d, text, "end", self._last_request(d), goodbye=True)
        d.history.append(Line(role="customer", text=text))
        self._reply(d, None, "end", [], [])

    # -- samples ---------------------------------------------------------------------------

    def understand(self, d: Draft, text: str, intent: str | None, said: dict[str, Any],
                       template: str, collecting: str | None = None,
                       expecting: list[str] | None = None, paraphrased: bool = False) -> None:
        d.turn += 1
        offer = self.agents.offer(text, collecting)
        # The true intent is offered even where the retriever missed it (what a better
        # retriever would offer), so a target is never outside its own schema.
        options = offer.options if intent is None or intent in offer.options else [*offer.options, intent]
        inp = understanding_input(self.pack, options, d.history, text, expecting=expecting or [],
                                  offer_none=offer.offer_none or intent is None)
        out = UnderstandingOutput(intent=intent or NO_INTENT, slots=said)
        self._emit(d, "understanding", inp, out, intent, kind=out.intent, template=template,
                   paraphrased=paraphrased)
        d.history.append(Line(role="customer", text=text))

    @staticmethod
    def _last_request(d: Draft) -> ActiveRequest:
        """The request in progress after the last one was answered, as the master holds it."""
        last = d.situation.requests[-1]
        return ActiveRequest(intent=last.intent, slots=last.slots, resolved=d.resolved)

    def _master(self, d: Draft, text: str, move: str, active: ActiveRequest,
                goodbye: bool = False) -> None:
        """The master's sample for a message the understanding agent read no intent in."""
        moves = legal_moves(active, None, goodbye=goodbye)
        assert move in moves, (move, moves)
        inp = master_input(self.pack, text, moves, active)
        self._emit(d, "master", inp, PROMPTS["master"].output_model(next=move), active.intent,
                   kind=move)

    def _solution(self, d: Draft, intent: str, slots: dict[str, Any],
                  observations: list[Any], call: ToolCall | None) -> None:
        inp = solution_input(self.pack, d.situation.user_id, intent, slots,
                             planner_tools(self.pack, intent), observations)
        out = ToolProposal(tool=call.name, arguments=call.arguments) if call else ToolProposal(tool="done")
        check = ActionCheck(situation=d.situation.model_dump(mode="json"),
                            prior=[c.model_dump() for c in d.done],
                            actions=[call.model_dump()] if call else [])
        self._emit(d, "solution", inp, out, intent, kind=out.tool, check=check)

    def _reply(self, d: Draft, intent: str | None, kind: str, facts: list[str],
               must: list[str], ask: list[str] | None = None) -> None:
        # The latest line is the customer's message; the service passes the lines before it.
        req = RespondRequest(session_id=d.dialogue_id, kind=kind, message=d.history[-1].text,
                             history=d.history[:-1], facts=facts, must_say=must,
                             ask_for=list(ask or []), intent=intent)
        inp = response_input(self.pack, req, self.agents.responder.brand, self.agents.responder.tone)
        labels = inp.ask_for
        if kind in ("resolve", "deny", "handoff"):
            d.resolved = kind != "deny"
        text, template = texts.reply(d.rng, kind, facts, must, self.agents.responder.brand, labels)
        self._emit(d, "response", inp, text, intent, kind=kind, template=template)
        d.history.append(Line(role="agent", text=text))

    def _emit(self, d: Draft, agent: str, inp: Any, out: Any, intent: str | None, *,
              kind: str = "", template: str = "", check: ActionCheck | None = None,
              paraphrased: bool = False) -> None:
        spec = PROMPTS[agent]
        messages = [Message(**m) for m in spec.messages(inp)]
        messages.append(Message(role="assistant", content=spec.render(out, inp)))
        index = len(d.samples)
        meta = SampleMeta(agent=agent, source=d.source, intent=intent, pack=self.pack.name,
                          pack_version=self.pack_version, prompt_version=PROMPT_VERSION,
                          situation_id=d.situation_id or d.case_id, dialogue_id=d.dialogue_id, turn=d.turn, kind=kind,
                          template=template, paraphrased=paraphrased, check=check,
                          input=inp.model_dump(mode="json"))
        d.samples.append(ChatSample(id=f"{d.dialogue_id}:{index:03d}", messages=messages, meta=meta))
