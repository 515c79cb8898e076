"""LanternEats tools: one function per tool in tools.yaml, acting on the backend.

Business rules (who may get what) live in rules.yaml and are checked before a write runs; the
functions here only keep the data consistent (the record exists, the item belongs to the
order, nothing is refunded twice beyond what was paid) and raise ToolError otherwise.
Timestamps come from the pack clock (``db.now``), so the same calls leave the same state.
"""

from __future__ import annotations

from datetime import timedelta

from wow_ray.scenario import Backend, ToolError

COUPON_DAYS = 30
REISSUE_DAYS = 7


def _money(value: float) -> float:
    return round(value + 1e-9, 2)


def _refunded(db: Backend, order_id: str) -> float:
    rows = db.find("compensations", order_id=order_id)
    return _money(sum(r["amount"] for r in rows if r["kind"] in ("full_refund", "partial_refund")))


# ---------------------------------------------------------------------------- read


def get_order(db: Backend, order_id: str) -> dict:
    order = db.require("orders", order_id, "order")
    merchant = db.get("merchants", order["merchant_id"])
    rider = db.get("riders", order["rider_id"]) if order["rider_id"] else None
    return {
        "order": order,
        "items": db.find("order_items", order_id=order_id),
        "merchant": {k: merchant[k] for k in ("merchant_id", "name", "cuisine", "phone", "note")},
        "rider": {k: rider[k] for k in ("rider_id", "name", "phone")} if rider else None,
        "payments": db.find("payments", order_id=order_id),
        "compensations": db.find("compensations", order_id=order_id),
        "refunded_total": _refunded(db, order_id),
        "invoices": db.find("invoices", order_id=order_id),
    }


def get_user(db: Backend, user_id: str) -> dict:
    user = db.require("users", user_id, "user")
    since = db.now - timedelta(days=30)
    claims = [c for c in db.find("compensations", user_id=user_id) if c["created_at"] >= since]
    return {**user, "claims_last_30_days": len(claims)}


def list_orders(db: Backend, user_id: str, status: str | None = None, limit: int | None = None) -> list:
    db.require("users", user_id, "user")
    where = {"user_id": user_id, **({"status": status} if status else {})}
    rows = sorted(db.find("orders", **where), key=lambda o: o["placed_at"], reverse=True)
    keys = ("order_id", "status", "placed_at", "total", "merchant_id")
    return [{k: o[k] for k in keys} for o in rows[: limit or 10]]


def list_coupons(db: Backend, user_id: str) -> list:
    db.require("users", user_id, "user")
    return db.find("coupons", order_by="expires_at", user_id=user_id)


def get_promotion(db: Backend, promo_code: str) -> dict:
    return db.require("promotions", promo_code.strip().upper(), "promotion")


# ---------------------------------------------------------------------------- write


def _compensate(db: Backend, order: dict, kind: str, amount: float, reason: str, item_id: str | None = None) -> dict:
    row = {
        "comp_id": db.next_id("compensations", "C", 5),
        "user_id": order["user_id"],
        "order_id": order["order_id"],
        "item_id": item_id,
        "kind": kind,
        "amount": _money(amount),
        "reason": reason,
        "status": "processing",
        "created_at": db.now,
    }
    db.insert("compensations", row)
    return row


def refund_full(db: Backend, order_id: str, reason: str) -> dict:
    order = db.require("orders", order_id, "order")
    amount = _money(order["total"] - _refunded(db, order_id))
    if amount <= 0:
        raise ToolError(f"order {order_id} has already been refunded in full")
    row = _compensate(db, order, "full_refund", amount, reason)
    return {"comp_id": row["comp_id"], "order_id": order_id, "amount": row["amount"],
            "refund_to": order["payment_method"], "status": "processing"}


def refund_partial(db: Backend, order_id: str, amount: float, reason: str, item_id: str | None = None) -> dict:
    order = db.require("orders", order_id, "order")
    if item_id is not None:
        item = db.require("order_items", item_id, "item")
        if item["order_id"] != order_id:
            raise ToolError(f"item {item_id} is not part of order {order_id}")
    if _refunded(db, order_id) + amount > order["total"] + 1e-9:
        raise ToolError(f"refund would exceed the {order['total']:.2f} paid for order {order_id}")
    row = _compensate(db, order, "partial_refund", amount, reason, item_id)
    return {"comp_id": row["comp_id"], "order_id": order_id, "item_id": item_id, "amount": row["amount"],
            "refund_to": order["payment_method"], "status": "processing"}


