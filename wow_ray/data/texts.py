"""Words for generated dialogues: how customers say things, and how a good agent answers.

Customer turns are assembled from a core phrase for the intent (the pack's own intent examples,
with any id in them replaced, plus hand-written phrases for the built-in food pack), clauses
that mention slot values, and optional demand, evidence and flag phrases, in varied order and
register. Agent replies wrap the service's own fact sentences (so every number stays grounded)
in openers and closers per reply kind. Every choice is drawn from a seeded ``random.Random``,
and each rendered text records which template made it.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Any

# --------------------------------------------------------------------------- customer side

GREETINGS = ["", "", "", "Hi. ", "Hello, ", "Hi there! ", "Good evening. ", "Hey, ", "Excuse me, "]
SIGNOFFS = ["", "", "", " Thanks.", " Thank you!", " Please help.", " Can you sort this out?"]

CORE: dict[str, dict[str, list[str]]] = {
    "food_delivery": {
        "late_delivery": ["my order from {merchant} came really late.", "my food arrived way too late.",
                          "the delivery was very late and the food is cold now.",
                          "my dinner took forever to get here.", "the order is late, much later than promised.",
                          "it was due at {promised_at} but only got here at {delivered_at}.",
                          "the app said {promised_at} and my food from {merchant} came at {delivered_at}.",
                          "my order was supposed to come at {promised_at}; it turned up at {delivered_at}."],
        "missing_item": ["the {item} is missing from my order.", "I didn't get the {item} I paid for.",
                         "my bag came without the {item}.", "one item is missing: the {item}."],
        "wrong_item": ["I got the wrong thing instead of the {item}.", "the {item} I ordered was not what arrived.",
                       "they sent me something else instead of the {item}."],
        "food_quality": ["the food from {merchant} arrived in a bad state.", "my meal was not ok when it arrived.",
                         "the food quality was terrible when it got here."],
        "cancel_order": ["I want to cancel my order.", "please cancel my order from {merchant}.",
                         "can I cancel the order I just placed?"],
        "refund_status": ["where is my refund?", "I'm still waiting for my refund.",
                          "how much was refunded for my order?", "did my refund go through?"],
        "change_address": ["I need to change the delivery address.", "can you send my order somewhere else?",
                           "I gave the wrong address for my order."],
        "invoice": ["I need an invoice for an order.", "can I get a fapiao for my order?",
                    "please issue an invoice for my order from {merchant}."],
        "coupon_promotion": ["I have a question about a coupon.", "my promotion code didn't work.",
                             "something is wrong with my coupon."],
        "rider_complaint": ["I want to complain about the rider.", "the rider on my order behaved badly.",
                            "I have a complaint about my delivery rider."],
        "merchant_complaint": ["I want to complain about {merchant}.", "I have a complaint about the restaurant.",
                               "the restaurant for my order was a problem."],
        "payment_account": ["I have a problem with a payment.", "something is wrong with my account.",
                            "there's an issue with how I was charged."],
        "ask_for_human": ["can I talk to a real person?", "I want to speak to a human agent.",
                          "please connect me to a human."],
    },
}

SLOT_CLAUSES: dict[str, list[str]] = {
    "order_id": ["My order number is {v}.", "It's order {v}.", "Order {v}.", "The order is {v}.",
                 "This is about order {v}."],
    "item_id": ["The item is {v}.", "Item number {v}.", "It's item {v}."],
    "payment_id": ["The payment is {v}.", "Payment reference {v}."],
    "coupon_id": ["The coupon is {v}.", "Coupon {v}."],
    "promo_code": ["The code is {v}.", "I used the code {v}."],
    "booking_id": ["My booking is {v}.", "Booking number {v}."],
    "new_address": ["The new address is {v}.", "Please deliver it to {v} instead."],
    "title": ["The invoice title should be {v}.", "Please put {v} as the title."],
    "tax_id": ["Our tax id is {v}.", "Tax id: {v}."],
}
GENERIC_ID_CLAUSES = ["The {label} is {v}.", "{Label}: {v}."]
GENERIC_TEXT_CLAUSES = ["The {label} is {v}.", "{Label}: {v}."]
ENUM_CLAUSES: dict[tuple[str, str], list[str]] = {
    ("problem", "cold"): ["It arrived cold.", "Everything was stone cold."],
    ("problem", "spilled"): ["Half of it spilled in the bag.", "The soup spilled everywhere."],
    ("problem", "damaged"): ["The box was damaged.", "It came damaged and squashed."],
    ("problem", "duplicate_charge"): ["I was charged twice, a duplicate charge.", "There's a duplicate charge."],
    ("problem", "account_frozen"): ["My account is frozen.", "It says my account is frozen."],
    ("problem", "payment_failed"): ["The payment failed.", "My payment failed but I'm not sure why."],
    ("reason", "changed_mind"): ["I changed my mind.", "I've changed my mind about it."],
    ("reason", "ordered_by_mistake"): ["I ordered it by mistake.", "It was ordered by mistake."],
    ("reason", "too_slow"): ["It's too slow.", "It's taking too long, too slow."],
    ("issue", "rude"): ["They were rude to me.", "Very rude behaviour."],
    ("issue", "unsafe_driving"): ["The driving was unsafe.", "Really unsafe driving on the road."],
    ("issue", "wrong_handover"): ["They handed it to the wrong person, a wrong handover."],
    ("issue", "hygiene"): ["The hygiene was awful.", "Hygiene was a real problem."],
    ("issue", "rude_staff"): ["The staff were rude.", "Rude staff on the phone."],
    ("issue", "wrong_price"): ["They charged the wrong price.", "The price was wrong."],
    ("issue", "packaging"): ["The packaging was a mess.", "Terrible packaging."],
    ("issue", "other"): ["It's something else.", "It's hard to describe, something else."],
    ("reason", "other"): ["It's for another reason.", "For other reasons."],
    ("problem", "other"): ["It's a different problem.", "Some other problem."],
}
GENERIC_ENUM_CLAUSES = ["It's about: {w}.", "The {label} is {w}.", "{W}."]

DEMANDS: dict[str, list[str]] = {
    "refund_full": ["I want a full refund.", "I expect all my money back."],
    "refund_partial": ["I'd like a partial refund.", "Some money back would be fair."],
    "refund_partial+amount": ["I want {amount} {currency} back.", "Refund me {amount} {currency}."],
    "issue_coupon": ["A coupon would be fine.", "Can you give me a coupon?"],
    "issue_coupon+amount": ["Give me a {amount} {currency} coupon.", "I want a coupon worth {amount} {currency}."],
}
GENERIC_DEMAND = ["I'd like you to {w}.", "Can you {w}?"]
EVIDENCE = {"photo": ["I've attached a photo.", "Photo attached."],
            "receipt": ["I attached the receipt.", "Receipt attached."],
            "screenshot": ["I've attached a screenshot.", "Screenshot attached."]}
FLAGS = {"food_safety": ["I think it made me sick.", "There was a hair in the food."],
         "legal_threat": ["I will talk to my lawyer about this.", "I'm considering legal action."],
         "abusive": ["This is ridiculous, you people are useless."]}
ANSWERS = ["It's {v}.", "{v}", "Sure, {v}.", "Here you go: {v}.", "{Label}: {v}."]
FILLERS = ["Hold on, let me find it.", "One moment, I'm looking.", "Hmm, let me check the app."]
GOODBYES = ["Thanks, that's all.", "Ok thanks, bye!", "Thank you so much.", "That's all, thank you.",
            "Cheers.", "No thanks, all good.", "Thanks a lot, bye."]
QUESTIONS = ["Can you tell me about {t}?", "I have a question about {t}.", "What's your policy on {t}?",
             "Quick question about {t}."]
SECOND = ["Also, ", "One more thing: ", "And another thing, ", "While I have you, "]

# --------------------------------------------------------------------------- agent side

# Every reply kind that states facts opens with a short sentence: the service shows a sentence
# only once it is complete and checked, so a short first one is what the customer sees first
# (a reply that was one 23-token claim showed nothing for 2.6 s: benchmarks/README.md).
OPENERS = {
    "resolve": ["Thanks for your patience. ", "I'm sorry about that. ", "Thanks for letting us know. ",
                "I've looked into it. "],
    "deny": ["I'm sorry. ", "I understand, and I'm sorry. ", "Thank you for explaining. ",
             "I'm afraid I can't do that. "],
    "handoff": ["I understand. ", "I'm sorry about this. "],
    "offer": ["I'm sorry. ", "I understand, but I can't do that. ", "Thank you for explaining. "],
}
CLOSERS = {
    "resolve": [" Is there anything else I can help with?", " Anything else I can do for you?", ""],
    "deny": [" Is there anything else I can help with?", " Is there something else I can do?", ""],
    "handoff": [" A colleague will continue from here.", " A colleague will take it from here shortly."],
    "offer": [" Would you like me to do that?", " Shall I go ahead with that?", " Would that work for you?"],
}
# The customer's answer to an offer (the service reads them as yes or no: agents/offers.py).
ACCEPT_OFFER = ["Yes, please do that.", "Yes please.", "Ok, go ahead.", "Sure, that works."]
DECLINE_OFFER = ["No, thank you.", "No, I only want what I asked for.", "That is not good enough.",
                 "No thanks, I don't want that."]
CLARIFY = ["To help you with that, could you tell me {asks}?", "Could you share {asks}, please?",
           "Sure, I can help. What is {asks}?", "{lead}Could you give me {asks}?"]
ANSWER = ["Here is what I can tell you: {fact}", "Good question. {fact}", "{fact}"]
END = ["Thank you for contacting {brand}. Have a nice day!", "You're welcome! Have a great evening.",
       "Glad I could help. Goodbye!", "Thanks for reaching out to {brand}. Take care!"]
SUMMARIES = [
    "Customer {who} {want}. {done} Transferred because of {reason}.",
    "{who} contacted us {want}. {done} Needs a colleague: {reason}.",
    "Hand-over for {who} {want}; {done} Reason for transfer: {reason}.",
]


@dataclass
class Rendered:
    """A text and what it proves: the slot values it states, and the template used."""

    text: str
    said: dict[str, Any] = field(default_factory=dict)
    template: str = ""


def _words(name: str) -> str:
    return name.replace("_", " ")


def _fill(template: str, **values: Any) -> str:
    return template.format(**values).replace(" .", ".").strip()


def slot_label(name: str) -> str:
    base = name.removesuffix("_id").replace("_", " ")
    return f"{base} number" if name.endswith("_id") else base


def slot_clause(rng: random.Random, slot: Any, value: Any) -> str:
    """A sentence stating ``value`` for ``slot`` (enum values by meaning, ids verbatim)."""
    label = slot_label(slot.name)
    if slot.enum:
        options = ENUM_CLAUSES.get((slot.name, str(value)))
        if options:
            return rng.choice(options)
        w = _words(str(value))
        return _fill(rng.choice(GENERIC_ENUM_CLAUSES), w=w, W=w.capitalize(), label=label)
    options = SLOT_CLAUSES.get(slot.name) or (GENERIC_ID_CLAUSES if slot.name.endswith("_id")
                                              else GENERIC_TEXT_CLAUSES)
    return _fill(rng.choice(options), v=value, label=label, Label=label.capitalize())


_EXAMPLE = re.compile(r" \(like [^)]*\)")


def core_phrases(pack_name: str, intent: Any) -> list[tuple[str, str]]:
    """(template id, phrase) pairs for an intent: hand-written ones, else the pack's examples
    that name no id or number."""
    out = [(f"core:{intent.name}:{i}", p) for i, p in enumerate(CORE.get(pack_name, {}).get(intent.name, []))]
    if out:  # hand-written phrases take the case's own names; examples name other dishes
        return out
    # An example's id or number ("check out at 2pm") would contradict the case's own values.
    return [(f"example:{intent.name}:{i}", e) for i, e in enumerate(intent.examples)
            if not re.search(r"[0-9{]", e)]


def opening(rng: random.Random, pack_name: str, intent: Any, mention: dict[str, Any],
            context: dict[str, str], extras: list[str], second: bool) -> Rendered:
    """A customer's first message about a request: core phrase, slot clauses, extras."""
    phrases = [(tid, p) for tid, p in core_phrases(pack_name, intent)
               if all(k in context for k in re.findall(r"{(\w+)}", p))]
    tid, core = rng.choice(phrases) if phrases else (f"generic:{intent.name}", f"it's about {_words(intent.name)}.")
    core = core.format(**context)
    lead = rng.choice(SECOND) if second else rng.choice(GREETINGS)
    core = core[0].upper() + core[1:] if not lead or lead.endswith(". ") or lead.endswith("! ") else core
    slots = {s.name: s for s in intent.slots}
    clauses = [slot_clause(rng, slots[name], value) for name, value in mention.items()]
    parts = [*clauses, *extras]
    rng.shuffle(parts)
    text = " ".join([f"{lead}{core}", *parts]) + rng.choice(SIGNOFFS)
    return Rendered(" ".join(text.split()), dict(mention), tid)


