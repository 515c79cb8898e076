"""The business backend: isolated copies, an order-independent state hash, any SQLAlchemy URL."""

from __future__ import annotations

import statistics
import time
from datetime import datetime

from wow_ray.scenario import Backend, BackendTemplate, state_diff


def test_copies_are_isolated(food):
    a, b = food.new_backend(), food.new_backend()
    before = b.state_hash()
    assert a.state_hash() == before
    a.update("orders", "O10001", status="cancelled")
    a.commit()
    assert a.get("orders", "O10001")["status"] == "cancelled"
    assert b.get("orders", "O10001")["status"] != "cancelled"
    assert b.state_hash() == before and a.state_hash() != before
    diff = state_diff(b, a)
    assert list(diff) == ["orders"] and diff["orders"]["added"][0]["status"] == "cancelled"


def test_copies_take_milliseconds(food):
    food.new_backend().close()
    times = []
    for _ in range(20):
        start = time.perf_counter()
        food.new_backend().close()
        times.append(time.perf_counter() - start)
    assert statistics.median(times) < 0.05  # measured ~0.1-1 ms; generous for a loaded CI box


def test_state_hash_ignores_row_order(shop):
    from wow_ray.scenario import load_pack

    pack = load_pack(shop)
    rows = pack.fixtures
    forward = BackendTemplate(pack.schema, rows, pack.now).new_backend()
    backward = BackendTemplate(pack.schema, {t: list(reversed(r)) for t, r in rows.items()}, pack.now).new_backend()
    assert forward.state_hash() == backward.state_hash()
    row = {"handoff_id": "H0001", "customer_id": "C001", "reason": "x", "created_at": datetime(2025, 6, 1)}
    forward.insert("handoffs", row)
    assert forward.state_hash() != backward.state_hash()
    backward.insert("handoffs", row)
    assert forward.state_hash() == backward.state_hash()


def test_file_and_url(shop, tmp_path):
    from wow_ray.scenario import load_pack

    pack = load_pack(shop)
    path = pack.template.save(tmp_path / "shop.sqlite")
    opened = Backend.open(f"sqlite:///{path}", pack.schema, pack.fixtures, pack.now)
    assert opened.state_hash() == pack.new_backend().state_hash()
    fresh = Backend.open(f"sqlite:///{tmp_path / 'new.sqlite'}", pack.schema, pack.fixtures, pack.now)
    assert fresh.count("orders") == 2 and fresh.state_hash() == opened.state_hash()


def test_helpers(food):
    db = food.new_backend()
    assert db.next_id("tickets", "T", 5) == "T00007"  # six fixture tickets
    assert db.aggregate("order_items", "count", None, {"order_id": ["O10001", "O10002"]}) == len(
        db.find("order_items", order_id="O10001")) + len(db.find("order_items", order_id="O10002"))
    assert db.aggregate("compensations", "sum", "amount", {"order_id": "nope"}) == 0.0
