"""Who is calling the dialogue service, and what they may reach.

Two credentials, checked on every request, never inferred from where a request comes from:

- **An API key with a scope** says which *channel* calls: ``customer`` (the business's app or
  website, on behalf of its signed-in customers), ``operator`` (people who read transcripts and
  take over tickets) or ``admin`` (registry, rules, deployments). Keys are stored as SHA-256
  digests only; a keys file is re-read when it changes, so keys rotate without a restart. A
  scope reaches its own routes and no others.
- **A customer token** says which *customer* the channel acts for. The business's own backend
  mints it after its login, with a secret it shares with the gateway: a JSON Web Token (HS256)
  with the account id (``sub``), whether the login verified the person (``verified``) and an
  expiry (``exp``). Any JWT library can mint one; ``mint_customer_token`` does it here. Request
  bodies and headers cannot change who the customer is: the OpenAI ``user`` field, a ``user_id``
  in a body, a session id, none of them count.

Trusting callers by address (loopback) is a development setting only (``trust_loopback``): a
reverse proxy on the same host makes every caller loopback.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import jwt
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

Scope = Literal["customer", "operator", "admin"]
SCOPES: tuple[Scope, ...] = ("customer", "operator", "admin")
TOKEN_AUDIENCE = "wow-ray"
CONSOLE_AUDIENCE = "wow-ray-console"  # the operators' console cookie (console/app.py)
TOKEN_ALGORITHM = "HS256"
ANONYMOUS_PREFIX = "anon:"
MIN_SECRET_BYTES = 32  # RFC 7518 3.2: an HS256 key at least as long as the hash output
KEY_PREFIX = "wowk_"


class AccessDenied(Exception):
    """A request without the credential its route needs: 401 (none or invalid), 403 (not yours)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


# --------------------------------------------------------------------------- customer tokens


class CustomerIdentity(BaseModel):
    """The customer a request acts for, as a verified token says."""

    model_config = ConfigDict(frozen=True)

    subject: str = Field(description="Owner of the customer's sessions: the account id, or "
                         "'anon:<random>' for an anonymous visitor.")
    verified: bool = Field(description="The business's login verified the person.")
    expires_at: int = Field(description="Unix time after which the token is refused.")

    @property
    def anonymous(self) -> bool:
        return self.subject.startswith(ANONYMOUS_PREFIX)

    @property
    def user_id(self) -> str | None:
        """The account id the agents act on; None for an anonymous visitor."""
        return None if self.anonymous else self.subject


def check_secret(secret: str) -> str:
    if len(secret.encode()) < MIN_SECRET_BYTES:
        raise ValueError(f"a customer-token secret needs at least {MIN_SECRET_BYTES} bytes "
                         f"(try: python -c 'import secrets; print(secrets.token_urlsafe(48))')")
    return secret


def mint_customer_token(secret: str, user_id: str, *, verified: bool = True, ttl_s: int = 3600,
                        now: float | None = None) -> str:
    """A token for ``user_id``; what the business's backend does after its own login."""
    issued = int(now if now is not None else time.time())
    claims = {"sub": user_id, "verified": verified, "aud": TOKEN_AUDIENCE,
              "iat": issued, "exp": issued + ttl_s}
    return jwt.encode(claims, check_secret(secret), algorithm=TOKEN_ALGORITHM)


def mint_anonymous_token(secret: str, *, ttl_s: int = 3600, now: float | None = None) -> str:
    """A token for a visitor nobody signed in: it owns its sessions and can do no write."""
    return mint_customer_token(secret, ANONYMOUS_PREFIX + secrets.token_hex(16), verified=False,
                               ttl_s=ttl_s, now=now)


def _decode(token: str, secrets_in_force: Sequence[str], audience: str, what: str, *,
            now: float | None = None) -> dict:
    """The claims of ``token`` if any secret in force signed it for ``audience`` and it has not
    expired; the audience keeps a customer token and a console session from standing in for
    each other."""
    for secret in secrets_in_force:
        try:
            claims = jwt.decode(
                token, secret, algorithms=[TOKEN_ALGORITHM], audience=audience,
                options={"require": ["sub", "exp", "aud"], "verify_iat": False,
                         "verify_exp": now is None},
            )
        except jwt.ExpiredSignatureError:
            raise AccessDenied(401, f"{what} expired") from None
        except jwt.InvalidSignatureError:
            continue  # perhaps signed with another secret in force
        except jwt.PyJWTError as exc:
            raise AccessDenied(401, f"invalid {what}: {exc}") from None
        if now is not None and claims["exp"] <= now:
            raise AccessDenied(401, f"{what} expired")
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise AccessDenied(401, f"invalid {what}: no subject")
        return claims
    raise AccessDenied(401, f"invalid {what}: not signed by this service's secret")


