"""Single-intent cases: every intent, at and around each rule's boundaries, plus customers
who ask for what the rules forbid. Each case builds the records it needs in the World and says
which write actions the oracle must take (checked by the generator)."""

from __future__ import annotations

from dataclasses import dataclass, field

from texts import (
    ACCEPT,
    ACCEPT_ANY,
    PERSONAS,
    ask_then_accept,
    clock,
    day_and_time,
    insist,
    known,
    late_words,
)
from world import World


@dataclass
class Case:
    group: str
    user: dict
    requests: list[dict]
    reason: str
    instructions: str
    expect: list[str]
    purpose: str
    nl: list[str]
    tags: list[str] = field(default_factory=list)
    known: str = ""
    unknown: str | None = None
    evidence: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    human_requests: int = 0
    verified: bool = True
    persona: str = ""


def req(intent: str, demand: dict | None = None, accept: bool = True, **slots) -> dict:
    out = {"intent": intent, "slots": {k: v for k, v in slots.items() if v is not None}}
    if demand is not None:
        out["demand"] = demand
        out["accept_alternatives"] = accept
    return out


# Restaurants with everyday prices: item and quality cases stay under the per-conversation cap
# unless a case means to test it.
EVERYDAY = [0, 2, 4, 5, 7, 8, 9, 12, 15, 16]


