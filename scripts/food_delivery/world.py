"""The LanternEats world: users, restaurants, riders, orders and their history, built
deterministically from a seeded random generator.

``World`` keeps every table as a list of rows and offers builders that tasks use to craft the
records a case needs ("a regular member with 3 claims this month whose order arrived 29.5
minutes late"). Times are relative to the pack clock NOW.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

NOW = datetime(2025, 6, 14, 20, 0, 0)

FIRST = ["Wei", "Fang", "Na", "Jun", "Xiaoming", "Mei", "Hao", "Yan", "Ting", "Lei", "Jing", "Qiang", "Yu", "Zhen", "Hui", "Anna", "Carlos", "Priya", "Tom", "Sofia", "Kenji", "Amara", "Lucas", "Olga", "Yusuf", "Emma", "Diego", "Hana", "Raj", "Chloe", "Ivan", "Nadia", "Omar", "Lena", "Sam", "Min", "Bo", "Xue", "Lin", "Kai", "Rui", "Ying", "Tao", "Chen", "Ama", "Jonas", "Ines", "Mateo", "Aiko", "Farah"]
LAST = ["Wang", "Li", "Zhang", "Liu", "Chen", "Yang", "Huang", "Zhao", "Wu", "Zhou", "Xu", "Sun", "Ma", "Zhu", "Hu", "Guo", "He", "Lin", "Luo", "Gao", "Muller", "Silva", "Sharma", "Tanaka", "Okafor", "Kim", "Novak", "Rossi", "Haddad", "Smith", "Dubois", "Petrov", "Mensah", "Costa"]
ROADS = ["Huaihai Middle Road", "Nanjing West Road", "Century Avenue", "Fuxing Road", "Changle Road", "Yan'an East Road", "Zhaojiabang Road", "Wuding Road", "Xinhua Road", "Hengshan Road", "Dagu Road", "Julu Road"]
DISTRICTS = ["Xuhui", "Jing'an", "Huangpu", "Pudong", "Changning", "Putuo", "Yangpu", "Hongkou"]

MERCHANTS = [
    ("Golden Dragon Noodles", "noodles", [("Beef Noodle Soup", 32), ("Dan Dan Noodles", 26), ("Wonton Soup", 22), ("Scallion Pancake", 12), ("Braised Pork Rice", 35)]),
    ("Mama Rosa's Pizza", "pizza", [("Margherita Pizza", 68), ("Pepperoni Pizza", 78), ("Garlic Bread", 18), ("Caesar Salad", 32), ("Tiramisu", 28)]),
    ("Sichuan Spice House", "sichuan", [("Mapo Tofu", 38), ("Kung Pao Chicken", 42), ("Twice-Cooked Pork", 46), ("Steamed Rice", 3), ("Smashed Cucumber", 14)]),
    ("Sakura Sushi", "japanese", [("Salmon Nigiri Set", 88), ("California Roll", 42), ("Miso Soup", 12), ("Edamame", 15), ("Unagi Don", 72)]),
    ("Burger Barn", "burgers", [("Classic Burger", 39), ("Cheese Fries", 19), ("Chicken Wings", 29), ("Chocolate Milkshake", 22), ("Onion Rings", 16)]),
    ("Dim Sum Palace", "cantonese", [("Har Gow", 28), ("Siu Mai", 26), ("Char Siu Bao", 18), ("Egg Tart", 12), ("Spring Rolls", 16)]),
    ("Green Bowl Salads", "salads", [("Quinoa Bowl", 45), ("Chicken Caesar Wrap", 36), ("Fresh Orange Juice", 18), ("Avocado Toast", 32)]),
    ("Seoul Kitchen", "korean", [("Bibimbap", 48), ("Korean Fried Chicken", 58), ("Kimchi Pancake", 26), ("Tteokbokki", 32)]),
    ("Curry Corner", "indian", [("Butter Chicken", 52), ("Garlic Naan", 10), ("Chana Masala", 36), ("Mango Lassi", 16), ("Samosa", 14)]),
    ("Bubble Tea Lab", "drinks", [("Brown Sugar Boba", 18), ("Taro Milk Tea", 16), ("Mango Smoothie", 20), ("Cheese Foam Oolong", 19)]),
    ("Hotpot Express", "hotpot", [("Beef Hotpot Set", 128), ("Vegetable Platter", 38), ("Fish Balls", 22), ("Sesame Sauce", 6)]),
    ("Taco Fiesta", "mexican", [("Beef Tacos", 42), ("Chicken Burrito", 45), ("Nachos", 28), ("Guacamole", 16)]),
    ("Pho Saigon", "vietnamese", [("Beef Pho", 42), ("Banh Mi", 28), ("Fresh Spring Rolls", 24), ("Vietnamese Iced Coffee", 18)]),
    ("Roast Duck House", "cantonese", [("Half Roast Duck", 88), ("Duck Pancakes", 22), ("Yangzhou Fried Rice", 28), ("Garlic Bok Choy", 18)]),
    ("Le Petit Cafe", "cafe", [("Butter Croissant", 14), ("Latte", 26), ("Quiche Lorraine", 38), ("New York Cheesecake", 32)]),
    ("Skewer Street 88", "bbq", [("Lamb Skewers", 35), ("Chicken Heart Skewers", 12), ("Grilled Corn", 8), ("Tsingtao Beer", 12)]),
    ("Dumpling King", "dumplings", [("Pork Dumplings", 28), ("Shrimp Dumplings", 36), ("Hot and Sour Soup", 16), ("Cold Sesame Noodles", 22)]),
    ("Thai Orchid", "thai", [("Pad Thai", 46), ("Green Curry", 52), ("Tom Yum Soup", 42), ("Mango Sticky Rice", 26)]),
    ("Morning Congee", "breakfast", [("Preserved Egg Congee", 18), ("Fried Dough Stick", 5), ("Soy Milk", 6), ("Pickled Vegetables", 4)]),
    ("Steakhouse 21", "steak", [("Ribeye Steak", 198), ("Mashed Potatoes", 28), ("House Red Wine", 88), ("Wedge Salad", 42)]),
]

MERCHANT_NOTES = {
    4: "Closed on Mondays. Please call before sending riders after 22:00.",
    9: "Drinks are sealed; spills usually mean the seal was opened.",
}

PROMOTIONS = [
    ("SUMMER15", "Summer special: 15 off orders over 60", 15, 60, "2025-06-01", "2025-08-31", None, False),
    ("WELCOME20", "Welcome gift for new customers", 20, 40, "2025-01-01", "2025-12-31", None, True),
    ("DIAMOND25", "Diamond members: 25 off orders over 100", 25, 100, "2025-06-01", "2025-06-30", "diamond", False),
    ("GOLDWEEK", "Gold week: 12 off orders over 50", 12, 50, "2025-06-09", "2025-06-15", "gold,diamond", False),
    ("SPRING10", "Spring treat: 10 off orders over 30", 10, 30, "2025-03-01", "2025-05-31", None, False),
    ("NIGHTOWL8", "Night owl: 8 off orders over 35 after 21:00", 8, 35, "2025-06-01", "2025-06-30", None, False),
    ("LUNCH5", "Lunch deal: 5 off orders over 25", 5, 25, "2025-05-01", "2025-07-31", None, False),
    ("BOBA18", "Bubble tea: 18 off orders over 36", 18, 36, "2025-06-10", "2025-06-20", None, False),
]


def iso(t: datetime) -> str:
    return t.replace(microsecond=0).isoformat()


def money(x: float) -> float:
    return round(x + 1e-9, 2)


class World:
    """All fixture rows, plus builders for the records tasks need."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.tables: dict[str, list[dict]] = {t: [] for t in (
            "users", "merchants", "riders", "promotions", "orders", "order_items", "payments",
            "compensations", "coupons", "tickets", "handoffs", "contacts", "invoices")}
        self._ids: dict[str, int] = {}
        self._names: set[str] = set()
        self._static()

    # -- ids and names --------------------------------------------------------------------

    def next_id(self, prefix: str, width: int, start: int = 1) -> str:
        n = self._ids.get(prefix, start - 1) + 1
        self._ids[prefix] = n
        return f"{prefix}{n:0{width}d}"

    def person(self) -> str:
        for _ in range(1000):
            name = f"{self.rng.choice(FIRST)} {self.rng.choice(LAST)}"
            if name not in self._names:
                self._names.add(name)
                return name
        raise RuntimeError("ran out of names")

    def address(self) -> str:
        r = self.rng
        return f"{r.randint(1, 999)} {r.choice(ROADS)}, {r.choice(DISTRICTS)} District, Shanghai"

    def phone(self) -> str:
        return f"1{self.rng.choice('3589')}{self.rng.randint(0, 9)}{self.rng.randint(10000000, 99999999)}"

    # -- static tables --------------------------------------------------------------------

    def _static(self) -> None:
        for i, (name, cuisine, _) in enumerate(MERCHANTS):
            self.tables["merchants"].append({
                "merchant_id": f"M{i + 1:03d}", "name": name, "cuisine": cuisine, "phone": f"021-{5000 + i * 37:04d}{i:02d}",
                "rating": round(self.rng.uniform(4.1, 4.9), 1), "note": MERCHANT_NOTES.get(i),
            })
        for i in range(25):
            self.tables["riders"].append({
                "rider_id": f"R{i + 1:03d}", "name": self.person(), "phone": self.phone(),
                "rating": round(self.rng.uniform(4.3, 5.0), 1), "vehicle": self.rng.choice(["e-bike", "e-bike", "scooter", "bicycle", "car"]),
            })
        for code, title, disc, mins, start, end, tiers, new_only in PROMOTIONS:
            self.tables["promotions"].append({
                "promo_code": code, "title": title, "discount": float(disc), "min_spend": float(mins),
                "valid_from": f"{start}T00:00:00", "valid_until": f"{end}T23:59:59", "tiers": tiers, "new_users_only": new_only,
            })

    def merchant(self, index: int | None = None) -> dict:
        return self.tables["merchants"][self.rng.randrange(len(MERCHANTS)) if index is None else index]

    def menu(self, merchant: dict) -> list[tuple[str, int]]:
        return MERCHANTS[int(merchant["merchant_id"][1:]) - 1][2]

    # -- users ----------------------------------------------------------------------------

    def user(self, tier: str | None = None, status: str = "active", joined_days: int | None = None) -> dict:
        tier = tier or self.rng.choice(["regular", "regular", "regular", "silver", "silver", "gold", "diamond"])
        name = self.person()
        row = {
            "user_id": self.next_id("U", 4), "name": name, "phone": self.phone(),
            "email": f"{name.lower().replace(' ', '.')}{self.rng.randint(1, 99)}@example.com",
            "tier": tier, "account_status": status,
            "joined_at": iso(NOW - timedelta(days=joined_days or self.rng.randint(40, 1400), hours=self.rng.randint(0, 23))),
            "default_address": self.address(),
        }
        self.tables["users"].append(row)
        return row

    # -- orders ---------------------------------------------------------------------------

    def order(self, user: dict, status: str = "delivered", *, late: float = 0.0, delivered_ago: float = 90.0,
              placed_ago: float | None = None, merchant: int | None = None, items: list[tuple[str, int, int]] | None = None,
              n_items: int | None = None, note: str | None = None, fee: float | None = None,
              promo: str | None = None, discount: float = 0.0, cancel_reason: str | None = None,
              payment: str = "captured") -> dict:
        """An order with items and a payment. Times: ``late`` minutes after the promise it was
        delivered (or is now, if not delivered), ``delivered_ago`` minutes before NOW."""
        r = self.rng
        m = self.merchant(merchant)
        if items is None:
            menu = self.menu(m)
            picks = r.sample(menu, k=min(n_items or r.randint(1, 3), len(menu)))
            items = [(name, price, r.choice([1, 1, 1, 2])) for name, price in picks]
        eta = timedelta(minutes=r.choice([30, 35, 40, 45]))
        if status == "delivered":
            delivered = NOW - timedelta(minutes=delivered_ago)
            promised = delivered - timedelta(minutes=late)
            placed = promised - eta
        elif status in ("delivering", "preparing") and placed_ago is None:
            promised = NOW - timedelta(minutes=late)
            placed, delivered = promised - eta, None
        else:
            placed = NOW - timedelta(minutes=placed_ago if placed_ago is not None else r.randint(1, 3))
            promised, delivered = placed + eta, None
        if status == "cancelled":
            delivered = None
        order_id = self.next_id("O", 5, start=10001)
        subtotal = money(sum(price * qty for _, price, qty in items))
        fee = float(r.choice([0, 3, 5, 6]) if fee is None else fee)
        row = {
            "order_id": order_id, "user_id": user["user_id"], "merchant_id": m["merchant_id"],
            "rider_id": None if status in ("placed", "cancelled") else r.choice(self.tables["riders"])["rider_id"],
            "status": status, "placed_at": iso(placed), "promised_at": iso(promised),
            "delivered_at": iso(delivered) if delivered else None,
            "subtotal": subtotal, "delivery_fee": fee, "discount": float(discount),
            "total": money(subtotal + fee - discount), "payment_method": r.choice(["card", "wallet", "alipay", "wechat_pay"]),
            "promo_code": promo, "delivery_address": user["default_address"], "customer_note": note,
            "cancel_reason": cancel_reason if status == "cancelled" else None,
        }
        if status == "preparing" and placed_ago is not None:
            row["placed_at"] = iso(NOW - timedelta(minutes=placed_ago))
            row["promised_at"] = iso(NOW - timedelta(minutes=placed_ago) + eta)
        self.tables["orders"].append(row)
        for k, (name, price, qty) in enumerate(items, start=1):
            self.tables["order_items"].append({
                "item_id": f"I{order_id[1:]}{k:02d}", "order_id": order_id, "name": name, "quantity": qty, "unit_price": float(price)})
        pay_status = "refunded" if status == "cancelled" and payment == "captured" else payment
        self.pay(row, pay_status)
        return row

    def items_of(self, order: dict) -> list[dict]:
        return [i for i in self.tables["order_items"] if i["order_id"] == order["order_id"]]

    def pay(self, order: dict, status: str, minutes_after: float = 0.0) -> dict:
        row = {"payment_id": self.next_id("P", 5), "order_id": order["order_id"], "user_id": order["user_id"],
               "amount": order["total"], "method": order["payment_method"], "status": status,
               "created_at": iso(datetime.fromisoformat(order["placed_at"]) + timedelta(minutes=minutes_after))}
        self.tables["payments"].append(row)
        return row

    # -- history --------------------------------------------------------------------------

    def compensate(self, order: dict, kind: str, amount: float, reason: str, days_ago: float,
                   item: dict | None = None, status: str = "completed") -> dict:
        row = {"comp_id": self.next_id("C", 5), "user_id": order["user_id"], "order_id": order["order_id"],
               "item_id": item["item_id"] if item else None, "kind": kind, "amount": money(amount), "reason": reason,
               "status": status, "created_at": iso(NOW - timedelta(days=days_ago))}
        self.tables["compensations"].append(row)
        return row

    def claims(self, user: dict, days_ago: list[float]) -> None:
        """Past compensation claims of ``user``, each on its own old order."""
        for days in days_ago:
            order = self.order(user, delivered_ago=days * 1440 + 60, late=self.rng.choice([35, 40, 50]))
            self.compensate(order, "coupon", 5.0, "late_delivery", days)

    def coupon(self, user: dict, value: float, min_spend: float, status: str, expires_in_days: float,
               source: str = "promotion", promo: str | None = None) -> dict:
        expires = NOW + timedelta(days=expires_in_days)
        row = {"coupon_id": self.next_id("CP", 5), "user_id": user["user_id"], "value": float(value),
               "min_spend": float(min_spend), "source": source, "promo_code": promo, "status": status,
               "issued_at": iso(expires - timedelta(days=30)), "expires_at": iso(expires)}
        self.tables["coupons"].append(row)
        return row

    def invoice(self, order: dict, title: str, days_ago: float) -> dict:
        row = {"invoice_id": self.next_id("INV", 5), "order_id": order["order_id"], "title": title, "tax_id": None,
               "amount": order["total"], "created_at": iso(NOW - timedelta(days=days_ago))}
        self.tables["invoices"].append(row)
        return row

    # -- background -----------------------------------------------------------------------

    def background(self, users: int) -> None:
        """Ordinary customers with ordinary histories, so the tables look like a real service."""
        r = self.rng
        for _ in range(users):
            user = self.user()
            for _ in range(r.randint(1, 4)):
                days = r.uniform(1, 100)
                status = "cancelled" if r.random() < 0.08 else "delivered"
                order = self.order(user, status, late=r.choice([-5, 0, 3, 8, 12, 20, 35]), delivered_ago=days * 1440,
                                   placed_ago=days * 1440 if status == "cancelled" else None,
                                   cancel_reason="changed_mind" if status == "cancelled" else None)
                if status == "delivered" and r.random() < 0.12:
                    self.compensate(order, "coupon", 5.0, "late_delivery", days - 0.01)
                if status == "delivered" and r.random() < 0.1:
                    self.invoice(order, user["name"], days - 0.5)
            if r.random() < 0.5:
                code, _, disc, mins, *_ = r.choice(PROMOTIONS)
                self.coupon(user, disc, mins, r.choice(["active", "active", "used", "expired"]), r.uniform(-20, 25), promo=code)
        for _ in range(6):
            self.tables["tickets"].append({"ticket_id": self.next_id("T", 5), "user_id": r.choice(self.tables["users"])["user_id"],
                                           "order_id": None, "category": r.choice(["other", "payment_issue"]), "priority": "normal",
                                           "status": "closed", "created_at": iso(NOW - timedelta(days=r.uniform(5, 60)))})
