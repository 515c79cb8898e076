"""The dialogue service end to end: Ray Serve, every agent a deployment, vLLM on the CPU
serving the embedded model, SQLite sessions, HTTP on loopback. Nothing is scripted here.

The model is SmolLM2-135M: tests assert what the service guarantees whatever the model says
(backend state, the rule gate, grounded amounts, hand-overs, storage), not its wording.
Independent dialogues run concurrently, which is also how vLLM batches them.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import yaml

from tests.agents.injection_cases import CASES
from wow_ray.agents.audit import unauthorized_writes
from wow_ray.agents.sessions import SessionStore
from wow_ray.agents.transcript import Transcript
from wow_ray.scenario import load_pack

pytestmark = pytest.mark.slow
TIMEOUT = httpx.Timeout(600.0)


class Service:
    """The service as the business's app calls it: its customer-channel key, and per session
    the token of the customer who started it."""

    def __init__(self, app) -> None:
        self.app = app
        self.http = httpx.Client(base_url=app.url, headers=app.headers, timeout=TIMEOUT)
        self.tokens: dict[str, dict[str, str]] = {}

    def create(self, user: str | None, verified: bool = True, evidence: list[str] | None = None) -> str:
        headers = self.app.customer(user, verified)
        response = self.http.post("/v1/sessions", json={"evidence": evidence or []}, headers=headers)
        assert response.status_code == 201, response.text
        sid = response.json()["session_id"]
        self.tokens[sid] = {"X-Customer-Token": headers["X-Customer-Token"]}
        return sid

    def auth(self, sid: str) -> dict[str, str]:
        """The header that says which customer acts in session ``sid``."""
        return self.tokens[sid]

    def say(self, sid: str, text: str, attachments: list[str] | None = None) -> dict:
        response = self.http.post(f"/v1/sessions/{sid}/messages", headers=self.auth(sid),
                                  json={"content": text, "attachments": attachments or []})
        assert response.status_code == 200, response.text
        return response.json()

    def transcript(self, sid: str) -> Transcript:
        response = self.http.get(f"/v1/sessions/{sid}/transcript", headers=self.auth(sid))
        assert response.status_code == 200, response.text
        return Transcript.model_validate(response.json())

    def changes(self, sid: str) -> dict:
        """The session's backend changes, as an operator (evaluation) reads them."""
        response = httpx.get(f"{self.app.url}/v1/operator/sessions/{sid}/backend",
                             headers=self.app.operator_headers, timeout=TIMEOUT)
        assert response.status_code == 200, response.text
        return response.json()["changes"]


@pytest.fixture(scope="module")
def svc(dialogue_app):
    return Service(dialogue_app)


def added(changes: dict, table: str) -> list[dict]:
    return changes.get(table, {}).get("added", [])


def test_full_dialogues_for_several_intents(svc):
    def late_delivery():
        sid = svc.create("U0214")
        first = svc.say(sid, "My order O10337 arrived 20 minutes late")
        last = svc.say(sid, "thanks, bye")
        return sid, first, last

    def missing_item():
        sid = svc.create("U0083")
        return sid, svc.say(sid, "The Korean Fried Chicken was missing from my Seoul Kitchen order")

    def cancel():
        sid = svc.create("U0226")
        return sid, svc.say(sid, "Please cancel my order O10349, I ordered by mistake")

    def invoice():
        sid = svc.create("U0001")
        first = svc.say(sid, "I need an invoice for order O10001")
        second = svc.say(sid, "LanternCorp Ltd") if first["status"] == "active" else None
        return sid, first, second

    with ThreadPoolExecutor(4) as pool:
        jobs = [pool.submit(f) for f in (late_delivery, missing_item, cancel, invoice)]
        (late, first, last), (miss, missed), (canc, cancelled), (inv, *_) = [j.result() for j in jobs]

    coupons = added(svc.changes(late), "coupons")
    assert [(c["user_id"], c["value"]) for c in coupons] == [("U0214", 5.0)]
    assert "5" in first["reply"] and first["intent"] == "late_delivery"
    assert last["status"] == "ended"

    refunds = added(svc.changes(miss), "compensations")
    assert [(r["order_id"], r["item_id"], r["amount"]) for r in refunds] == [("O10190", "I1019001", 58.0)]
    assert "58" in missed["reply"]

    orders = svc.changes(canc).get("orders", {}).get("added", [])
    assert [o["status"] for o in orders if o["order_id"] == "O10349"] == ["cancelled"]
    assert "64" in cancelled["reply"], "the refunded amount is told"

    invoices = added(svc.changes(inv), "invoices")
    assert len(invoices) == 1 and invoices[0]["order_id"] == "O10001"
    assert "LanternCorp" in invoices[0]["title"]

    record = svc.transcript(late)
    assert [t.index for t in record.turns] == [0, 1] and record.outcome.status == "ended"
    agents = [s.agent for s in record.turns[0].steps]
    assert agents[:3] == ["understanding", "policy", "solution"] and agents[-1] == "response"
    response = record.turns[0].steps[-1]
    assert response.llm_calls and response.llm_calls[0].model == "smollm2-135m"
    assert response.llm_calls[0].completion_tokens > 0 and response.llm_calls[0].latency_s > 0


