"""Identity and access against the real served dialogue app (Ray Serve, vLLM, SQLite).

The attacks that once got through, now refused: the OpenAI facade taking its ``user`` field as
the signed-in customer, a turn sent with another customer's session id, and another
customer's transcript read. Who the customer is comes only from a token the business's app
signs; a session answers only the customer who started it; each key reaches only its scope.
"""

from __future__ import annotations

import time

import httpx
import pytest

from tests.conftest import DIALOGUE_TOKEN_SECRET
from wow_ray.serving.access import mint_customer_token

pytestmark = pytest.mark.slow
TIMEOUT = httpx.Timeout(600.0)
LATE_ORDER, OWNER, STRANGER = "O10337", "U0214", "U0001"  # O10337 (U0214) arrived 20 min late


def _post(app, path: str, headers: dict, **kwargs) -> httpx.Response:
    return httpx.post(f"{app.url}{path}", headers=headers, timeout=TIMEOUT, **kwargs)


def _get(app, path: str, headers: dict) -> httpx.Response:
    return httpx.get(f"{app.url}{path}", headers=headers, timeout=TIMEOUT)


def _session(app, user: str) -> str:
    response = _post(app, "/v1/sessions", app.customer(user), json={})
    assert response.status_code == 201, response.text
    return response.json()["session_id"]


def test_the_openai_user_field_is_not_an_identity(dialogue_app):
    """The attack: no key, `user` naming the victim. Then: a stranger's own token with `user`
    naming the victim still acts as the stranger, so the victim's late order is not theirs."""
    body = {"model": "food_delivery", "user": OWNER, "messages": [
        {"role": "user", "content": f"the order {LATE_ORDER} was late. i want compensation"}]}
    assert _post(dialogue_app, "/v1/chat/completions", {}, json=body).status_code == 401
    response = _post(dialogue_app, "/v1/chat/completions", dialogue_app.customer(STRANGER), json=body)
    assert response.status_code == 200, response.text
    sid = response.headers["x-session-id"]
    summary = _get(dialogue_app, f"/v1/sessions/{sid}", dialogue_app.customer(STRANGER)).json()
    assert summary["user_id"] == STRANGER
    backend = _get(dialogue_app, f"/v1/operator/sessions/{sid}/backend",
                   dialogue_app.operator_headers).json()
    assert backend["changes"] == {}, "nothing was written for the stranger on the victim's order"
    assert _get(dialogue_app, f"/v1/sessions/{sid}", dialogue_app.customer(OWNER)).status_code == 403


def test_a_session_answers_only_its_customer(dialogue_app):
    sid = _session(dialogue_app, OWNER)
    stranger = dialogue_app.customer(STRANGER)
    turn = _post(dialogue_app, f"/v1/sessions/{sid}/messages", stranger,
                 json={"content": f"where is my order {LATE_ORDER}?"})
    assert turn.status_code == 403, turn.text
    assert _get(dialogue_app, f"/v1/sessions/{sid}/transcript", stranger).status_code == 403
    assert httpx.delete(f"{dialogue_app.url}/v1/sessions/{sid}", headers=stranger,
                        timeout=TIMEOUT).status_code == 403
    # the session id alone is not enough either
    no_token = _get(dialogue_app, f"/v1/sessions/{sid}/transcript", dialogue_app.headers)
    assert no_token.status_code == 401
    mine = _get(dialogue_app, f"/v1/sessions/{sid}/transcript", dialogue_app.customer(OWNER))
    assert mine.status_code == 200 and mine.json()["turns"] == []


@pytest.mark.parametrize("token", [
    mint_customer_token(DIALOGUE_TOKEN_SECRET, OWNER, ttl_s=60, now=time.time() - 3600),  # expired
    mint_customer_token("another-secret-of-enough-length-0123456789abcdef", OWNER),  # other secret
    mint_customer_token(DIALOGUE_TOKEN_SECRET, OWNER)[:-4] + "AAAA",  # forged signature
])
def test_bad_customer_tokens_refused(dialogue_app, token):
    response = _post(dialogue_app, "/v1/sessions", {**dialogue_app.headers, "X-Customer-Token": token},
                     json={})
    assert response.status_code == 401, response.text


def test_body_fields_cannot_name_the_customer(dialogue_app):
    response = _post(dialogue_app, "/v1/sessions", dialogue_app.customer(STRANGER),
                     json={"user_id": OWNER, "identity_verified": True})
    assert response.status_code == 422 and "user_id" in response.text


def test_each_scope_is_refused_the_others_routes(dialogue_app):
    sid = _session(dialogue_app, OWNER)
    token = {"X-Customer-Token": dialogue_app.customer(OWNER)["X-Customer-Token"]}
    routes = {
        "customer": ("GET", f"/v1/sessions/{sid}", token),
        "operator": ("GET", f"/v1/operator/sessions/{sid}/transcript", {}),
        "admin": ("GET", "/v1/admin/rules", {}),
    }
    keys = {"customer": dialogue_app.headers, "operator": dialogue_app.operator_headers,
            "admin": dialogue_app.admin_headers}
    for route_scope, (method, path, extra) in routes.items():
        for key_scope, key in keys.items():
            headers = {**extra, **key}
            response = httpx.request(method, f"{dialogue_app.url}{path}", headers=headers,
                                     timeout=TIMEOUT)
            expected = 200 if key_scope == route_scope else 403
            assert response.status_code == expected, (route_scope, key_scope, response.text)
        no_key = httpx.request(method, f"{dialogue_app.url}{path}", headers=extra, timeout=TIMEOUT)
        assert no_key.status_code == 401, (route_scope, "loopback is not trusted")
