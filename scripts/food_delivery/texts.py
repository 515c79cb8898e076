"""Words for tasks: personas, ways of describing times, and how the simulated customer behaves."""

from __future__ import annotations

import random
from datetime import datetime

PERSONAS = [
    "A busy office worker who types short, direct messages.",
    "A polite retired teacher who writes in full sentences and thanks the agent.",
    "A university student, casual and a bit impatient, uses lowercase.",
    "A tired parent ordering for the family, stressed but reasonable.",
    "A non-native English speaker who writes simple sentences.",
    "A frequent customer who knows the app well and expects quick answers.",
    "A sceptical customer who double-checks everything the agent says.",
    "A night-shift nurse, calm but short on time.",
    "A small-business owner who orders for the team and keeps receipts.",
    "An elderly customer who is not confident with apps and needs things explained.",
    "A customer who is angry at first but calms down when treated fairly.",
    "A software engineer who gives precise details and expects precise answers.",
]

ACCEPT = "Accept what the agent offers if it is in line with the policy, and make sure you learn the amount or reference number."
ACCEPT_ANY = "If the agent explains why something is not possible, accept the explanation politely and end the conversation."


def insist(want: str) -> str:
    return (f"You want {want}. If the agent refuses, push back once. If it still refuses, accept that you will not get "
            "it, but do not accept anything else instead.")


def ask_then_accept(want: str) -> str:
    return f"Ask for {want}. If the agent explains that is not possible and offers something else, accept the alternative."


def late_words(minutes: float) -> str:
    if minutes < 5:
        return "a few minutes"
    if minutes < 25:
        return f"around {int(round(minutes / 5) * 5)} minutes"
    if minutes < 40:
        return "about half an hour"
    if minutes < 55:
        return "the best part of an hour"
    if minutes < 80:
        return "about an hour"
    return "well over an hour"


def clock(ts: str) -> str:
    return datetime.fromisoformat(ts).strftime("%H:%M")


def day_and_time(ts: str) -> str:
    return datetime.fromisoformat(ts).strftime("%d %B at %H:%M").lstrip("0")


def known(user: dict, order: dict | None = None, rng: random.Random | None = None, merchant: str | None = None) -> tuple[str, str | None]:
    """known_info and unknown_info: sometimes the customer has the order id, sometimes not."""
    base = f"You are {user['name']}; you are signed in to the LanternEats app (account {user['user_id']})."
    if order is None:
        return base, None
    if rng is not None and rng.random() < 0.25 and merchant:
        return (f"{base} The order was from {merchant}, placed on {day_and_time(order['placed_at'])}.",
                "You don't remember the order number.")
    return f"{base} Your order number is {order['order_id']}.", None