def demand_phrase(rng: random.Random, tool: str, args: dict[str, Any], currency: str) -> str:
    key = f"{tool}+amount" if "amount" in args else tool
    options = DEMANDS.get(key) or DEMANDS.get(tool)
    if options:
        return _fill(rng.choice(options), amount=_money(args.get("amount")), currency=currency)
    return _fill(rng.choice(GENERIC_DEMAND), w=_words(tool))


def answer(rng: random.Random, slot: Any, value: Any) -> Rendered:
    """A reply to the agent's question for one slot."""
    if slot.enum:
        return Rendered(slot_clause(rng, slot, value), {slot.name: value}, "answer:enum")
    label = slot_label(slot.name)
    i = rng.randrange(len(ANSWERS))
    return Rendered(_fill(ANSWERS[i], v=value, Label=label.capitalize()), {slot.name: value}, f"answer:{i}")


def _money(value: Any) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:.2f}".rstrip("0").rstrip(".")
    return str(value)


# --------------------------------------------------------------------------- agent replies


def reply(rng: random.Random, kind: str, facts: list[str], must_say: list[str], brand: str,
          ask: list[str] | None = None) -> tuple[str, str]:
    """(text, template id) of the agent's reply; facts are quoted, never invented."""
    if kind == "clarify":
        i = rng.randrange(len(CLARIFY))
        lead = f"{' '.join(facts)} " if facts else ""
        # The labels' examples ("like O12345") are for the model, not the customer: an id no
        # fact supports fails the service's reply check.
        asks = " and ".join(_EXAMPLE.sub("", a) for a in ask or ["a few more details"])
        return _fill(CLARIFY[i], asks=asks, lead=lead), f"clarify:{i}"
    if kind == "end":
        i = rng.randrange(len(END))
        return _fill(END[i], brand=brand), f"end:{i}"
    if kind == "answer":
        i = rng.randrange(len(ANSWER))
        return _fill(ANSWER[i], fact=facts[0] if facts else ""), f"answer:{i}"
    body = " ".join(facts)
    quoted = [v for v in must_say if v not in body]
    if quoted:
        body += f" Your reference: {', '.join(quoted)}."
    o, c = rng.randrange(len(OPENERS[kind])), rng.randrange(len(CLOSERS[kind]))
    opener = "" if body.lower().startswith("i'm sorry") and "sorry" in OPENERS[kind][o] else OPENERS[kind][o]
    return " ".join(f"{opener}{body}{CLOSERS[kind][c]}".split()), f"{kind}:{o}.{c}"


