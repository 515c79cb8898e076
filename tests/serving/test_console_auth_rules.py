"""The console's signed session cookie, rules deployments (Serve's part stood in for) and the
models page's loop history, without Ray."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from tests.serving.test_console import (
    CUSTOMER,
    OPERATOR,
    ORIGIN,
    StandInGateway,
    _logged_in,
)
from wow_ray.agents.sessions import SessionStore
from wow_ray.serving import rules_deploy
from wow_ray.serving.access import (
    AccessDenied,
    KeyRing,
    hash_api_key,
    mint_console_token,
    mint_customer_token,
    verify_customer_token,
)
from wow_ray.serving.console import attach_console, console_app
from wow_ray.serving.console.app import COOKIE
from wow_ray.serving.rules_history import RulesHistory

SECRET = "s" * 48
ADMIN = "admin-key-not-secret"


class _Remote:
    def __init__(self, read):
        self.read = read

    async def remote(self):
        return self.read()


@pytest.fixture(scope="module")
def pack():
    from wow_ray.scenario import load_pack

    return load_pack("food_delivery")


@pytest.fixture
def gateway(pack, tmp_path, monkeypatch):
    """A stand-in gateway whose keys live in a file (so a key can be revoked), with a token
    secret, and whose 'Serve' applies a pushed user_config to the pack, as reconfigure does."""
    keys = tmp_path / "keys.yaml"
    _write_keys(keys, [("ops-ana", "operator", OPERATOR), ("root", "admin", ADMIN),
                       ("app", "customer", CUSTOMER)])
    gw = StandInGateway(pack, SessionStore(f"sqlite:///{tmp_path}/sessions.db"))
    gw.gate.keys, gw.gate.token_secrets = KeyRing(file=str(keys)), [SECRET]
    gw.keys_file = keys
    pack.rules.load_file(pack.path / "rules.yaml")  # the pack's own rules, whatever ran before
    applied: dict = {}

    def in_force():
        rules = pack.rules.rules
        return {"version": pack.rules.version, "source": rules.source,
                "rules": rules.data.model_dump(mode="json", exclude_defaults=True),
                "user_config": dict(applied)}

    gw.master = type("M", (), {"rules_in_force": _Remote(in_force),
                               "rules_version": _Remote(lambda: pack.rules.version)})()

    def push(user_config):
        pack.rules.load_data(user_config["rules"], source="user_config.rules")
        applied.clear()
        applied.update(user_config)

    async def confirmed(version, *a, **k):
        return pack.rules.version == version

    monkeypatch.setattr(rules_deploy, "push_user_config", push)
    monkeypatch.setattr(rules_deploy, "wait_in_force", confirmed)
    attach_console(gw)
    yield gw
    pack.rules.load_file(pack.path / "rules.yaml")


def _write_keys(path, entries) -> None:
    import yaml

    path.write_text(yaml.safe_dump({"keys": [{"name": n, "scope": s, "sha256": hash_api_key(k)}
                                             for n, s, k in entries]}))


def _client() -> TestClient:
    return TestClient(console_app, base_url="http://testserver")


def _login(key: str) -> TestClient:
    client = _client()
    response = client.post("/login", data={"key": key, "next": "/rules"}, headers=ORIGIN,
                           follow_redirects=False)
    assert response.status_code == 303
    return client


def _with_cookie(client: TestClient, value: str) -> TestClient:
    client.cookies.clear()
    client.cookies.set(COOKIE, value)
    return client


def _refused(client: TestClient) -> bool:
    response = client.get("/sessions", follow_redirects=False)
    return response.status_code == 303 and "/login" in response.headers["location"]


# -- the session cookie -------------------------------------------------------------------------

def test_the_cookie_is_a_signed_session_not_the_key(gateway):
    client = _logged_in(_client())
    cookie = client.cookies[COOKIE]
    assert OPERATOR not in cookie and hash_api_key(OPERATOR) not in cookie
    assert client.get("/sessions").status_code == 200


def test_a_tampered_or_expired_cookie_is_refused(gateway):
    client = _logged_in(_client())
    good = client.cookies[COOKIE]
    assert not _refused(_with_cookie(client, good))  # the same cookie, set by hand, passes
    head, body, sig = good.split(".")
    _with_cookie(client, f"{head}.{body}.{sig[::-1]}")
    assert _refused(client)
    entry = gateway.gate.keys.find(OPERATOR)
    old = mint_console_token(SECRET, entry, ttl_s=60, now=time.time() - 3600)
    _with_cookie(client, old)
    assert _refused(client)
    forged = mint_console_token("f" * 48, entry)  # another secret
    _with_cookie(client, forged)
    assert _refused(client)


def test_a_customer_token_is_not_a_console_cookie(gateway):
    assert _refused(_with_cookie(_client(), mint_customer_token(SECRET, "ops-ana")))
    console_cookie = _logged_in(_client()).cookies[COOKIE]
    with pytest.raises(AccessDenied):  # nor is a console cookie a customer token
        verify_customer_token(console_cookie, [SECRET])


def test_revoking_the_key_ends_the_session(gateway):
    client = _logged_in(_client())
    assert client.get("/sessions").status_code == 200
    time.sleep(0.01)
    _write_keys(gateway.keys_file, [("root", "admin", ADMIN)])  # ops-ana's key removed
    import os

    os.utime(gateway.keys_file, (time.time() + 5, time.time() + 5))  # a new mtime for sure
    assert _refused(client)


# -- deploying rules ----------------------------------------------------------------------------

def _edited(pack) -> str:
    text = (pack.path / "rules.yaml").read_text()
    return text.replace("version:", "version: 77 #", 1)


def test_an_admin_deploys_edited_rules_and_each_deployment_is_kept(gateway, pack):
    before = pack.rules.version
    admin = _login(ADMIN)
    page = admin.post("/rules/deploy", data={"text": _edited(pack)}, headers=ORIGIN)
    assert page.status_code == 200, page.text
    assert pack.rules.version.startswith("77@") and pack.rules.version != before
    assert f'id="deployed-version">{pack.rules.version}<' in page.text
    (d,) = RulesHistory(gateway.store.engine).list("food_delivery")
    assert (d.by, d.version, d.previous_version) == ("root", pack.rules.version, before)
    assert d.text == _edited(pack) and len(d.sha256) == 64
    shown = admin.get(f"/rules/deployments/{d.id}")
    assert shown.status_code == 200 and "version: 77 #" in shown.text
    assert "version: 77 #" in admin.get(f"/rules?edit={d.id}").text
    assert f'data-deployment="{d.id}"' in admin.get("/rules").text


def test_an_invalid_file_is_refused_with_line_and_field_and_nothing_changes(gateway, pack):
    before = pack.rules.version
    admin = _login(ADMIN)
    bad = ("version: 9\nrules:\n  - id: broken\n    title: Broken\n    effect: forbid\n"
           "    tools: [no_such_tool]\n")
    page = admin.post("/rules/deploy", data={"text": bad}, headers=ORIGIN)
    assert page.status_code == 422 and "<td>rules.yaml</td><td>6</td>" in page.text
    assert pack.rules.version == before
    assert RulesHistory(gateway.store.engine).list("food_delivery") == []


def test_an_operator_may_validate_but_not_deploy(gateway, pack):
    client = _login(OPERATOR)
    assert 'id="deploy"' not in client.get("/rules").text
    assert client.post("/rules/validate", data={"text": _edited(pack)},
                       headers=ORIGIN).status_code == 200
    assert client.post("/rules/deploy", data={"text": _edited(pack)},
                       headers=ORIGIN).status_code == 403
    assert not pack.rules.version.startswith("77@")


def test_the_history_store_lists_newest_first_per_scenario(tmp_path):
    history = RulesHistory(SessionStore(f"sqlite:///{tmp_path}/s.db").engine)
    first = history.record("food_delivery", version="1@a", previous_version="0@z", by="x", text="a")
    history.record("hotel_booking", version="5@b", previous_version="", by="y", text="b")
    second = history.record("food_delivery", version="2@c", previous_version="1@a", by="x",
                            text="c")
    assert [d.id for d in history.list("food_delivery")] == [second.id, first.id]
    assert history.get(first.id).text == "a" and history.get(9999) is None


# -- the models page ----------------------------------------------------------------------------

def test_the_models_page_shows_the_loop_turns_and_a_chart(gateway, tmp_path, monkeypatch):
    from tests.flywheel.test_loop import FakeStages
    from wow_ray.flywheel import Flywheel
    from wow_ray.registry import Registry

    registry = Registry(str(tmp_path / "storage"))
    Flywheel(registry, "food_delivery", FakeStages(registry, tmp_path, better=False)).run(2)
    monkeypatch.setenv("WOW_RAY_STORAGE_PATH", registry.storage.root)
    page = _login(OPERATOR).get("/models")
    assert page.status_code == 200
    assert 'data-turn="1"' in page.text and 'data-turn="2"' in page.text
    assert "rejected" in page.text
    chart = page.text.split('id="turns-chart">')[1].split("</figure>")[0]
    assert chart.startswith("<svg") and "<polyline" in chart and "t2</text>" in chart
