"""Plain sentences for what a tool call did: the facts replies rest on, and the safe fallback.

The response agent's model writes the reply from these facts; when its text fails the
grounding checks, the reply is built from the sentences themselves. Built-in packs get
hand-written sentences per tool; any other pack gets a generic one made from the tool's name
and the ids and amounts in its result, which is clumsy but never wrong.
Templates are ``str.format`` strings over the tool's result and arguments (result first);
``{currency}`` is the pack's currency, and numbers under keys that name money are shown as
money (``12.5``, ``30``).
"""

from __future__ import annotations

import string
from typing import Any

_MONEY_KEYS = ("amount", "refund_amount", "value", "total", "refunded_total", "min_spend",
               "discount", "subtotal")

TOOL_SENTENCES: dict[str, dict[str, str]] = {
    "food_delivery": {
        "get_order": "Order {order[order_id]} is {order[status]} (total {order[total]} {currency}; "
                     "{refunded_total} {currency} refunded so far).",
        "get_promotion": "Promotion {promo_code}: minimum spend {min_spend} {currency}, valid "
                         "until {valid_until}.",
        "refund_full": "I've refunded {amount} {currency} for order {order_id} to the original "
                       "payment method.",
        "refund_partial": "I've refunded {amount} {currency} for order {order_id}.",
        "issue_coupon": "I've added a {amount} {currency} coupon ({coupon_id}) to your account.",
        "reissue_coupon": "I've reissued your coupon as {coupon_id}, worth {value} {currency}, "
                          "valid for 7 days.",
        "cancel_order": "Order {order_id} is cancelled and {refund_amount} {currency} will be "
                        "refunded to the original payment method.",
        "update_address": "Order {order_id} will now be delivered to {delivery_address}.",
        "issue_invoice": "Invoice {invoice_id} for {amount} {currency} has been issued for "
                         "order {order_id}.",
        "create_ticket": "I've opened ticket {ticket_id} for our team (priority {priority}).",
        "contact_party": "I've sent a message to the {party} of your order.",
        "refund_payment": "The duplicate charge {payment_id} of {amount} {currency} is refunded "
                          "to your {refund_to}.",
        "transfer_to_human": "A colleague will take over (handover {handoff_id}).",
    },
    "hotel_booking": {
        "get_booking": "Booking {booking_id} is {status}.",
        "cancel_booking": "Booking {booking_id} is cancelled and {refund_amount} {currency} "
                          "will be refunded.",
        "request_late_checkout": "You can check out as late as {check_out_until}.",
        "refund_booking": "I've refunded {amount} {currency} (reference {refund_id}).",
        "transfer_to_human": "A colleague will take over (handover {handoff_id}).",
    },
}


# What an offer proposes, before anything is done ("a refund of 9.6 CNY for order O10185"):
# the noun phrase of "What I can do instead is ...". Never a claim that it was done.
OFFER_PHRASES: dict[str, dict[str, str]] = {
    "food_delivery": {
        "refund_full": "a full refund of order {order_id}",
        "refund_partial": "a refund of {amount} {currency} for order {order_id}",
        "issue_coupon": "a {amount} {currency} coupon",
    },
}


def money(value: Any) -> str:
    """The shortest exact money form, as the packs' ``money()`` writes it (12.5, 30, 12.35)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:.2f}".rstrip("0").rstrip(".")
    return str(value)


class _Values(dict):
    def __missing__(self, key: str) -> str:
        return "?"


def _shown(values: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out[key] = _Values(_shown(value))
        elif key in _MONEY_KEYS:
            out[key] = money(value)
        else:
            out[key] = str(value).replace("_", " ") if key in ("category", "party", "reason") else value
    return out


def tool_sentence(scenario: str, currency: str, tool: str, result: Any,
                  arguments: dict[str, Any]) -> str:
    """One sentence saying what a successful call of ``tool`` did or found."""
    values = _Values(_shown({**arguments, **(result if isinstance(result, dict) else {})}))
    values["currency"] = currency
    template = TOOL_SENTENCES.get(scenario, {}).get(tool)
    if template is not None:
        try:
            text = string.Formatter().vformat(template, (), values)
            if "?" not in text:
                return text
        except (KeyError, IndexError, ValueError, AttributeError, TypeError):
            pass
    return generic_sentence(tool, values, currency)


def offer_phrase(scenario: str, currency: str, tool: str, arguments: dict[str, Any]) -> str:
    """What an offer of ``tool`` with ``arguments`` proposes, as a noun phrase."""
    values = _Values(_shown(arguments))
    values["currency"] = currency
    template = OFFER_PHRASES.get(scenario, {}).get(tool)
    if template is not None:
        text = string.Formatter().vformat(template, (), values)
        if "?" not in text:
            return text
    parts = _ids_and_money(values, currency)
    return f"to {tool.replace('_', ' ')}{' (' + ', '.join(parts) + ')' if parts else ''}"


def generic_sentence(tool: str, values: dict[str, Any], currency: str) -> str:
    """'Done: issue coupon (coupon_id CP00012, amount 5 CNY).' from any result."""
    parts = _ids_and_money(values, currency)
    detail = f" ({', '.join(parts[:4])})" if parts else ""
    return f"Done: {tool.replace('_', ' ')}{detail}."


def _ids_and_money(values: dict[str, Any], currency: str) -> list[str]:
    """The ids and amounts of a call or result, as 'order_id O10001', 'amount 5 CNY'."""
    return [f"{key} {value}{' ' + currency if key in _MONEY_KEYS else ''}"
            for key, value in values.items()
            if key != "currency" and not isinstance(value, dict | list) and value not in (None, "?")
            and (key.endswith("_id") or key in _MONEY_KEYS)]
