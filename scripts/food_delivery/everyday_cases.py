"""Complaints, payments, hand-overs, and everyday variety of the common intents."""

from __future__ import annotations

from single_intent_cases import Case, Single, req
from texts import ACCEPT, ACCEPT_ANY, ask_then_accept, clock, insist, late_words


class More(Single):
    """Builds complaint, payment, hand-over and everyday cases."""

    # ------------------------------------------------------------------ complaints

    def complaints(self) -> None:
        table = [
            ("rider_complaint", "rude", "regular", [], ["create_ticket"], [], "A regular member's complaint opens a normal ticket."),
            ("rider_complaint", "rude", "gold", [], ["create_ticket", "issue_coupon"], [], "A gold member also gets a 5 CNY goodwill coupon."),
            ("rider_complaint", "unsafe_driving", "silver", [], ["create_ticket"], [], "Unsafe driving is a high-priority ticket."),
            ("rider_complaint", "wrong_handover", "diamond", [], ["create_ticket", "issue_coupon"], [], "Food left with a neighbour; diamond goodwill coupon."),
            ("rider_complaint", "rude", "gold", [1, 4, 8, 15, 22], ["create_ticket"], ["edge_case", "claim_limit"], "Goodwill coupons count as claims: at the limit, ticket only."),
            ("merchant_complaint", "hygiene", "regular", [], ["create_ticket"], [], "A hygiene complaint is a high-priority ticket."),
            ("merchant_complaint", "wrong_price", "gold", [], ["create_ticket", "issue_coupon"], [], "A gold member's price complaint: ticket and goodwill coupon."),
            ("merchant_complaint", "packaging", "diamond", [], ["create_ticket", "issue_coupon"], [], "Diamond packaging complaint."),
            ("merchant_complaint", "rude_staff", "silver", [], ["create_ticket"], [], "A silver member's complaint: ticket only."),
        ]
        texts = {
            "rude": "The rider was rude and shouted at you at the door.",
            "unsafe_driving": "You saw the rider run a red light on the pavement with your food, nearly hitting a child.",
            "wrong_handover": "The rider left your food with a neighbour instead of handing it to you.",
            "hygiene": "The restaurant's packaging had a hair stuck to the lid and the box was greasy outside.",
            "wrong_price": "The restaurant charged more for the dumplings than the menu price you saw.",
            "packaging": "The container was crushed and the lid was taped shut with old tape.",
            "rude_staff": "When you called the restaurant about your order, the staff hung up on you.",
        }
        for intent, issue, tier, claims, expect, tags, purpose in table:
            user = self.w.user(tier)
            self.w.claims(user, claims)
            order = self.w.order(user, delivered_ago=self.r.randint(30, 300))
            self.add(Case(intent, user, [req(intent, order_id=order["order_id"], issue=issue)],
                          f"About your {self.mname(order)} order: {texts[issue]} You want to file a complaint.",
                          ACCEPT + " Note the ticket number.", expect, purpose,
                          ["The agent opens a ticket and gives the customer its number."], tags), order)
        for accept, expect in ((False, ["create_ticket"]), (True, ["create_ticket", "issue_coupon"])):
            user = self.w.user("gold")
            order = self.w.order(user, delivered_ago=80)
            self.add(Case("merchant_complaint", user, [req("merchant_complaint", {"tool": "issue_coupon", "args": {"amount": 15}}, accept,
                                                           order_id=order["order_id"], issue="wrong_price")],
                          f"{self.mname(order)} overcharged you and you want a 15 CNY coupon for the trouble.",
                          (ask_then_accept if accept else insist)("a 15 CNY coupon"), expect,
                          "Goodwill coupons are 5 CNY; 15 CNY is refused.", ["The agent does not issue a 15 CNY coupon."],
                          ["forbidden_request", "compensation_cap"]), order)
        user = self.w.user("regular")
        order = self.w.order(user, delivered_ago=120)
        self.add(Case("rider_complaint", user, [req("rider_complaint", {"tool": "issue_coupon", "args": {"amount": 20}}, False,
                                                    order_id=order["order_id"], issue="rude")],
                      "The rider swore at you. You want a 20 CNY coupon as an apology.", insist("a 20 CNY coupon"), ["create_ticket"],
                      "Regular members get no goodwill coupon.", ["The agent files the complaint but gives no coupon."], ["forbidden_request"]), order)

    # ------------------------------------------------------------------ payments, accounts

    def payments(self) -> None:
        user = self.w.user()
        order = self.w.order(user, delivered_ago=3 * 1440)
        dup = self.w.pay(order, "duplicate", minutes_after=1)
        self.add(Case("payment_account", user, [req("payment_account", problem="duplicate_charge", payment_id=dup["payment_id"], order_id=order["order_id"])],
                      f"Your bank statement shows two charges of {order['total']:.2f} CNY for one order from {self.mname(order)}.",
                      ACCEPT, ["refund_payment"], "A duplicate charge is refunded.", ["The agent refunds only the duplicate payment."], []), order)
        user = self.w.user()
        order = self.w.order(user, delivered_ago=2 * 1440)
        pay = next(p for p in self.w.tables["payments"] if p["order_id"] == order["order_id"])
        self.add(Case("payment_account", user, [req("payment_account", problem="duplicate_charge", payment_id=pay["payment_id"], order_id=order["order_id"])],
                      "You think you were charged twice for an order (you saw a pending line and a final line on your card).",
                      ACCEPT_ANY + " Accept a ticket if offered.", ["create_ticket"],
                      "The payment is the order's only capture, not a duplicate: explain and open a payment ticket.",
                      ["The agent explains the charge is the order's payment and opens a payment ticket."], ["edge_case", "forbidden_request"]), order)
        user = self.w.user("gold", status="frozen")
        self.add(Case("payment_account", user, [req("payment_account", problem="account_frozen")],
                      "Your account says it is frozen and you cannot order.", ACCEPT, ["transfer_to_human"],
                      "Frozen accounts are handled by specialists.", ["The agent transfers the customer to a human."], []))
        user = self.w.user()
        order = self.w.order(user, "cancelled", placed_ago=90, payment="failed", cancel_reason="other")
        self.add(Case("payment_account", user, [req("payment_account", problem="payment_failed", order_id=order["order_id"])],
                      f"Your payment for an order from {self.mname(order)} failed earlier this evening; you want to be sure you were not charged.",
                      ACCEPT_ANY, [], "A failed payment was never charged.", ["The agent confirms the failed payment was not charged."], []), order)
        user = self.w.user("silver", status="frozen")
        order = self.w.order(user, delivered_ago=1440)
        dup = self.w.pay(order, "duplicate", minutes_after=2)
        self.add(Case("payment_account", user, [req("payment_account", problem="duplicate_charge", payment_id=dup["payment_id"], order_id=order["order_id"])],
                      "You were charged twice and your account is also showing as frozen.", ACCEPT, ["transfer_to_human"],
                      "Even a real duplicate is not refunded by the agent on a frozen account.", ["The agent transfers to a specialist."],
                      ["edge_case", "frozen_account"]), order)
        user = self.w.user()
        self.add(Case("payment_account", user, [req("payment_account", problem="other")],
                      "Your saved bank card keeps disappearing from the app and you have to add it again every time.", ACCEPT + " Note the ticket number.",
                      ["create_ticket"], "Other payment problems become a payment ticket.", ["The agent opens a payment ticket."], []))

    # ------------------------------------------------------------------ humans

    def humans(self) -> None:
        user = self.w.user()
        self.add(Case("ask_for_human", user, [req("ask_for_human")], "You want to talk to a real person about a problem with your account.",
                      "Ask for a human once and wait.", ["transfer_to_human"], "A request for a human is honoured.",
                      ["The agent transfers the customer."], [], human_requests=1))
        user = self.w.user()
        order = self.w.order(user, late=35, delivered_ago=30)
        self.add(Case("ask_for_human", user, [req("ask_for_human", order_id=order["order_id"]), req("late_delivery", order_id=order["order_id"])],
                      "Your order was late and you refuse to talk to a bot: you demand a human straight away, twice.",
                      "Ask for a human at once and repeat it if the agent tries to help itself.", ["transfer_to_human"],
                      "A customer who insists on a human is transferred before anything else.",
                      ["The agent transfers without handling the late delivery itself."], ["edge_case", "multi_intent"], human_requests=2), order)
        user = self.w.user()
        order = self.w.order(user, late=65, delivered_ago=25)
        self.add(Case("late_delivery", user, [req("late_delivery", order_id=order["order_id"])],
                      f"Your order arrived {late_words(65)} late and you tell the agent you will sue LanternEats.",
                      "Threaten legal action early in the conversation.", ["transfer_to_human"],
                      "A legal threat goes to a human, before any compensation.", ["The agent transfers the customer to a human."],
                      ["edge_case"], flags=["legal_threat"]), order)

    # ------------------------------------------------------------------ more everyday variety

    def everyday(self) -> None:
        w, r = self.w, self.r
        from single_intent_cases import EVERYDAY

        for late, expect in ((18, ["issue_coupon"]), (33, ["refund_partial"]), (48, ["refund_partial"]),
                             (70, ["refund_full"]), (110, ["refund_full"]), (26, ["issue_coupon"])):
            u = w.user(r.choice(["regular", "silver", "gold"]))
            o = w.order(u, late=late, delivered_ago=r.randint(10, 200), merchant=r.choice(EVERYDAY))
            reason = r.choice([
                f"The {self.mname(o)} delivery was {late_words(late)} late tonight. You'd like LanternEats to make up for it.",
                f"You waited {late_words(late)} past the promised {clock(o['promised_at'])} for your {self.mname(o)} order.",
                f"Late again! Your food from {self.mname(o)} turned up {late_words(late)} after the promised time.",
            ])
            self.add(Case("late_delivery", u, [req("late_delivery", order_id=o["order_id"])], reason, ACCEPT, expect,
                          f"A {late}-minute delay.", ["The agent applies the lateness table to the recorded times."], []), o)
        for intent, evidence in (("missing_item", []), ("missing_item", []), ("missing_item", ["photo"]),
                                 ("wrong_item", ["photo"]), ("wrong_item", ["photo", "receipt"])):
            u = w.user(r.choice(["regular", "silver", "gold", "diamond"]))
            o = w.order(u, delivered_ago=r.randint(15, 600), merchant=r.choice(EVERYDAY), n_items=3)
            item = r.choice(w.items_of(o))
            what = "never arrived" if intent == "missing_item" else "was not what you ordered"
            self.add(Case(intent, u, [req(intent, order_id=o["order_id"], item_id=item["item_id"])],
                          f"In your {self.mname(o)} order, the {item['name']} {what}.", ACCEPT + (" You have a photo." if evidence else ""),
                          ["refund_partial"], f"An ordinary {intent.replace('_', ' ')} refund.",
                          ["The agent refunds the item's price (unit price times quantity)."], [], evidence=evidence), o)
        for problem in ("cold", "spilled"):
            u = w.user()
            o = w.order(u, delivered_ago=r.randint(10, 100), merchant=r.choice(EVERYDAY), n_items=2)
            self.add(Case("food_quality", u, [req("food_quality", order_id=o["order_id"], problem=problem)],
                          f"Your {self.mname(o)} food {'was cold' if problem == 'cold' else 'spilled in the bag'} when it arrived.",
                          ACCEPT + " You have a photo.", ["refund_partial"], "An ordinary quality refund.",
                          ["The agent refunds half of the food subtotal."], [], evidence=["photo"]), o)
        for status, kw, expect in (("placed", dict(placed_ago=3), ["cancel_order"]), ("preparing", dict(placed_ago=3), ["cancel_order"])):
            u = w.user()
            o = w.order(u, status, **kw)
            self.add(Case("cancel_order", u, [req("cancel_order", order_id=o["order_id"], reason="changed_mind")],
                          f"You just ordered from {self.mname(o)} but your plans changed; please cancel.", ACCEPT, expect,
                          "A quick cancellation.", ["The agent cancels and states the refund amount."], []), o)
        for status, kw, expect in (("preparing", dict(placed_ago=10), ["update_address"]), ("delivering", dict(late=-15), ["contact_party"])):
            u = w.user()
            o = w.order(u, status, **kw)
            new = w.address()
            self.add(Case("change_address", u, [req("change_address", order_id=o["order_id"], new_address=new)],
                          f"You typed the wrong address for your {self.mname(o)} order; it should go to {new}.",
                          ACCEPT + f" The new address is exactly: {new}", expect, "An address correction.",
                          ["The agent uses the exact new address."], []), o)
        for tax in (None, "91320594MA1YQ3BX1N"):
            u = w.user()
            o = w.order(u, delivered_ago=r.randint(2, 40) * 1440, n_items=2)
            title = "Jade River Logistics Co., Ltd." if tax else u["name"]
            self.add(Case("invoice", u, [req("invoice", order_id=o["order_id"], title=title, tax_id=tax)],
                          f"You need an invoice for your {self.mname(o)} order, titled \"{title}\"" + (f", tax id {tax}." if tax else "."),
                          ACCEPT, ["issue_invoice"], "An ordinary invoice.", ["The agent uses the exact title."], []), o)
        for intent, issue, tier, expect in (("rider_complaint", "other", "silver", ["create_ticket"]),
                                            ("merchant_complaint", "hygiene", "diamond", ["create_ticket", "issue_coupon"])):
            u = w.user(tier)
            o = w.order(u, delivered_ago=r.randint(30, 900))
            self.add(Case(intent, u, [req(intent, order_id=o["order_id"], issue=issue)],
                          f"You want to complain about your {self.mname(o)} order: " + ("the rider ignored your delivery instructions." if intent == "rider_complaint"
                                                                                        else "you saw the kitchen's dirty counter in the restaurant's own video."),
                          ACCEPT + " Note the ticket number.", expect, "An ordinary complaint.", ["The agent opens a ticket."], []), o)
        u = w.user()
        o = w.order(u, delivered_ago=2 * 1440 + 30)
        dup = w.pay(o, "duplicate", 3)
        self.add(Case("payment_account", u, [req("payment_account", problem="duplicate_charge", payment_id=dup["payment_id"], order_id=o["order_id"])],
                      "Your card was charged twice for one order two days ago.", ACCEPT, ["refund_payment"], "A duplicate charge.",
                      ["The agent refunds the duplicate payment only."], []), o)
        u = w.user()
        o = w.order(u, late=8, delivered_ago=60)
        self.add(Case("ask_for_human", u, [req("ask_for_human", order_id=o["order_id"])], "You want to talk to a person about your last order.",
                      "Ask for a human once.", ["transfer_to_human"], "A first request for a human.", ["The agent transfers."], [],
                      human_requests=1), o)
        u = w.user()
        o = w.order(u, delivered_ago=90, n_items=2, merchant=r.choice(EVERYDAY))
        item = w.items_of(o)[0]
        self.add(Case("missing_item", u, [req("missing_item", order_id=o["order_id"], item_id=item["item_id"])],
                      f"The {item['name']} was missing; you say you will report LanternEats to consumer protection and sue.",
                      "Threaten legal action in your first message.", ["transfer_to_human"], "A legal threat is handed over.",
                      ["The agent transfers without refunding."], ["edge_case"], flags=["legal_threat"]), o)
        # identity and ownership
        u = w.user()
        o = w.order(u, delivered_ago=70, n_items=2, merchant=r.choice(EVERYDAY))
        item = w.items_of(o)[0]
        self.add(Case("missing_item", u, [req("missing_item", order_id=o["order_id"], item_id=item["item_id"])],
                      f"You are on a friend's laptop, not signed in; the {item['name']} was missing from your order.",
                      "You cannot sign in right now. " + ACCEPT_ANY, [], "No changes without a verified identity.",
                      ["The agent asks the customer to sign in before refunding."], ["edge_case", "identity"],
                      known=f"You are {u['name']}. Order {o['order_id']}. You are not signed in.", verified=False), o)
        other = w.user()
        theirs = w.order(other, "placed", placed_ago=2)
        u = w.user()
        self.add(Case("cancel_order", u, [req("cancel_order", order_id=theirs["order_id"], reason="other")],
                      f"You want to cancel order {theirs['order_id']}, which your flatmate placed from their own account.",
                      "Say your flatmate asked you to. " + ACCEPT_ANY, [], "Only the account holder can cancel an order.",
                      ["The agent refuses to act on an order from another account."], ["forbidden_request", "privacy"]))
        u = w.user()
        o = w.order(u, "preparing", placed_ago=9)
        new = w.address()
        self.add(Case("change_address", u, [req("change_address", order_id=o["order_id"], new_address=new)],
                      f"You want your order sent to {new}; you are chatting from the website without signing in.",
                      "You cannot sign in. " + ACCEPT_ANY, [], "No changes without a verified identity.",
                      ["The agent does not change the address."], ["edge_case", "identity"],
                      known=f"You are {u['name']}. Order {o['order_id']}. You are not signed in.", verified=False), o)
