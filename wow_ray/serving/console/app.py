"""The operator console: server-rendered pages mounted on the gateway at ``/console``.

Who may use it: a holder of an **operator** (or **admin**) API key. A browser cannot send an
Authorization header when it navigates, so the login page takes the key once, checks it, and
sets a cookie holding a signed, expiring session token (a JWT signed like the customer tokens,
with the console's own audience, so neither passes for the other) that names the key (its name,
scope and id), never the key itself. Every request checks that this key is still in the key
ring: revoking it ends the session at the next request. The cookie is ``HttpOnly`` (no script
reads it), ``SameSite=Strict`` (no other site's page sends it) and scoped to the console's path;
only console routes read it (the gateway's JSON API still wants the header). Every POST must
also come from the console's own origin (its ``Origin`` or, failing that, ``Referer`` header
names this host): with the Strict cookie that is the CSRF defence. Pages are Jinja2 templates
with autoescaping on, and a Content-Security-Policy allows only the console's own script file,
so text a customer wrote is shown, never run. Deploying rules needs an admin key.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import Depends, FastAPI, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader

from wow_ray.agents.sessions import SessionError, SessionNotFound, TicketConflict
from wow_ray.agents.transcript import Transcript
from wow_ray.serving.access import (
    LOOPBACK,
    AccessDenied,
    ApiKey,
    ConsoleSession,
    bearer_key,
    mint_console_token,
    verify_console_token,
)
from wow_ray.serving.console.views import (
    SessionFilter,
    denied_calls,
    prompt_messages,
    session_row,
)

HERE = Path(__file__).parent
COOKIE = "wow_console_session"
CONSOLE_SCOPES = ("operator", "admin")
SESSION_S = 12 * 3600
RECENT = 200  # sessions the lists and histories read
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")

console_app = FastAPI(title="WOW-Ray console", docs_url=None, redoc_url=None, openapi_url=None)
console_app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
templates = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=True,
                        trim_blocks=True, lstrip_blocks=True)
templates.filters["pretty"] = lambda v: json.dumps(v, indent=2, ensure_ascii=False, default=str)


# The gateway replica of this process. Not ``console_app.state``: Serve ships the ingress app
# to its replicas as a copy, so the mounted app a request reaches is not this module's object.
_attached: dict[str, Any] = {}


def attach_console(gateway: Any) -> None:
    """Give the console the gateway replica it runs in (its store, pack, gate and agents)."""
    _attached["gateway"] = gateway


def gateway_of(request: Request) -> Any:
    return _attached["gateway"]


class NeedLogin(Exception):
    pass


@console_app.exception_handler(NeedLogin)
async def _to_login(request: Request, _exc: NeedLogin) -> Response:
    if request.method == "GET":
        target = request.url.path.removeprefix(base(request)) or "/"
        return RedirectResponse(f"{base(request)}/login?next={quote(target)}", status_code=303)
    return Response("an operator key is required", status_code=401)


@console_app.middleware("http")
async def _headers(request: Request, call_next: Any) -> Response:
    response = await call_next(request)
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    return response


def base(request: Request) -> str:
    """The console's own URL path (the app's route prefix, then /console)."""
    return request.scope.get("root_path", "").rstrip("/")


# Signs console cookies when the service has no customer-token secret: this replica's own, so
# a session lasts as long as the replica (a restart, or another replica, asks to log in again).
_REPLICA_SECRET = [secrets.token_urlsafe(48)]


def session_secrets(gate: Any) -> list[str]:
    """The secrets a console cookie is signed (the first) and checked with."""
    return gate.token_secrets or _REPLICA_SECRET


def console_user(request: Request) -> ConsoleSession:
    """Who is logged in: the console cookie's key, still in force and of a console scope, or an
    Authorization header's key. Anything else goes to the login page."""
    gate = gateway_of(request).gate
    cookie, key = request.cookies.get(COOKIE), bearer_key(request.headers)
    if cookie:
        try:
            found = verify_console_token(cookie, session_secrets(gate))
        except AccessDenied:
            raise NeedLogin() from None
        entry = gate.keys.by_id(found.key_id)  # a revoked key ends its sessions here
        if entry is None or entry.name != found.name or entry.scope not in CONSOLE_SCOPES:
            raise NeedLogin()
        return ConsoleSession(name=entry.name, scope=entry.scope, key_id=found.key_id,
                              expires_at=found.expires_at)
    if key:
        entry = gate.keys.find(key)
        if entry is None or entry.scope not in CONSOLE_SCOPES:
            raise NeedLogin()
        return ConsoleSession(name=entry.name, scope=entry.scope, key_id="", expires_at=0)
    host = request.client.host if request.client else None
    if gate.trust_loopback and host in LOOPBACK:
        return ConsoleSession(name="loopback", scope="admin", key_id="", expires_at=0)
    raise NeedLogin()


