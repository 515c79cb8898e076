"""The operator console without Ray: its FastAPI app over a real session store and rule engine.

The gateway is stood in for by the parts the console reads (store, gate, pack, args, the
master's ``rules_in_force``); the browser tests in test_console_browser.py run the real one.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.agents.conftest import talk
from wow_ray.agents.local import local_master, new_session
from wow_ray.agents.sessions import SessionStore
from wow_ray.serving.access import ApiKey, Gatekeeper, KeyRing, hash_api_key
from wow_ray.serving.console import attach_console, console_app
from wow_ray.serving.dialogue_args import DialogueAppArgs

OPERATOR, CUSTOMER = "op-key-not-secret", "cust-key-not-secret"
SCRIPT = '<script>document.title="pwned"</script><img src=x onerror=alert(1)>'
ORIGIN = {"Origin": "http://testserver"}


class _Remote:
    def __init__(self, value):
        self.value = value

    async def remote(self):
        return self.value


class StandInGateway:
    def __init__(self, pack, store: SessionStore) -> None:
        self.pack, self.store = pack, store
        self.args = DialogueAppArgs.model_validate({"dialogue": {"scenario": "food_delivery"}})
        keys = [ApiKey(name="ops-ana", scope="operator", sha256=hash_api_key(OPERATOR)),
                ApiKey(name="app", scope="customer", sha256=hash_api_key(CUSTOMER))]
        self.gate = Gatekeeper(KeyRing(keys), [])
        rules = pack.rules.rules
        self.master = type("M", (), {"rules_in_force": _Remote({
            "version": pack.rules.version, "source": rules.source,
            "rules": rules.data.model_dump(mode="json", exclude_defaults=True),
            "user_config": {}})})()


@pytest.fixture(scope="module")
def pack():
    from wow_ray.scenario import load_pack

    return load_pack("food_delivery")


@pytest.fixture
def console(pack, tmp_path, monkeypatch):
    # the models page reads the registry of the settings' storage: this test's own, never the
    # machine's (a report registered there made "no report yet" false)
    monkeypatch.setenv("WOW_RAY_STORAGE_PATH", str(tmp_path / "storage"))
    store = SessionStore(f"sqlite:///{tmp_path}/sessions.db")
    attach_console(StandInGateway(pack, store))
    return TestClient(console_app, base_url="http://testserver"), store


def _logged_in(client: TestClient) -> TestClient:
    response = client.post("/login", data={"key": OPERATOR, "next": "/sessions"}, headers=ORIGIN,
                           follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/sessions"
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    return client


def _handed_off(pack, store: SessionStore, message: str = "I want to talk to a real person"):
    state = new_session("food_delivery", user_id="U0001", owner="U0001", identity_verified=True)
    store.create(state)
    state, version = store.load(state.session_id)
    state, (turn,) = talk(local_master(pack, None), state, message)
    store.save_turn(state, turn, version)
    return state


def test_every_page_needs_an_operator_key(console):
    client, _ = console
    for path in ("/sessions", "/tickets", "/rules", "/models", "/chat"):
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 303 and "/login" in response.headers["location"], path
    wrong = client.post("/login", data={"key": CUSTOMER}, headers=ORIGIN, follow_redirects=False)
    assert wrong.status_code == 401 and "console" not in wrong.headers.get("set-cookie", "")
    assert client.get("/sessions", headers={"Authorization": f"Bearer {CUSTOMER}"},
                      follow_redirects=False).status_code == 303


def test_posts_from_another_origin_are_refused(console, pack):
    client, store = console
    _logged_in(client)
    state = _handed_off(pack, store)
    for headers in ({"Origin": "https://evil.example"}, {}):
        response = client.post(f"/tickets/{state.ticket_id}/take", headers=headers)
        assert response.status_code == 403
    assert store.tickets()[0]["status"] == "open"


def test_take_reply_and_hand_back_through_the_console(console, pack):
    client, store = console
    _logged_in(client)
    state = _handed_off(pack, store)
    page = client.get("/tickets")
    assert state.ticket_id in page.text and "U0001" in page.text
    taken = client.post(f"/tickets/{state.ticket_id}/take", headers=ORIGIN)
    assert taken.status_code == 200 and 'id="reply-form"' in taken.text
    client.post(f"/sessions/{state.session_id}/reply", data={"text": "Hi, I'm Ana."},
                headers=ORIGIN)
    t = store.transcript(state.session_id)
    assert (t.turns[-1].by, t.turns[-1].operator, t.turns[-1].reply) == ("human", "ops-ana",
                                                                         "Hi, I'm Ana.")
    client.post(f"/tickets/{state.ticket_id}/hand-back", headers=ORIGIN)
    assert store.load(state.session_id)[0].status == "active"


def test_customer_text_is_escaped_on_every_page(console, pack):
    client, store = console
    _logged_in(client)
    state = _handed_off(pack, store, f"{SCRIPT} I want to talk to a real person")
    for path in ("/sessions", f"/sessions/{state.session_id}", f"/chat?session={state.session_id}",
                 f"/chat/{state.session_id}/lines"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert "<script>document.title" not in response.text, path
        assert "&lt;script&gt;document.title" in response.text, path
        assert "script-src 'self'" in response.headers["content-security-policy"]


def test_sessions_filter_by_denials_and_status(console, pack):
    client, store = console
    _logged_in(client)
    denied = _handed_off(pack, store, "please cancel order O10001")  # a rule refuses it
    page = client.get("/sessions", params={"denials": "yes"}).text
    assert denied.session_id in page
    assert denied.session_id not in client.get("/sessions", params={"denials": "no"}).text
    assert denied.session_id not in client.get("/sessions", params={"status": "ended"}).text
    trace = client.get(f"/sessions/{denied.session_id}").text
    assert 'id="denials"' in trace and "DENIED" in trace


def test_rules_validation_names_file_line_and_field(console):
    client, _ = console
    _logged_in(client)
    page = client.get("/rules")
    assert page.status_code == 200 and 'id="rules-text"' in page.text
    bad = ("version: 9\nrules:\n  - id: broken\n    title: Broken\n    effect: forbid\n"
           "    tools: [no_such_tool]\n")
    response = client.post("/rules/validate", data={"text": bad}, headers=ORIGIN)
    assert response.status_code == 422 and 'id="issues"' in response.text
    issues = response.text.split('id="issues"')[1].split("</table>")[0]
    assert "<td>rules.yaml</td><td>6</td>" in issues and "no_such_tool" in issues


def test_models_page_says_no_report_yet(console):
    client, _ = console
    _logged_in(client)
    page = client.get("/models")
    assert page.status_code == 200 and 'id="no-report"' in page.text
    assert "understanding" in page.text
