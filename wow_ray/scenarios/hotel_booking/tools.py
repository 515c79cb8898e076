"""Harbor Inn tools: one function per tool in tools.yaml."""

from __future__ import annotations

from wow_ray.scenario import Backend, ToolError


def get_booking(db: Backend, booking_id: str) -> dict:
    booking = db.require("bookings", booking_id, "booking")
    return {**booking, "room_type": db.get("room_types", booking["room_type_id"]),
            "refunds": db.find("refunds", booking_id=booking_id),
            "requests": db.find("requests", booking_id=booking_id)}


def get_guest(db: Backend, guest_id: str) -> dict:
    return db.require("guests", guest_id, "guest")


def cancel_booking(db: Backend, booking_id: str) -> dict:
    booking = db.require("bookings", booking_id, "booking")
    if booking["status"] != "confirmed":
        raise ToolError(f"booking {booking_id} is {booking['status']}")
    db.update("bookings", booking_id, status="cancelled")
    refund = {"refund_id": db.next_id("refunds", "RF", 4), "booking_id": booking_id, "amount": booking["total"],
              "reason": "cancellation", "created_at": db.now}
    db.insert("refunds", refund)
    return {"booking_id": booking_id, "status": "cancelled", "refund_amount": booking["total"]}


def request_late_checkout(db: Backend, booking_id: str, until_hour: int) -> dict:
    db.require("bookings", booking_id, "booking")
    row = {"request_id": db.next_id("requests", "RQ", 4), "booking_id": booking_id, "kind": "late_checkout",
           "value": until_hour, "created_at": db.now}
    db.insert("requests", row)
    return {"request_id": row["request_id"], "check_out_until": f"{until_hour}:00"}


def refund_booking(db: Backend, booking_id: str, amount: float, reason: str) -> dict:
    booking = db.require("bookings", booking_id, "booking")
    if amount > booking["total"]:
        raise ToolError("refund exceeds what was paid")
    row = {"refund_id": db.next_id("refunds", "RF", 4), "booking_id": booking_id, "amount": round(amount, 2),
           "reason": reason, "created_at": db.now}
    db.insert("refunds", row)
    return {"refund_id": row["refund_id"], "amount": row["amount"]}


def transfer_to_human(db: Backend, guest_id: str, reason: str) -> dict:
    db.require("guests", guest_id, "guest")
    row = {"handoff_id": db.next_id("handoffs", "HO", 4), "guest_id": guest_id, "reason": reason, "created_at": db.now}
    db.insert("handoffs", row)
    return {"handoff_id": row["handoff_id"]}