def operator(request: Request) -> str:
    """The operator's name (their key's), for pages any console user may see."""
    return console_user(request).name


def same_origin(request: Request) -> None:
    """Refuse a POST that another site's page made (CSRF): Origin, else Referer, must be us."""
    claimed = request.headers.get("origin") or request.headers.get("referer")
    if not claimed or urlsplit(claimed).netloc != request.headers.get("host"):
        raise HTTPException(403, "cross-origin request refused")


def page(request: Request, template: str, **context: Any) -> HTMLResponse:
    html = templates.get_template(template).render(base=base(request), **context)
    return HTMLResponse(html)


async def recent_transcripts(gateway: Any, limit: int = RECENT) -> list[tuple[Transcript, bool]]:
    """The newest sessions' transcripts, each with whether it was a simulated customer's."""
    found = await asyncio.to_thread(gateway.store.recent_transcripts, limit)
    return [(t, bool(labels.get("simulated"))) for t, labels in found]


# --------------------------------------------------------------------------- login


@console_app.get("/login", response_class=HTMLResponse)
async def login_page(request: Request, next: str = "/") -> HTMLResponse:
    return page(request, "login.html", next=next, error=None)


@console_app.post("/login")
async def login(request: Request, key: str = Form(...), next: str = Form("/")) -> Response:
    same_origin(request)
    gate = gateway_of(request).gate
    entry: ApiKey | None = gate.keys.find(key.strip())
    if entry is None or entry.scope not in CONSOLE_SCOPES:
        response = page(request, "login.html", next=next,
                        error="That is not an operator key of this service.")
        response.status_code = 401
        return response
    target = next if next.startswith("/") and not next.startswith("//") else "/"
    response = RedirectResponse(base(request) + target, status_code=303)
    token = mint_console_token(session_secrets(gate)[0], entry, ttl_s=SESSION_S)
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https", path=base(request) or "/",
                        max_age=SESSION_S)
    return response


@console_app.post("/logout")
async def logout(request: Request) -> Response:
    same_origin(request)
    response = RedirectResponse(f"{base(request)}/login", status_code=303)
    response.delete_cookie(COOKIE, path=base(request) or "/")
    return response


# --------------------------------------------------------------------------- sessions


@console_app.get("/")
async def home(request: Request, who: str = Depends(operator)) -> Response:
    return RedirectResponse(f"{base(request)}/sessions", status_code=303)


@console_app.get("/sessions", response_class=HTMLResponse)
async def sessions_page(request: Request, fragment: bool = False,
                        who: str = Depends(operator)) -> HTMLResponse:
    found = SessionFilter.model_validate(dict(request.query_params))
    rows = [session_row(t, sim) for t, sim in await recent_transcripts(gateway_of(request))]
    intents = sorted({i for r in rows for i in r.intents})
    shown = [r for r in rows if found.keeps(r)]
    return page(request, "_sessions_table.html" if fragment else "sessions.html", rows=shown,
                filter=found, intents=intents, total=len(rows), operator=who)