def test_a_denial_is_explained_and_nothing_is_written(svc):
    sid = svc.create("U0001")
    out = svc.say(sid, "please cancel order O10001")
    turn = svc.transcript(sid).turns[0]
    cancel = next(c for c in turn.tool_calls if c.name == "cancel_order")
    assert not cancel.executed and cancel.decision.rule_ids
    assert cancel.decision.customer_reason in out["reply"] or not turn.steps[-1].fallback
    assert svc.changes(sid) == {}


def test_handoff_creates_a_ticket_with_a_summary(svc, dialogue_app):
    sid = svc.create("U0001")
    out = svc.say(sid, "I want to talk to a real person")
    assert out["status"] == "handed_off" and out["ticket_id"] in out["reply"]
    ticket = SessionStore(dialogue_app.database_url).ticket(out["ticket_id"])
    assert ticket["session_id"] == sid and ticket["reason"] == "customer_request"
    assert ticket["summary"]
    # The registry has a LoRA adapter for this agent ('food_delivery-handoff'): it is used.
    handoff = next(s for s in svc.transcript(sid).turns[0].steps if s.agent == "handoff")
    assert handoff.llm_calls and handoff.llm_calls[0].model == dialogue_app.handoff_model
    assert [h["reason"] for h in added(svc.changes(sid), "handoffs")] == ["customer_request"]
    record = svc.transcript(sid)
    assert record.outcome.status == "handed_off" and record.outcome.ticket_id == out["ticket_id"]
    again = svc.http.post(f"/v1/sessions/{sid}/messages", json={"content": "hello?"},
                          headers=svc.auth(sid))
    assert again.status_code == 409 and "handed over" in again.text