def issue_coupon(db: Backend, user_id: str, amount: float, reason: str, order_id: str | None = None) -> dict:
    db.require("users", user_id, "user")
    coupon = {
        "coupon_id": db.next_id("coupons", "CP", 5),
        "user_id": user_id,
        "value": _money(amount),
        "min_spend": 0.0,
        "source": "compensation",
        "promo_code": None,
        "status": "active",
        "issued_at": db.now,
        "expires_at": db.now + timedelta(days=COUPON_DAYS),
    }
    db.insert("coupons", coupon)
    if order_id is not None:
        order = db.require("orders", order_id, "order")
        if order["user_id"] != user_id:
            raise ToolError(f"order {order_id} does not belong to {user_id}")
        _compensate(db, order, "coupon", amount, reason)
    return {"coupon_id": coupon["coupon_id"], "amount": coupon["value"],
            "expires_at": coupon["expires_at"]}


def reissue_coupon(db: Backend, coupon_id: str) -> dict:
    old = db.require("coupons", coupon_id, "coupon")
    if old["status"] != "expired":
        raise ToolError(f"coupon {coupon_id} is {old['status']}, not expired")
    db.update("coupons", coupon_id, status="reissued")
    new = {**old, "coupon_id": db.next_id("coupons", "CP", 5), "source": "reissue", "status": "active",
           "issued_at": db.now, "expires_at": db.now + timedelta(days=REISSUE_DAYS)}
    db.insert("coupons", new)
    return {"coupon_id": new["coupon_id"], "value": new["value"], "min_spend": new["min_spend"],
            "expires_at": new["expires_at"]}


def cancel_order(db: Backend, order_id: str, reason: str) -> dict:
    order = db.require("orders", order_id, "order")
    if order["status"] == "cancelled":
        raise ToolError(f"order {order_id} is already cancelled")
    db.update("orders", order_id, status="cancelled", cancel_reason=reason)
    for payment in db.find("payments", order_id=order_id, status="captured"):
        db.update("payments", payment["payment_id"], status="refunded")
    return {"order_id": order_id, "status": "cancelled", "refund_amount": order["total"],
            "refund_to": order["payment_method"]}


def update_address(db: Backend, order_id: str, new_address: str) -> dict:
    db.require("orders", order_id, "order")
    order = db.update("orders", order_id, delivery_address=new_address.strip())
    return {"order_id": order_id, "delivery_address": order["delivery_address"]}


def issue_invoice(db: Backend, order_id: str, title: str, tax_id: str | None = None) -> dict:
    order = db.require("orders", order_id, "order")
    row = {
        "invoice_id": db.next_id("invoices", "INV", 5),
        "order_id": order_id,
        "title": title.strip(),
        "tax_id": tax_id.strip().upper() if tax_id else None,
        "amount": _money(order["total"] - _refunded(db, order_id)),
        "created_at": db.now,
    }
    db.insert("invoices", row)
    return row


def create_ticket(db: Backend, user_id: str, category: str, priority: str, order_id: str | None = None) -> dict:
    db.require("users", user_id, "user")
    if order_id is not None:
        db.require("orders", order_id, "order")
    row = {"ticket_id": db.next_id("tickets", "T", 5), "user_id": user_id, "order_id": order_id,
           "category": category, "priority": priority, "status": "open", "created_at": db.now}
    db.insert("tickets", row)
    return {"ticket_id": row["ticket_id"], "category": category, "priority": priority}


def transfer_to_human(db: Backend, user_id: str, reason: str, order_id: str | None = None) -> dict:
    db.require("users", user_id, "user")
    row = {"handoff_id": db.next_id("handoffs", "H", 5), "user_id": user_id, "order_id": order_id,
           "reason": reason, "created_at": db.now}
    db.insert("handoffs", row)
    return {"handoff_id": row["handoff_id"], "reason": reason, "queue": "human_agents"}


def contact_party(db: Backend, order_id: str, party: str, topic: str) -> dict:
    order = db.require("orders", order_id, "order")
    if party == "rider" and not order["rider_id"]:
        raise ToolError(f"order {order_id} has no rider assigned yet")
    row = {"contact_id": db.next_id("contacts", "K", 5), "order_id": order_id, "party": party,
           "topic": topic, "created_at": db.now}
    db.insert("contacts", row)
    return {"contact_id": row["contact_id"], "party": party, "topic": topic}


def refund_payment(db: Backend, payment_id: str) -> dict:
    payment = db.require("payments", payment_id, "payment")
    if payment["status"] != "duplicate":
        raise ToolError(f"payment {payment_id} is {payment['status']}, not a duplicate charge")
    db.update("payments", payment_id, status="refunded")
    return {"payment_id": payment_id, "amount": payment["amount"], "refund_to": payment["method"]}