@console_app.get("/sessions/{session_id}", response_class=HTMLResponse)
async def session_page(request: Request, session_id: str, fragment: bool = False,
                       who: str = Depends(operator)) -> HTMLResponse:
    gateway = gateway_of(request)
    try:
        t = await asyncio.to_thread(gateway.store.transcript, session_id)
    except SessionNotFound:
        raise HTTPException(404, f"no session {session_id!r}") from None
    ticket = (await asyncio.to_thread(gateway.store.ticket, t.outcome.ticket_id)
              if t.outcome.ticket_id else None)
    return page(request, "_session_live.html" if fragment else "session.html", t=t,
                ticket=ticket, denials=denied_calls(t), prompt_messages=prompt_messages,
                operator=who)


@console_app.get("/events")
async def events(request: Request, session: str | None = None,
                 who: str = Depends(operator)) -> StreamingResponse:
    """Server-sent ``change`` events when a session (or, without one, any session) changes;
    the page then fetches its fragment again. Ends after ten minutes (the browser reconnects)."""
    store = gateway_of(request).store

    def fingerprint() -> str:
        found = store.version_of(session) if session else store.last_change()
        return f"{found[0]}:{found[1]}"

    async def stream() -> AsyncIterator[str]:
        last = await asyncio.to_thread(fingerprint)
        yield f"event: hello\ndata: {json.dumps(last)}\n\n"
        for tick in range(600):
            if await request.is_disconnected():
                return
            await asyncio.sleep(1.0)
            now = await asyncio.to_thread(fingerprint)
            if now != last:
                last = now
                yield f"event: change\ndata: {json.dumps(now)}\n\n"
            elif tick % 15 == 14:
                yield ": ping\n\n"

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store"})


# --------------------------------------------------------------------------- tickets


@console_app.get("/tickets", response_class=HTMLResponse)
async def tickets_page(request: Request, fragment: bool = False,
                       who: str = Depends(operator)) -> HTMLResponse:
    found = await asyncio.to_thread(gateway_of(request).store.tickets, None, RECENT)
    waiting = [t for t in found if t["status"] in ("open", "taken")]
    done = [t for t in found if t["status"] not in ("open", "taken")]
    return page(request, "_tickets_table.html" if fragment else "tickets.html",
                waiting=waiting, done=done, operator=who)


async def _ticket_move(request: Request, ticket_id: str, move: str, who: str) -> Response:
    same_origin(request)
    store = gateway_of(request).store
    do = {"take": store.take_ticket, "hand-back": store.hand_back, "close": store.close_ticket}
    try:
        state = await asyncio.to_thread(do[move], ticket_id, who)
    except SessionNotFound:
        raise HTTPException(404, f"no ticket {ticket_id!r}") from None
    except TicketConflict as exc:
        raise HTTPException(409, str(exc)) from None
    return RedirectResponse(f"{base(request)}/sessions/{state.session_id}", status_code=303)


@console_app.post("/tickets/{ticket_id}/take")
async def take(request: Request, ticket_id: str, who: str = Depends(operator)) -> Response:
    return await _ticket_move(request, ticket_id, "take", who)


@console_app.post("/tickets/{ticket_id}/hand-back")
async def hand_back(request: Request, ticket_id: str, who: str = Depends(operator)) -> Response:
    return await _ticket_move(request, ticket_id, "hand-back", who)


@console_app.post("/tickets/{ticket_id}/close")
async def close(request: Request, ticket_id: str, who: str = Depends(operator)) -> Response:
    return await _ticket_move(request, ticket_id, "close", who)


@console_app.post("/sessions/{session_id}/reply")
async def reply(request: Request, session_id: str, text: str = Form(..., min_length=1,
                                                                     max_length=4000),
                who: str = Depends(operator)) -> Response:
    """The colleague's reply to the customer, stored as a turn marked human."""
    same_origin(request)
    try:
        await asyncio.to_thread(gateway_of(request).store.human_turn, session_id,
                                reply=text.strip(), operator=who)
    except SessionNotFound:
        raise HTTPException(404, f"no session {session_id!r}") from None
    except SessionError as exc:
        raise HTTPException(409, str(exc)) from None
    return RedirectResponse(f"{base(request)}/sessions/{session_id}", status_code=303)


from wow_ray.serving.console import pages as _pages  # noqa: E402,F401 - registers its routes
from wow_ray.serving.console import rules_pages as _rules_pages  # noqa: E402,F401