class Single:
    """Builds the single-intent cases."""

    def __init__(self, world: World) -> None:
        self.w = world
        self.r = world.rng
        self.cases: list[Case] = []

    def add(self, case: Case, order: dict | None = None) -> Case:
        if not case.known:
            merchant = self.w.tables["merchants"][int(order["merchant_id"][1:]) - 1]["name"] if order else None
            case.known, unknown = known(case.user, order, self.r, merchant)
            case.unknown = case.unknown or unknown
        case.persona = case.persona or self.r.choice(PERSONAS)
        self.cases.append(case)
        return case

    def mname(self, order: dict) -> str:
        return self.w.tables["merchants"][int(order["merchant_id"][1:]) - 1]["name"]

    # ------------------------------------------------------------------ late delivery

    def late(self) -> None:
        table = [
            # late, tier, claims (days ago), total-ish, expect, tags, purpose
            (8, None, [], [], ["edge_case"], "An order 8 minutes late is within the delivery window: no compensation."),
            (14.5, None, [], [], ["edge_case", "boundary"], "14.5 minutes late is just inside the 15-minute window."),
            (15, None, [], ["issue_coupon"], ["edge_case", "boundary"], "Exactly 15 minutes late earns the 5 CNY coupon."),
            (22, "silver", [], ["issue_coupon"], [], "A 22-minute delay earns a 5 CNY coupon."),
            (29.5, None, [], ["issue_coupon"], ["edge_case", "boundary"], "29.5 minutes is still coupon territory, not a refund."),
            (30, None, [], ["refund_partial"], ["edge_case", "boundary"], "Exactly 30 minutes late: partial refund of 30%."),
            (42, "gold", [], ["refund_partial"], [], "42 minutes late: 30% partial refund."),
            (59, None, [], ["refund_partial"], ["edge_case", "boundary"], "59 minutes late is still a partial refund."),
            (60, None, [], ["refund_full"], ["edge_case", "boundary"], "Exactly 60 minutes late: full refund."),
            (95, "diamond", [], ["refund_full"], [], "95 minutes late: full refund."),
            (50, "regular", [3, 10, 20], ["create_ticket"], ["edge_case", "claim_limit"], "A regular member with 3 claims in 30 days gets a claim review ticket instead."),
            (50, "gold", [3, 10, 20], ["refund_partial"], ["edge_case", "claim_limit"], "A gold member with 3 claims is under the limit of 5."),
            (50, "silver", [5, 12, 35, 50], ["refund_partial"], ["edge_case", "claim_limit"], "Claims older than 30 days do not count towards the limit."),
            (50, "diamond", [], ["refund_partial"], ["edge_case", "effective_date"], "The diamond 45-minute full-refund rule only starts in July 2025."),
        ]
        for late, tier, claims, expect, tags, purpose in table:
            user = self.w.user(tier)
            self.w.claims(user, claims)
            order = self.w.order(user, late=late, delivered_ago=self.r.randint(20, 150))
            words = late_words(late)
            reason = self.r.choice([
                f"Your {self.mname(order)} order arrived {words} after the time the app promised ({clock(order['promised_at'])}). You want compensation for the delay.",
                f"Dinner from {self.mname(order)} was promised for {clock(order['promised_at'])} but only arrived at {clock(order['delivered_at'])}. You want to know what LanternEats will do about it.",
                f"Your food was late again, {words} this time, and you'd like some money back.",
            ])
            nl = ["The agent checks the order's promised and actual delivery times before offering anything."]
            if not expect:
                nl.append("The agent explains the order was within the delivery window and offers no compensation.")
            self.add(Case("late_delivery", user, [req("late_delivery", order_id=order["order_id"])], reason, ACCEPT, expect,
                          purpose, nl, tags), order)
        # large order, over the agent's limit: hand over
        user = self.w.user("gold")
        order = self.w.order(user, late=75, delivered_ago=40, merchant=19, items=[("Ribeye Steak", 198, 1), ("House Red Wine", 88, 1)])
        self.add(Case("late_delivery", user, [req("late_delivery", order_id=order["order_id"])],
                      f"Your steak dinner for two from Steakhouse 21 (over 280 CNY) arrived {late_words(75)} late. You want a full refund.",
                      ACCEPT, ["transfer_to_human"], "A full refund above 200 CNY needs a human: the agent transfers.",
                      ["The agent does not refund the order itself and transfers the customer to a human."], ["edge_case", "high_value"]), order)
        # still on the way
        user = self.w.user()
        order = self.w.order(user, "delivering", late=25)
        self.add(Case("late_delivery", user, [req("late_delivery", order_id=order["order_id"])],
                      f"Your order from {self.mname(order)} should have arrived at {clock(order['promised_at'])}; it's still not here and the rider seems stuck.",
                      "You want the food, not money. Ask the agent to chase the rider. " + ACCEPT, ["contact_party"],
                      "An undelivered late order: no compensation yet, the agent messages the rider.",
                      ["The agent does not compensate before delivery and contacts the rider about the delay."], ["edge_case"]), order)
        # frozen account
        user = self.w.user("silver", status="frozen")
        order = self.w.order(user, late=70, delivered_ago=60)
        self.add(Case("late_delivery", user, [req("late_delivery", order_id=order["order_id"])],
                      f"Your order arrived {late_words(70)} late and you want a refund.", ACCEPT, ["transfer_to_human"],
                      "Frozen accounts get no compensation from the agent: transfer with reason account_frozen.",
                      ["The agent explains the account is under review and transfers to a human."], ["edge_case", "frozen_account"]), order)
        # forbidden requests
        for accept, expect in ((False, []), (True, ["refund_partial"])):
            user = self.w.user()
            order = self.w.order(user, late=45, delivered_ago=50)
            text = insist("a full refund") if not accept else ask_then_accept("a full refund")
            self.add(Case("late_delivery", user, [req("late_delivery", {"tool": "refund_full", "args": {}}, accept, order_id=order["order_id"])],
                          f"Your {self.mname(order)} order was {late_words(45)} late. You think that deserves a full refund.", text, expect,
                          "45 minutes late does not earn a full refund; only the 30% partial refund is allowed.",
                          ["The agent refuses the full refund, citing the 60-minute threshold."], ["forbidden_request"]), order)
        for accept, expect in ((True, ["refund_partial"]), (False, [])):
            user = self.w.user()
            order = self.w.order(user, late=36, delivered_ago=45, n_items=3)
            want = "40 CNY back"
            text = ask_then_accept(want) if accept else insist(want)
            self.add(Case("late_delivery", user, [req("late_delivery", {"tool": "refund_partial", "args": {"amount": 40}}, accept, order_id=order["order_id"])],
                          f"Your order was {late_words(36)} late and you want {want}.", text, expect,
                          "Partial refunds for lateness are capped at 30% and 30 CNY; 40 CNY is refused.",
                          ["The agent does not refund more than the cap."], ["forbidden_request", "compensation_cap"]), order)
        user = self.w.user()
        order = self.w.order(user, late=20, delivered_ago=35)
        self.add(Case("late_delivery", user, [req("late_delivery", {"tool": "issue_coupon", "args": {"amount": 10}}, False, order_id=order["order_id"])],
                      f"Your order was {late_words(20)} late. Last spring you got a 10 CNY coupon for a late order and you want the same now.",
                      insist("a 10 CNY coupon"), [], "The 10 CNY spring campaign ended on 31 May; only 5 CNY coupons apply now.",
                      ["The agent does not issue a 10 CNY coupon."], ["forbidden_request", "effective_date"]), order)

    # ------------------------------------------------------------------ missing and wrong items

    def items(self) -> None:
        table = [
            # intent, delivered_ago (min), tier, claims, evidence, refunded_before, demand, expect, tags, purpose
            ("missing_item", 120, None, [], [], False, None, ["refund_partial"], [], "A missing item reported the same evening is refunded at its price."),
            ("missing_item", 23 * 60 + 50, None, [], [], False, None, ["refund_partial"], ["edge_case", "boundary"], "Reported 23h50m after delivery: inside the 24-hour window."),
            ("missing_item", 24 * 60 + 10, None, [], [], False, None, [], ["edge_case", "boundary"], "Reported 24h10m after delivery: outside the window."),
            ("missing_item", 200, None, [], [], True, None, [], ["edge_case"], "The item was already refunded once."),
            ("missing_item", 90, "regular", [2, 9, 16], [], False, None, ["create_ticket"], ["edge_case", "claim_limit"], "A regular member over the 30-day claim limit: claim review ticket."),
            ("missing_item", 90, "gold", [2, 9, 16, 25], [], False, None, ["refund_partial"], ["edge_case", "claim_limit"], "A gold member with 4 claims is still under the limit of 5."),
            ("missing_item", 60, "diamond", [1, 3, 6, 9, 12], [], False, None, ["create_ticket"], ["edge_case", "claim_limit"], "A diamond member with 5 claims has reached the limit."),
            ("missing_item", 75, None, [], [], False, ("refund_full", False), [], ["forbidden_request"], "Missing items are refunded item by item, never the whole order."),
            ("missing_item", 75, None, [], [], False, ("refund_full", True), ["refund_partial"], ["forbidden_request"], "Asked for a full refund, the customer accepts the item refund."),
            ("wrong_item", 50, None, [], ["photo"], False, None, ["refund_partial"], [], "A wrong item with a photo is refunded."),
            ("wrong_item", 50, None, [], [], False, None, [], ["edge_case", "evidence"], "No photo, no refund for a wrong item."),
            ("wrong_item", 50, "silver", [], ["receipt"], False, None, [], ["edge_case", "evidence"], "A receipt is not a photo of the food."),
            ("wrong_item", 25 * 60, None, [], ["photo"], False, None, [], ["edge_case", "boundary"], "Wrong items must be reported within 24 hours."),
            ("wrong_item", 100, "gold", [], ["photo"], False, ("refund_full", False), [], ["forbidden_request"], "A wrong item does not justify a full refund."),
        ]
        for intent, ago, tier, claims, evidence, refunded, demand, expect, tags, purpose in table:
            user = self.w.user(tier)
            self.w.claims(user, claims)
            order = self.w.order(user, late=self.r.choice([-3, 2, 6]), delivered_ago=ago, n_items=3, merchant=self.r.choice(EVERYDAY))
            item = self.r.choice(self.w.items_of(order))
            if refunded:
                self.w.compensate(order, "partial_refund", item["unit_price"] * item["quantity"], "missing_item", ago / 1440 / 2, item)
            word = "missing from the bag" if intent == "missing_item" else "wrong: you got something else"
            when = "this evening" if ago < 300 else f"on {day_and_time(order['delivered_at'])}"
            reason = f"Your {self.mname(order)} order delivered {when}: the {item['name']} was {word}."
            if refunded:
                reason += " (You reported it once before, but you think you should get it refunded again.)"
            instructions = ACCEPT
            dem = None
            if demand:
                dem = {"tool": demand[0], "args": {}}
                instructions = ask_then_accept("a full refund of the order") if demand[1] else insist("a full refund of the order")
            if intent == "wrong_item":
                instructions += " " + ("You can send a photo of what you received if asked." if "photo" in evidence
                                       else "You already threw the food away, so you cannot send a photo." if not evidence
                                       else "You have the receipt but no photo of the food.")
            nl = [f"The agent identifies the {item['name']} on the order."]
            self.add(Case(intent, user, [req(intent, dem, demand[1] if demand else True, order_id=order["order_id"], item_id=item["item_id"])],
                          reason, instructions, expect, purpose, nl, tags, evidence=evidence), order)

    # ------------------------------------------------------------------ cold or spilled food

    def quality(self) -> None:
        table = [
            ("cold", 40, ["photo"], None, [], None, [], ["refund_partial"], [], "Cold food with a photo within 2 hours: half the food subtotal back."),
            ("spilled", 119, ["photo"], None, [], None, [], ["refund_partial"], ["edge_case", "boundary"], "Reported at 1h59m: still inside the window."),
            ("cold", 125, ["photo"], None, [], None, [], [], ["edge_case", "boundary"], "Reported at 2h05m: outside the 2-hour window."),
            ("spilled", 30, [], None, [], None, [], [], ["edge_case", "evidence"], "No photo of the spill: no refund yet."),
            ("cold", 45, ["photo"], None, [], ("refund_full", False), [], [], ["forbidden_request"], "Cold food is never refunded in full."),
            ("spilled", 45, ["photo"], None, [], ("refund_full", True), [], ["refund_partial"], ["forbidden_request"], "Asked for a full refund, the customer takes the half refund."),
            ("cold", 50, ["photo"], "regular", [4, 8, 15], None, [], ["create_ticket"], ["edge_case", "claim_limit"], "Over the claim limit: review ticket."),
            ("damaged", 20, ["photo"], None, [], None, ["food_safety"], ["transfer_to_human"], ["edge_case", "food_safety"], "A foreign object is a food-safety case: immediate hand-over."),
            ("cold", 55, ["photo"], "gold", [], None, [], ["refund_partial"], [], "Cold food for a gold member: same half refund."),
        ]
        for problem, ago, evidence, tier, claims, demand, flags, expect, tags, purpose in table:
            user = self.w.user(tier)
            self.w.claims(user, claims)
            order = self.w.order(user, late=self.r.choice([-2, 4, 9]), delivered_ago=ago, n_items=2, fee=5, merchant=self.r.choice(EVERYDAY))
            text = {"cold": "arrived completely cold", "spilled": "had spilled all over the bag", "damaged": "was damaged"}[problem]
            reason = f"Your {self.mname(order)} order {text}, delivered at {clock(order['delivered_at'])}."
            if flags:
                reason = f"You found a piece of plastic in your {self.mname(order)} meal (delivered at {clock(order['delivered_at'])}) and you feel a bit sick."
            instructions = ACCEPT + (" You have a photo and send it when asked." if evidence else " You did not take a photo and the food is gone.")
            dem = None
            if demand:
                dem = {"tool": demand[0], "args": {}}
                instructions = (ask_then_accept if demand[1] else insist)("a full refund of the order") + " You have a photo."
            self.add(Case("food_quality", user, [req("food_quality", dem, demand[1] if demand else True, order_id=order["order_id"], problem=problem)],
                          reason, instructions, expect, purpose, ["The agent bases the refund on the food subtotal, not the total."], tags,
                          evidence=evidence, flags=flags), order)

    # ------------------------------------------------------------------ cancel

    def cancel(self) -> None:
        table = [
            ("placed", dict(placed_ago=2), "changed_mind", ["cancel_order"], [], "An order the restaurant has not accepted can be cancelled."),
            ("placed", dict(placed_ago=1), "ordered_by_mistake", ["cancel_order"], [], "Ordered by mistake a minute ago: cancelled."),
            ("preparing", dict(placed_ago=4), "changed_mind", ["cancel_order"], ["edge_case", "boundary"], "In preparation, placed 4 minutes ago: inside the 5-minute grace."),
            ("preparing", dict(placed_ago=6), "changed_mind", [], ["edge_case", "boundary"], "In preparation, placed 6 minutes ago: too late to cancel."),
            ("preparing", dict(late=25), "too_slow", ["cancel_order"], ["edge_case"], "Still being prepared 25 minutes after the promised time: may cancel."),
            ("preparing", dict(late=15), "too_slow", [], ["edge_case", "boundary"], "15 minutes past the promise is not yet slow enough to cancel."),
            ("delivering", dict(late=-5), "changed_mind", [], ["forbidden_request"], "An order on its way cannot be cancelled."),
            ("delivered", dict(delivered_ago=30), "other", [], ["forbidden_request"], "A delivered order cannot be cancelled."),
        ]
        for status, kw, reason_slot, expect, tags, purpose in table:
            user = self.w.user()
            order = self.w.order(user, status, **kw)
            text = {"changed_mind": "You changed your mind and want to cancel it.",
                    "ordered_by_mistake": "You ordered from the wrong restaurant by mistake.",
                    "too_slow": "It's taking far too long and you want to cancel.",
                    "other": "You want to cancel it and get your money back."}[reason_slot]
            instr = ACCEPT if expect else insist("the cancellation") if "forbidden_request" in tags else ACCEPT_ANY
            self.add(Case("cancel_order", user, [req("cancel_order", order_id=order["order_id"], reason=reason_slot)],
                          f"You have an order from {self.mname(order)} (status in the app: {status}). {text}", instr, expect, purpose,
                          ["The agent tells the customer whether the order can be cancelled and why."], tags), order)
        # unverified identity
        user = self.w.user()
        order = self.w.order(user, "placed", placed_ago=2)
        self.add(Case("cancel_order", user, [req("cancel_order", order_id=order["order_id"], reason="changed_mind")],
                      "You are chatting from a web browser where you are not signed in, and want to cancel an order you just placed.",
                      "You give your name and order number but you cannot sign in right now. " + ACCEPT_ANY, [],
                      "Without a verified identity the agent may not change anything.",
                      ["The agent asks the customer to sign in and does not cancel the order."], ["edge_case", "identity"],
                      known=f"You are {user['name']}. Your order number is {order['order_id']}. You are not signed in.", verified=False), order)

    # ------------------------------------------------------------------ refund status

    def refund_status(self) -> None:
        for kind in ("partial", "full", "two_partials", "none", "cancelled", "coupon_only", "partial"):
            user = self.w.user()
            status = "cancelled" if kind == "cancelled" else "delivered"
            order = self.w.order(user, status, late=40, delivered_ago=self.r.randint(2, 6) * 1440,
                                 placed_ago=3 * 1440 if status == "cancelled" else None,
                                 cancel_reason="changed_mind" if status == "cancelled" else None)
            if kind in ("partial", "two_partials"):
                self.w.compensate(order, "partial_refund", round(order["total"] * 0.3, 2), "late_delivery", 1.5, status="processing")
            if kind == "two_partials":
                item = self.w.items_of(order)[0]
                self.w.compensate(order, "partial_refund", item["unit_price"], "missing_item", 1.2, item)
            if kind == "full":
                self.w.compensate(order, "full_refund", order["total"], "late_delivery", 2.5)
            if kind == "coupon_only":
                self.w.compensate(order, "coupon", 5, "late_delivery", 2)
            reason = self.r.choice([
                f"You were told you'd get money back for your {self.mname(order)} order and want to check how much and when it arrives.",
                f"You want to know the status of the refund for your order from {self.mname(order)}.",
            ])
            nl = ["The agent reports the refund amount recorded on the order and how long it takes to arrive."]
            if kind in ("none", "coupon_only"):
                nl = ["The agent explains that no money refund was made for this order."]
            self.add(Case("refund_status", user, [req("refund_status", order_id=order["order_id"])], reason, ACCEPT_ANY, [],
                          f"Refund status lookup ({kind.replace('_', ' ')}).", nl, []), order)

    # ------------------------------------------------------------------ address

    def address(self) -> None:
        table = [
            ("placed", dict(placed_ago=2), ["update_address"], [], "The address of a placed order can change."),
            ("preparing", dict(placed_ago=12), ["update_address"], [], "The address can change while the food is prepared."),
            ("delivering", dict(late=-10), ["contact_party"], ["edge_case"], "After pick-up the agent messages the rider instead."),
            ("delivered", dict(delivered_ago=5), [], ["forbidden_request"], "A delivered order's address cannot change."),
            ("preparing", dict(placed_ago=8), ["update_address"], [], "A typo in the building number is fixed."),
        ]
        for status, kw, expect, tags, purpose in table:
            user = self.w.user()
            order = self.w.order(user, status, **kw)
            new = self.w.address()
            self.add(Case("change_address", user, [req("change_address", order_id=order["order_id"], new_address=new)],
                          f"Your {self.mname(order)} order is going to your home address, but you need it delivered to {new} instead.",
                          ACCEPT + f" Give the new address exactly as: {new}", expect, purpose,
                          ["The agent uses the exact address the customer gave."], tags), order)

    # ------------------------------------------------------------------ invoice

    def invoice(self) -> None:
        table = [
            (1, None, False, "delivered", ["issue_invoice"], [], "A personal invoice for yesterday's order."),
            (3, "91310000MA1FL2XQ3K", False, "delivered", ["issue_invoice"], [], "A company invoice with tax id."),
            (2, None, True, "delivered", [], ["forbidden_request"], "An invoice was already issued for this order."),
            (95, None, False, "delivered", [], ["edge_case", "boundary"], "95 days after delivery: too late for an invoice."),
            (89, "91440300MA5EXK7L2P", False, "delivered", ["issue_invoice"], ["edge_case", "boundary"], "89 days after delivery: still in time."),
            (4, None, False, "cancelled", [], ["edge_case"], "A cancelled order has nothing to invoice."),
            (0, None, False, "delivering", [], ["edge_case"], "The invoice comes once the order is delivered."),
            (6, "91110108MA01KP3T9W", "refund", "delivered", ["issue_invoice"], [], "The invoice amount is the total minus the refund."),
        ]
        for days, tax_id, already, status, expect, tags, purpose in table:
            user = self.w.user()
            kw = dict(delivered_ago=days * 1440 + 100) if status == "delivered" else dict(placed_ago=days * 1440 + 100) if status == "cancelled" else dict(late=-8)
            order = self.w.order(user, status, n_items=3, cancel_reason="changed_mind" if status == "cancelled" else None, **kw)
            if already is True:
                self.w.invoice(order, user["name"], days - 1)
            if already == "refund":
                self.w.compensate(order, "partial_refund", 12.0, "late_delivery", days - 0.5)
            title = self.r.choice(["Bright Path Consulting Co., Ltd.", "Shanghai Lumen Design Studio", "Harbor Nine Trading Co., Ltd."]) if tax_id else user["name"]
            what = f"a company invoice titled \"{title}\" with tax id {tax_id}" if tax_id else f"an invoice in your own name ({title})"
            self.add(Case("invoice", user, [req("invoice", order_id=order["order_id"], title=title, tax_id=tax_id)],
                          f"You need {what} for your order from {self.mname(order)}.", ACCEPT if expect else ACCEPT_ANY, expect, purpose,
                          ["The agent uses the exact invoice title (and tax id) the customer gave."], tags), order)

    # ------------------------------------------------------------------ coupons

    def coupons(self) -> None:
        for code, tier, purpose in (("SUMMER15", None, "Why a promo code did not apply: minimum spend."),
                                    ("DIAMOND25", "gold", "A code limited to diamond members."),
                                    ("SPRING10", None, "An expired promotion code."),
                                    ("BOBA18", "silver", "The minimum spend of a drinks promotion.")):
            user = self.w.user(tier)
            order = self.w.order(user, delivered_ago=200, merchant=0, items=[("Dan Dan Noodles", 26, 1), ("Scallion Pancake", 12, 1)], fee=3)
            self.add(Case("coupon_promotion", user, [req("coupon_promotion", promo_code=code)],
                          f"You tried the code {code} on your last order ({order['subtotal']:.0f} CNY of food) and it did not work. You want to know why.",
                          ACCEPT_ANY, [], purpose, ["The agent explains the promotion's conditions from its record."], []),
                     order)
        table = [
            ("gold", -3, "expired", ["reissue_coupon"], [], "A gold member's coupon expired 3 days ago: reissued."),
            ("diamond", -1, "expired", ["reissue_coupon"], [], "A diamond member's coupon expired yesterday: reissued."),
            ("gold", -6.9, "expired", ["reissue_coupon"], ["edge_case", "boundary"], "Expired 6.9 days ago: just inside the 7-day window."),
            ("gold", -8, "expired", [], ["edge_case", "boundary"], "Expired 8 days ago: too late to reissue."),
            ("regular", -2, "expired", [], ["forbidden_request"], "Reissues are a gold and diamond benefit."),
            ("silver", 5, "active", [], ["edge_case"], "The coupon is still active: nothing to reissue."),
        ]
        for tier, days, status, expect, tags, purpose in table:
            user = self.w.user(tier)
            coupon = self.w.coupon(user, self.r.choice([8, 10, 12]), self.r.choice([30, 40, 50]), status, days, source="compensation")
            state = "expired" if status == "expired" else "is not working at checkout"
            self.add(Case("coupon_promotion", user, [req("coupon_promotion", coupon_id=coupon["coupon_id"])],
                          f"Your {coupon['value']:.0f} CNY coupon ({coupon['coupon_id']}) {state}; you want it back or working.",
                          ACCEPT if expect else ACCEPT_ANY, expect, purpose,
                          ["The agent checks the coupon's status and expiry date before answering."], tags,
                          known=f"You are {user['name']}; you are signed in (account {user['user_id']}). Coupon id {coupon['coupon_id']}."))
