"""Customer tokens and scoped API keys (wow_ray/serving/access.py), without a server."""

from __future__ import annotations

import base64
import json
import os
import time

import jwt
import pytest

from wow_ray.serving.access import (
    AccessDenied,
    ApiKey,
    Gatekeeper,
    KeyRing,
    hash_api_key,
    mint_anonymous_token,
    mint_customer_token,
    new_api_key,
    parse_keys_env,
    verify_customer_token,
)

SECRET = "s" * 48
OTHER = "o" * 48


def test_a_minted_token_verifies_to_its_customer():
    found = verify_customer_token(mint_customer_token(SECRET, "U0214", verified=True), [SECRET])
    assert (found.subject, found.user_id, found.verified, found.anonymous) == ("U0214", "U0214", True, False)


def test_expired_token_refused():
    token = mint_customer_token(SECRET, "U0214", ttl_s=60, now=time.time() - 120)
    with pytest.raises(AccessDenied, match="expired") as caught:
        verify_customer_token(token, [SECRET])
    assert caught.value.status == 401


def test_token_signed_with_another_secret_refused():
    with pytest.raises(AccessDenied, match="not signed"):
        verify_customer_token(mint_customer_token(OTHER, "U0214"), [SECRET])


def test_forged_claims_refused():
    """Changing the subject of a real token breaks its signature."""
    header, payload, signature = mint_customer_token(SECRET, "U0214").split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["sub"] = "U0215"
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(AccessDenied):
        verify_customer_token(f"{header}.{forged_payload}.{signature}", [SECRET])


@pytest.mark.parametrize("token", [
    jwt.encode({"sub": "U0214", "aud": "wow-ray", "exp": 9_999_999_999}, key="", algorithm="none"),
    jwt.encode({"sub": "U0214", "aud": "wow-ray"}, SECRET, algorithm="HS256"),  # no expiry
    jwt.encode({"sub": "U0214", "exp": 9_999_999_999}, SECRET, algorithm="HS256"),  # no audience
    "not-a-token",
])
def test_unsigned_or_incomplete_tokens_refused(token):
    with pytest.raises(AccessDenied) as caught:
        verify_customer_token(token, [SECRET])
    assert caught.value.status == 401


def test_secret_rotation_accepts_old_and_new():
    old = mint_customer_token(OTHER, "U0214")
    assert verify_customer_token(old, [SECRET, OTHER]).subject == "U0214"


def test_short_secret_refused():
    with pytest.raises(ValueError, match="at least 32 bytes"):
        mint_customer_token("short", "U0214")


def test_anonymous_token_has_no_user():
    found = verify_customer_token(mint_anonymous_token(SECRET), [SECRET])
    assert found.anonymous and found.user_id is None and not found.verified


def _gate(tmp_path=None, **kwargs) -> Gatekeeper:
    keys = [ApiKey(name=s, scope=s, sha256=hash_api_key(f"{s}-key"))
            for s in ("customer", "operator", "admin")]
    return Gatekeeper(KeyRing(keys), [SECRET], **kwargs)


@pytest.mark.parametrize("scope", ["customer", "operator", "admin"])
def test_each_scope_refused_the_others_routes(scope):
    gate = _gate()
    headers = {"authorization": f"Bearer {scope}-key"}
    gate.channel(headers, "10.0.0.1", scope)
    for other in {"customer", "operator", "admin"} - {scope}:
        with pytest.raises(AccessDenied) as caught:
            gate.channel(headers, "10.0.0.1", other)
        assert caught.value.status == 403


def test_loopback_is_not_trusted_unless_configured():
    with pytest.raises(AccessDenied) as caught:
        _gate().channel({}, "127.0.0.1", "customer")
    assert caught.value.status == 401
    _gate(trust_loopback=True).channel({}, "127.0.0.1", "customer")
    with pytest.raises(AccessDenied):
        _gate(trust_loopback=True).channel({}, "10.0.0.1", "customer")


def test_unknown_key_refused():
    with pytest.raises(AccessDenied) as caught:
        _gate().channel({"x-api-key": "wrong"}, "10.0.0.1", "customer")
    assert caught.value.status == 401