# A note a colleague reads at a glance, and a target the served model can finish within the
# hand-over agent's max_tokens (notes of 400 characters ran past them and ended as broken JSON).
SUMMARY_CHARS, SUMMARY_DONE_CHARS = 300, 150


def summary(rng: random.Random, user_id: str | None, verified: bool, intent: str | None,
            slots: dict[str, Any], done: list[str], refused: list[str], reason: str) -> str:
    """A hand-over note a colleague can act on: who, what, what was done, why."""
    who = f"{user_id or 'unknown'}" + ("" if verified else " (not verified)")
    detail = ", ".join(f"{k} {v}" for k, v in slots.items() if v is not None)
    want = f"about {_words(intent)}" + (f" ({detail})" if detail else "") if intent else "with an unclear request"
    done = [d for d in done if d not in refused]  # a refusal is told once, as refused
    did = (f"Done: {'; '.join(done)}" if done else "Nothing was done yet.") + (
        f" Refused: {'; '.join(refused)}" if refused else "")
    if len(did) > SUMMARY_DONE_CHARS:  # the reason for the transfer must still fit
        did = did[:SUMMARY_DONE_CHARS].rsplit(" ", 1)[0] + " ..."
    text = _fill(rng.choice(SUMMARIES), who=who, want=want, done=did.rstrip(".") + ".", reason=_words(reason))
    return " ".join(text.split())[:SUMMARY_CHARS]