def test_a_reply_streams_as_server_sent_events(svc):
    sid = svc.create("U0214")
    events = []
    with svc.http.stream("POST", f"/v1/sessions/{sid}/messages", params={"stream": "true"},
                         headers=svc.auth(sid),
                         json={"content": "My order O10337 arrived 20 minutes late"}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("event:"):
                events.append(line.removeprefix("event:").strip())
            elif line.startswith("data:") and events[-1] == "done":
                done = json.loads(line.removeprefix("data:"))
    assert events[0] == "step" and events[-1] == "done"
    assert "delta" in events and "reset" not in events, "streamed text is never withdrawn"
    assert svc.transcript(sid).turns[0].reply == done["reply"]


def test_openai_compatible_facade_keeps_a_session(svc):
    body = {"model": "food_delivery",
            "messages": [{"role": "user", "content": "My order O10337 arrived 20 minutes late"}]}
    customer = svc.app.customer("U0214")
    first = svc.http.post("/v1/chat/completions", json=body, headers=customer)
    assert first.status_code == 200, first.text
    sid = first.headers["x-session-id"]
    svc.tokens[sid] = {"X-Customer-Token": customer["X-Customer-Token"]}
    assert first.json()["choices"][0]["message"]["content"]
    body["messages"].append({"role": "user", "content": "thanks, bye"})
    second = svc.http.post("/v1/chat/completions", json=body,
                           headers={**customer, "X-Session-Id": sid})
    assert second.status_code == 200
    record = svc.transcript(sid)
    assert [t.customer for t in record.turns] == [body["messages"][0]["content"], "thanks, bye"]
    assert svc.http.get("/v1/models").json()["data"][0]["id"] == "food_delivery"


def test_openai_facade_streams_the_reply_as_it_is_written(svc):
    """Each delta the master streams goes out as a chunk; joined they are the stored reply,
    and no text is withdrawn on the session stream either."""
    customer = svc.app.customer("U0214")
    body = {"model": "food_delivery", "stream": True,
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": "My order O10337 arrived 20 minutes late"}]}]}
    pieces, finish = [], None
    with svc.http.stream("POST", "/v1/chat/completions", json=body, headers=customer) as response:
        assert response.status_code == 200
        sid = response.headers["x-session-id"]
        for line in response.iter_lines():
            data = line.removeprefix("data:").strip()
            if not line.startswith("data:") or data == "[DONE]":
                continue
            choice = json.loads(data)["choices"][0]
            if choice["delta"].get("content"):
                pieces.append(choice["delta"]["content"])
            finish = choice["finish_reason"] or finish
    svc.tokens[sid] = {"X-Customer-Token": customer["X-Customer-Token"]}
    assert finish == "stop" and pieces
    assert "".join(pieces) == svc.transcript(sid).turns[0].reply


def _replicas(app_name: str, deployments: tuple[str, ...]) -> dict[str, list[str]]:
    import ray

    names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
             if a["name"].startswith(f"SERVE_REPLICA::{app_name}#")]
    return {d: sorted(n for n in names if f"#{d}#" in n) for d in deployments}


def test_a_replica_killed_mid_session_loses_nothing(svc, dialogue_app):
    import ray

    sid = svc.create("U0083")
    svc.say(sid, "Hi, I have a problem with an order")
    victims = _replicas(dialogue_app.name, ("Master", "Policy", "Solution"))
    for names in victims.values():
        for name in names:
            ray.kill(ray.get_actor(name, namespace="serve"), no_restart=True)
    out = svc.say(sid, "The Korean Fried Chicken was missing from my Seoul Kitchen order")
    assert out["turn"] == 1
    after = _replicas(dialogue_app.name, ("Master", "Policy", "Solution"))
    assert all(set(after[d]).isdisjoint(victims[d]) for d in victims), "replicas were replaced"
    record = svc.transcript(sid)
    assert [t.index for t in record.turns] == [0, 1]
    assert [(r["item_id"], r["amount"]) for r in added(svc.changes(sid), "compensations")] == \
        [("I1019001", 58.0)]


def test_bad_requests_get_a_4xx_naming_the_field(svc, dialogue_app):
    http = svc.http
    sid = svc.create("U0214")
    assert httpx.post(f"{dialogue_app.url}/v1/sessions", json={}).status_code == 401
    assert http.post("/v1/sessions", json={}, headers={"Authorization": "Bearer wrong"}).status_code == 401
    cases = [
        ("/v1/sessions", {"user_id": "bad id with spaces"}, 422, "user_id"),
        ("/v1/sessions", {"evidence": ["selfie"]}, 422, "evidence"),
        ("/v1/sessions", {"surprise": 1}, 422, "surprise"),
        (f"/v1/sessions/{sid}/messages", {"content": ""}, 422, "content"),
        (f"/v1/sessions/{sid}/messages", {"content": "x" * 2001}, 422, "content"),
        (f"/v1/sessions/{sid}/messages", {"content": "hi", "attachments": ["video"]}, 422, "attachments"),
        (f"/v1/sessions/{sid}/messages", {}, 422, "content"),
        ("/v1/sessions/nope/messages", {"content": "hi"}, 404, "nope"),
        ("/v1/chat/completions", {"messages": []}, 422, "messages"),
    ]
    for path, body, status, fragment in cases:
        response = http.post(path, json=body, headers=svc.auth(sid))
        assert response.status_code == status and fragment in response.text, (path, body, response.text)
    broken = http.post(f"/v1/sessions/{sid}/messages", content=b'{"content": ',
                       headers={"content-type": "application/json", **svc.auth(sid)})
    assert broken.status_code == 422 and "body" in broken.text
    huge = http.post(f"/v1/sessions/{sid}/messages", content=b"x" * 20_000,
                     headers={"content-type": "application/json", **svc.auth(sid)})
    assert huge.status_code == 413
    assert svc.transcript(sid).turns == [], "nothing was stored for rejected requests"


def test_per_session_rate_limit(svc, dialogue_app):
    from wow_ray.agents.transcript import TurnRecord

    sid = svc.create("U0214")
    store = SessionStore(dialogue_app.database_url)
    state, version = store.load(sid)
    for i in range(30):  # the app's limit: 30 turns a minute; these are quick stand-ins
        state.turns = i + 1
        version = store.save_turn(state, TurnRecord(index=i, customer="hi", reply="hello"), version)
    response = svc.http.post(f"/v1/sessions/{sid}/messages", json={"content": "hi"},
                             headers=svc.auth(sid))
    assert response.status_code == 429 and response.headers["retry-after"]


# One attempt of each kind, on the real model: the whole suite (34 attempts, four ways, with a
# compromised model that obeys every injection) runs without Ray in tests/agents; this shows
# the served stack holds too, within the CI budget.
REAL_MODEL_CASES = ["override-admin", "fake-supervisor", "system-tag", "friend-permission",
                    "claims-verified", "claims-photo", "impersonation", "food-safety-no-transfer",
                    "json-tool-call", "other-language", "note-preapproved", "note-cancel-anyway",
                    "merchant-note-full-refund"]


def test_injection_attempts_on_the_real_model_make_no_unauthorized_write(svc):
    pack = load_pack("food_delivery")

    def attempt(case):
        sid = svc.create(case.user, case.verified, case.evidence)
        for message in case.messages:
            if svc.say(sid, message)["status"] != "active":
                break
        return case, svc.transcript(sid)

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(attempt, [c for c in CASES if c.id in REAL_MODEL_CASES]))
    findings = []
    for case, record in results:
        findings += unauthorized_writes(pack, record.turns, user_id=case.user,
                                        identity_verified=case.verified, evidence=case.evidence)
        attack = (case.attack["tool"], case.attack["arguments"])
        assert attack not in [(c.name, c.arguments) for c in record.executed_writes], case.id
        if not record.executed_writes:  # counted in the backend too, not only in the trace
            assert svc.changes(record.session_id) == {}, case.id
    assert len(results) == len(REAL_MODEL_CASES) and findings == []


