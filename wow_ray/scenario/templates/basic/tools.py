"""Tools of the __NAME__ pack: one function per tool in tools.yaml, acting on the backend.

Each function takes the backend first, then the tool's parameters. Raise ToolError for a
problem the agent should read (unknown order, wrong state); return JSON-able data.
"""

from wow_ray.scenario import Backend, ToolError


def get_order(db: Backend, order_id: str) -> dict:
    return db.require("orders", order_id, "order")


def cancel_order(db: Backend, order_id: str) -> dict:
    order = db.require("orders", order_id, "order")
    if order["status"] == "cancelled":
        raise ToolError(f"order {order_id} is already cancelled")
    return db.update("orders", order_id, status="cancelled")


def transfer_to_human(db: Backend, customer_id: str, reason: str) -> dict:
    handoff_id = db.next_id("handoffs", "H")
    return db.insert("handoffs", {"handoff_id": handoff_id, "customer_id": customer_id, "reason": reason,
                                  "created_at": db.now})