def verify_customer_token(token: str, secrets_in_force: Sequence[str], *,
                          now: float | None = None) -> CustomerIdentity:
    """The identity in ``token`` if any secret in force signed it and it has not expired.

    Several secrets are accepted at once so the shared secret rotates without downtime: add the
    new one, move the business's backend to it, then drop the old one.
    """
    if not secrets_in_force:
        raise AccessDenied(401, "customer tokens are not configured on this service")
    claims = _decode(token, secrets_in_force, TOKEN_AUDIENCE, "customer token", now=now)
    return CustomerIdentity(subject=claims["sub"], verified=bool(claims.get("verified")),
                            expires_at=int(claims["exp"]))


# --------------------------------------------------------------------------- console sessions


class ConsoleSession(BaseModel):
    """Who a console cookie says is logged in: a key's name, scope and id, never the key."""

    model_config = ConfigDict(frozen=True)

    name: str
    scope: Scope
    key_id: str = Field(description="The first hex digits of the key's SHA-256 (key_id()).")
    expires_at: int


def key_id(entry: ApiKey) -> str:
    """A key's id: a prefix of its stored digest, enough to find it and to notice it revoked."""
    return entry.sha256[:16]


def mint_console_token(secret: str, entry: ApiKey, *, ttl_s: int = 12 * 3600,
                       now: float | None = None) -> str:
    """The console's session cookie for a logged-in key: signed like a customer token, with the
    console's own audience so neither is accepted as the other."""
    issued = int(now if now is not None else time.time())
    claims = {"sub": entry.name, "scope": entry.scope, "kid": key_id(entry),
              "aud": CONSOLE_AUDIENCE, "iat": issued, "exp": issued + ttl_s}
    return jwt.encode(claims, check_secret(secret), algorithm=TOKEN_ALGORITHM)


def verify_console_token(token: str, secrets_in_force: Sequence[str], *,
                         now: float | None = None) -> ConsoleSession:
    """The session in a console cookie (401 if forged, tampered with, expired or not one)."""
    claims = _decode(token, secrets_in_force, CONSOLE_AUDIENCE, "console session", now=now)
    if claims.get("scope") not in SCOPES or not isinstance(claims.get("kid"), str):
        raise AccessDenied(401, "invalid console session: no scope or key id")
    return ConsoleSession(name=claims["sub"], scope=claims["scope"], key_id=claims["kid"],
                          expires_at=int(claims["exp"]))


# --------------------------------------------------------------------------- API keys