def test_session_owner_checked():
    gate = _gate()
    mine = {"x-customer-token": mint_customer_token(SECRET, "U0214")}
    assert gate.owner(mine, "U0214", "s1").user_id == "U0214"
    with pytest.raises(AccessDenied) as caught:
        gate.owner(mine, "U0215", "s1")
    assert caught.value.status == 403
    with pytest.raises(AccessDenied) as caught:
        gate.owner({}, "U0214", "s1")
    assert caught.value.status == 401


def test_new_customer_needs_a_token_unless_anonymous_allowed():
    with pytest.raises(AccessDenied, match="customer token is required"):
        _gate().new_customer({})
    found, token = _gate(allow_anonymous=True).new_customer({})
    assert found.anonymous and verify_customer_token(token, [SECRET]).subject == found.subject


def test_keys_file_rotates_without_restart(tmp_path):
    path = tmp_path / "keys.yaml"
    first, second = new_api_key(), new_api_key()
    path.write_text(f"keys: [{{name: app, scope: customer, sha256: {hash_api_key(first)}}}]\n")
    ring = KeyRing(file=str(path))
    assert ring.scope_of(first) == "customer" and ring.scope_of(second) is None
    path.write_text(f"keys: [{{name: app, scope: customer, sha256: {hash_api_key(second)}}}]\n")
    os.utime(path, (time.time() + 5, time.time() + 5))
    assert ring.scope_of(second) == "customer" and ring.scope_of(first) is None
    path.write_text("keys: [{name: app, scope: nobody}]\n")  # a typo keeps the keys read last
    os.utime(path, (time.time() + 10, time.time() + 10))
    assert ring.scope_of(second) == "customer" and "scope" in ring.file_error


def test_keys_env_names_the_bad_item():
    assert [k.scope for k in parse_keys_env("customer:a, operator:b", "K")] == ["customer", "operator"]
    with pytest.raises(ValueError, match="K: item 2"):
        parse_keys_env("customer:a,root:b", "K")


def test_cli_credentials_and_keys_file(tmp_path, monkeypatch):
    """`wow-ray auth` writes hashed keys a KeyRing accepts, and revokes them."""
    from typer.testing import CliRunner

    from wow_ray.cli import app
    from wow_ray.serving.credentials import ensure_cli_key, ensure_secret

    monkeypatch.setenv("HOME", str(tmp_path))
    keys_file = tmp_path / ".wow_ray" / "api_keys.yaml"
    runner = CliRunner()
    made = runner.invoke(app, ["auth", "new-key", "console", "--scope", "operator"])
    assert made.exit_code == 0, made.output
    key = made.stdout.strip().splitlines()[-1]
    assert key not in keys_file.read_text() and oct(keys_file.stat().st_mode)[-3:] == "600"
    ring = KeyRing(file=str(keys_file))
    assert ring.scope_of(key) == "operator"
    cli_key = ensure_cli_key()
    assert ensure_cli_key() == cli_key and ring.scope_of(cli_key) == "customer"
    assert runner.invoke(app, ["auth", "revoke", "console"]).exit_code == 0
    os.utime(keys_file, (time.time() + 5, time.time() + 5))
    assert ring.scope_of(key) is None and ring.scope_of(cli_key) == "customer"
    token = runner.invoke(app, ["auth", "customer-token", "U0214"]).stdout.strip()
    assert verify_customer_token(token, [ensure_secret()]).user_id == "U0214"


def test_the_cli_is_accepted_by_a_gateway_with_the_shipped_defaults(tmp_path, monkeypatch):
    """`make demo` and `wow-ray chat` on one machine: the CLI's own key and minted token pass
    the gate a gateway builds from the default options (the same files under ~/.wow_ray)."""
    from wow_ray.cli.dialogue import local_client
    from wow_ray.serving.credentials import ensure_secret
    from wow_ray.serving.dialogue_args import AuthOptions

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("WOW_RAY_API_KEYS", raising=False)
    monkeypatch.delenv("WOW_RAY_CUSTOMER_TOKEN_SECRET", raising=False)
    ensure_secret()  # what start_dialogue_app does before the gateway starts
    client = local_client("http://127.0.0.1:1", "U0214")
    gate = AuthOptions().gatekeeper()
    headers = {k.lower(): v for k, v in client.http.headers.items()}
    gate.channel(headers, "10.0.0.1", "customer")
    assert gate.customer(headers).user_id == "U0214"
    with pytest.raises(AccessDenied):
        gate.channel(headers, "10.0.0.1", "operator")