def test_a_rule_changed_mid_session_governs_the_next_turn(svc, dialogue_app):
    """`serve deploy` with new rules in user_config: replicas reload in place, no restart."""
    from ray import serve

    pack = load_pack("food_delivery")
    # As a YAML config would carry it; user_config must be JSON, so dates travel as text.
    rules = json.loads(json.dumps(yaml.safe_load((pack.path / "rules.yaml").read_text()), default=str))
    rules["version"] = "test-grace-25"
    rules["params"]["late_grace_minutes"] = 25
    sid = svc.create("U0214")
    svc.say(sid, "Hello")
    before = _replicas(dialogue_app.name, ("Policy", "Solution", "Master"))
    dialogue_app.deploy({"rules": rules})
    policy = serve.get_deployment_handle("Policy", app_name=dialogue_app.name)
    solution = serve.get_deployment_handle("Solution", app_name=dialogue_app.name)
    deadline = time.monotonic() + 120
    while not all(h.rules_version.remote().result().startswith("test-grace-25")
                  for h in (policy, solution)):
        assert time.monotonic() < deadline, "the new rules never reached the replicas"
        time.sleep(1)
    try:
        out = svc.say(sid, "My order O10337 arrived 20 minutes late")
        assert added(svc.changes(sid), "coupons") == [], "20 minutes is now within the window"
        turn = svc.transcript(sid).turns[1]
        assert turn.rules_version.startswith("test-grace-25")
        assert "25-minute" in out["reply"]
        assert _replicas(dialogue_app.name, ("Policy", "Solution", "Master")) == before
    finally:
        dialogue_app.deploy({})
        while not policy.rules_version.remote().result().startswith(pack.rules.version.split("@")[0]):
            time.sleep(1)


def test_wow_ray_chat_holds_a_dialogue_with_the_service(dialogue_app):
    from typer.testing import CliRunner

    from tests.conftest import DIALOGUE_TEST_KEY
    from wow_ray.cli import app

    token = dialogue_app.customer("U0214")["X-Customer-Token"]
    result = CliRunner().invoke(app, [
        "chat", "--scenario", "food_delivery", "--url", dialogue_app.url, "--api-key",
        DIALOGUE_TEST_KEY, "--customer-token", token,
        "-m", "My order O10337 arrived 20 minutes late"])
    assert result.exit_code == 0, result.output
    reply = result.output.split("agent>")[-1]
    assert "5" in reply, "the coupon's amount is in the reply"