class ApiKey(BaseModel):
    """One accepted key, as stored: its digest, never the key."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64, description="Who holds it (for rotation).")
    scope: Scope
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="hash_api_key(key)")


class ApiKeysFile(BaseModel):
    """A keys file (YAML): ``keys: [{name, scope, sha256}]``."""

    model_config = ConfigDict(extra="forbid")

    keys: list[ApiKey] = Field(default_factory=list)


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_api_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def parse_keys_env(value: str, variable: str) -> list[ApiKey]:
    """``scope:key,scope:key`` (plain keys, hashed at once) from an environment variable."""
    keys = []
    for n, item in enumerate(filter(None, (i.strip() for i in value.split(","))), 1):
        scope, sep, key = item.partition(":")
        if not sep or scope not in SCOPES or not key:
            raise ValueError(f"{variable}: item {n} must be 'scope:key' with scope one of "
                             f"{list(SCOPES)}")
        keys.append(ApiKey(name=f"{variable}[{n}]", scope=scope, sha256=hash_api_key(key)))
    return keys


def read_keys_file(path: Path) -> list[ApiKey]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return ApiKeysFile.model_validate(data).keys
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise ValueError(f"{path}: {exc}") from None


class KeyRing:
    """The API keys in force: inline digests, an environment variable, and a keys file.

    The file is re-read whenever its modification time changes; a file that no longer parses
    keeps the keys read last (and the error is kept for the operator), so a typo never locks
    every caller out.
    """

    def __init__(self, inline: Sequence[ApiKey] = (), file: str | None = None,
                 env_var: str | None = None, environ: Mapping[str, str] = os.environ) -> None:
        self._fixed = list(inline)
        if env_var and environ.get(env_var):
            self._fixed += parse_keys_env(environ[env_var], env_var)
        self.file = Path(file).expanduser() if file else None
        self._file_keys: list[ApiKey] = []
        self._file_mtime: float | None = None
        self.file_error: str | None = None
        if self.file is not None and self.file.exists():
            self._file_keys = read_keys_file(self.file)  # a broken file fails at start-up
            self._file_mtime = self.file.stat().st_mtime

    def _refresh(self) -> None:
        if self.file is None:
            return
        try:
            mtime = self.file.stat().st_mtime
        except FileNotFoundError:
            self._file_keys, self._file_mtime = [], None  # removed: its keys are revoked
            return
        except OSError as exc:
            self.file_error = str(exc)
            return
        if mtime != self._file_mtime:
            try:
                self._file_keys, self.file_error = read_keys_file(self.file), None
            except ValueError as exc:
                self.file_error = str(exc)
            self._file_mtime = mtime

    def find(self, key: str) -> ApiKey | None:
        """The entry of ``key`` (its name and scope), or None if no key in force matches
        (constant-time compare)."""
        self._refresh()
        digest = hash_api_key(key)
        found: ApiKey | None = None
        for entry in [*self._fixed, *self._file_keys]:
            if hmac.compare_digest(digest, entry.sha256):
                found = entry
        return found

    def by_id(self, kid: str) -> ApiKey | None:
        """The entry in force whose ``key_id`` is ``kid``; None once that key is revoked."""
        self._refresh()
        found: ApiKey | None = None
        for entry in [*self._fixed, *self._file_keys]:
            if hmac.compare_digest(key_id(entry), kid):
                found = entry
        return found

    def scope_of(self, key: str) -> Scope | None:
        """The scope of ``key``, or None if no key in force matches."""
        found = self.find(key)
        return found.scope if found is not None else None

    def __len__(self) -> int:
        self._refresh()
        return len(self._fixed) + len(self._file_keys)


def bearer_key(headers: Mapping[str, str]) -> str:
    """The API key of a request: ``Authorization: Bearer <key>`` or ``X-API-Key``."""
    header = headers.get("authorization", "")
    if header.startswith("Bearer "):
        return header.removeprefix("Bearer ").strip()
    return headers.get("x-api-key", "").strip()


# --------------------------------------------------------------------------- the gate

LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
CUSTOMER_TOKEN_HEADER = "x-customer-token"


class Gatekeeper:
    """Every route's check, in one place: the channel's key and scope, then the customer."""

    def __init__(self, keys: KeyRing, token_secrets: Sequence[str], *,
                 allow_anonymous: bool = False, trust_loopback: bool = False) -> None:
        self.keys = keys
        self.token_secrets = [check_secret(s) for s in token_secrets]
        self.allow_anonymous = allow_anonymous
        self.trust_loopback = trust_loopback

    def channel(self, headers: Mapping[str, str], client_host: str | None, scope: Scope) -> None:
        """Refuse a request whose API key is missing or wrong (401) or of another scope (403)."""
        key = bearer_key(headers)
        if not key and self.trust_loopback and client_host in LOOPBACK:
            return  # development only: see the module docstring
        if not key:
            raise AccessDenied(401, "an API key is required (Authorization: Bearer <key>)")
        found = self.keys.scope_of(key)
        if found is None:
            raise AccessDenied(401, "unknown API key")
        if found != scope:
            raise AccessDenied(403, f"this route needs a key of scope {scope!r}, not {found!r}")

    def customer(self, headers: Mapping[str, str]) -> CustomerIdentity | None:
        """The verified customer of a request, or None when it carries no token at all."""
        token = headers.get(CUSTOMER_TOKEN_HEADER, "").strip()
        if not token:
            return None
        return verify_customer_token(token, self.token_secrets)

    def new_customer(self, headers: Mapping[str, str]) -> tuple[CustomerIdentity, str | None]:
        """Who starts a session: the token's customer, or a new anonymous visitor (and its token)
        where the service allows them."""
        found = self.customer(headers)
        if found is not None:
            return found, None
        if not self.allow_anonymous:
            raise AccessDenied(401, "a customer token is required (X-Customer-Token), minted by "
                               "the business's app; this service takes no anonymous sessions")
        if not self.token_secrets:
            raise AccessDenied(401, "anonymous sessions need a customer-token secret configured")
        token = mint_anonymous_token(self.token_secrets[0])
        return verify_customer_token(token, self.token_secrets), token

    def owner(self, headers: Mapping[str, str], session_owner: str | None,
              session_id: str) -> CustomerIdentity:
        """The request's customer, who must be the one the session belongs to (else 403)."""
        found = self.customer(headers)
        if found is None:
            raise AccessDenied(401, "a customer token is required (X-Customer-Token)")
        if session_owner is None or not hmac.compare_digest(found.subject, session_owner):
            raise AccessDenied(403, f"session {session_id} belongs to another customer")
        return found
