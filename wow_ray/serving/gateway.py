"""The gateway: the dialogue service's HTTP API (FastAPI ingress of the dialogue app).

Every route but ``/healthz`` needs an API key of its scope (``Authorization: Bearer <key>``;
see wow_ray/serving/access.py). Customer routes also need the customer's token
(``X-Customer-Token``, minted by the business's app), and a session answers only the customer
who started it (403 otherwise)::

    customer  POST   /v1/sessions                    {"evidence", "metadata", "simulated"}
              POST   /v1/sessions/{id}/messages      {"content", "attachments"}  ?stream=true
              GET    /v1/sessions/{id}               state summary
              GET    /v1/sessions/{id}/transcript    the Transcript (wow_ray/agents/transcript.py)
              DELETE /v1/sessions/{id}               end the session
              POST   /v1/chat/completions            OpenAI-compatible facade (X-Session-Id)
              GET    /v1/models
    operator  GET    /v1/operator/...                sessions, backends, tickets
                                                     (wow_ray/serving/staff_routes.py)
              GET    /console/...                    the operators' web console (an operator
                                                     key, pasted once, in a cookie)
    admin     GET    /v1/admin/rules                 the rules in force, and deploying them
              PUT    /v1/admin/rules                 (wow_ray/serving/staff_routes.py)
              GET    /healthz                        no key

Every turn is saved (turn, state, ticket) before its reply is returned; a turn whose master
replica died is retried, which is safe because nothing of an unsaved turn persists (a
session's backend is rebuilt from its saved action log; see wow_ray/serving/turn_stream.py).
A retried turn's stream only extends the text already shown; if its reply departs from it,
the stream ends with an ``error`` and nothing is saved (``turn_stream.ExtendOnly``).
Requests are size-limited, bodies are validated by pydantic (a 4xx names the field), and
sessions are rate-limited per window.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

from fastapi import FastAPI, Header, HTTPException, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel
from ray import serve
from ray.serve.handle import DeploymentHandle
from sqlalchemy.exc import DBAPIError

from wow_ray.agents.events import (
    DoneEvent,
    ErrorEvent,
    FinalEvent,
    ServiceEvent,
    TurnReply,
)
from wow_ray.agents.local import new_session
from wow_ray.agents.sessions import SessionConflict, SessionNotFound, SessionStore
from wow_ray.serving.access import AccessDenied, CustomerIdentity, Scope
from wow_ray.serving.console import attach_console, console_app
from wow_ray.serving.dialogue_args import DialogueAppArgs
from wow_ray.serving.gateway_models import (
    ChatCompletionsBody,
    CreateSession,
    MessageIn,
    completion_response,
    completion_stream,
)
from wow_ray.serving.metrics import record_turn
from wow_ray.serving.session_logs import (
    in_session,
    install_session_logging,
    session_context,
)
from wow_ray.serving.staff_routes import StaffRoutes
from wow_ray.serving.staff_routes import router as staff_router
from wow_ray.serving.turn_stream import (
    DIVERGED_DETAIL,
    RESTART,
    Diverged,
    events_as_sse,
    extended,
    logger,
    resumed,
    retrying,
)

app = FastAPI(title="WOW-Ray dialogue service", version="1")
STORE_DOWN = "the sessions database is unavailable; nothing of this request was stored, try again"
STORE_RETRY_S = "5"


@app.exception_handler(DBAPIError)
async def _store_unavailable(request: Request, exc: DBAPIError) -> JSONResponse:
    """The sessions database is down or unreachable: a clear 503, never a 500. Each turn is saved
    in one transaction, so a failed save leaves no half-written turn, and the engine's
    pre-ping reconnects once the database is back."""
    return JSONResponse({"detail": STORE_DOWN}, status_code=503,
                        headers={"Retry-After": STORE_RETRY_S})
app.mount("/console", console_app)  # the operators' web console (wow_ray/serving/console/)
app.include_router(staff_router)  # before @serve.ingress below, which binds its methods too


@serve.deployment(name="Gateway", max_ongoing_requests=256)
@serve.ingress(app)
class Gateway(StaffRoutes):
    def __init__(self, args_json: str, master: DeploymentHandle) -> None:
        from wow_ray.scenario import load_pack

        self.args = DialogueAppArgs.model_validate_json(args_json)
        self.options = self.args.gateway
        self.pack = load_pack(self.args.scenario)
        self.store = SessionStore(self.args.database_url)
        self.master = master
        self.master_stream = master.options(stream=True)
        self.busy: set[str] = set()
        install_session_logging()
        self.gate = self.options.auth.gatekeeper()
        attach_console(self)

    # -- checks ---------------------------------------------------------------------------

    def authorize(self, request: Request, scope: Scope) -> None:
        """The request's API key is of ``scope`` (401 without a valid key, 403 another scope)."""
        try:
            self.gate.channel(request.headers, request.client.host if request.client else None,
                              scope)
        except AccessDenied as exc:
            raise HTTPException(exc.status, exc.detail) from None

    def customer(self, request: Request, state: Any) -> CustomerIdentity:
        """The request's customer, who must own ``state``'s session."""
        try:
            return self.gate.owner(request.headers, state.owner, state.session_id)
        except AccessDenied as exc:
            raise HTTPException(exc.status, exc.detail) from None

    async def _owned(self, request: Request, session_id: str) -> tuple[Any, int]:
        """A session of the request's customer: 404 when there is none, 403 when it is another's."""
        state, version = await self._load(session_id)
        self.customer(request, state)
        return state, version

    async def body(self, request: Request) -> bytes:
        limit = self.options.limits.max_request_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise HTTPException(413, f"request body over {limit} bytes")
        data = b""
        async for chunk in request.stream():
            data += chunk
            if len(data) > limit:
                raise HTTPException(413, f"request body over {limit} bytes")
        return data

    def _model(self, cls: type[BaseModel], data: bytes) -> Any:
        from pydantic import ValidationError

        try:
            return cls.model_validate_json(data or b"{}")
        except ValidationError as exc:
            detail = [{"field": ".".join(str(p) for p in e["loc"]) or "body", "error": e["msg"]}
                      for e in exc.errors()]
            raise HTTPException(422, detail) from None

    async def _load(self, session_id: str) -> tuple[Any, int]:
        try:
            return await asyncio.to_thread(self.store.load, session_id)
        except SessionNotFound:
            raise HTTPException(404, f"no session {session_id!r}") from None

    async def _admit(self, request: Request, session_id: str, message: MessageIn) -> tuple[Any, int]:
        limits = self.options.limits
        if len(message.content) > limits.max_message_chars:
            raise HTTPException(422, [{"field": "content", "error":
                                       f"at most {limits.max_message_chars} characters"}])
        unknown = [a for a in message.attachments if a not in self.pack.manifest.dialogue.evidence]
        if unknown:
            raise HTTPException(422, [{"field": "attachments", "error": f"unknown kinds {unknown}; "
                                       f"expected {self.pack.manifest.dialogue.evidence}"}])
        state, version = await self._owned(request, session_id)
        if state.status not in ("active", "human"):  # human: a colleague answers (_to_human)
            why = "handed over to a human colleague" if state.status == "handed_off" else "ended"
            raise HTTPException(409, f"session {session_id} was {why}; start a new one")
        since = time.time() - limits.window_s
        from datetime import UTC, datetime

        recent = await asyncio.to_thread(self.store.turns_since, session_id,
                                         datetime.fromtimestamp(since, UTC))
        if recent >= limits.turns_per_window:
            raise HTTPException(429, f"at most {limits.turns_per_window} messages per "
                                f"{limits.window_s:g} s in a session",
                                headers={"Retry-After": str(int(limits.window_s))})
        if session_id in self.busy:
            raise HTTPException(409, "this session is already answering a message")
        return state, version

    # -- turns ----------------------------------------------------------------------------

    async def _run_turn(self, state: Any, message: MessageIn) -> Any:
        async def once() -> AsyncIterator[Any]:
            yield await self.master.turn.remote(state, message.content, message.attachments)

        outcome = None
        async for item in retrying(once, self.options.turn_retry_s):
            if item is not RESTART:
                outcome = item
        return outcome

    async def _save(self, outcome: Any, version: int) -> None:
        try:
            await asyncio.to_thread(self.store.save_turn, outcome.state, outcome.turn, version)
        except SessionConflict as exc:
            raise HTTPException(409, str(exc)) from None
        except DBAPIError:  # inside a stream too, where the app's handler cannot answer
            raise HTTPException(503, STORE_DOWN, headers={"Retry-After": STORE_RETRY_S}) from None
        logger.info("turn %d saved", outcome.turn.index, extra={
            "turn": outcome.turn.index, "status": outcome.state.status,
            "intent": outcome.turn.intent})  # inside session_context: the line names the session
        record_turn(outcome.turn, self.pack.name)  # metrics count stored turns only

    def _out(self, outcome: Any, started: float) -> TurnReply:
        return TurnReply(session_id=outcome.state.session_id, turn=outcome.turn.index,
                       reply=outcome.turn.reply, status=outcome.state.status,
                       ticket_id=outcome.state.ticket_id, intent=outcome.turn.intent,
                       latency_s=round(time.perf_counter() - started, 4))

    async def _to_human(self, state: Any, message: MessageIn, started: float) -> TurnReply:
        """A session a colleague took over: the message is stored for them; no agent runs."""
        from wow_ray.agents.sessions import SessionError

        try:
            turn = await asyncio.to_thread(self.store.human_turn, state.session_id,
                                           customer=message.content,
                                           attachments=message.attachments)
        except SessionError as exc:
            raise HTTPException(409, str(exc)) from None
        return TurnReply(session_id=state.session_id, turn=turn.index, reply="", status="human",
                         ticket_id=state.ticket_id, latency_s=round(time.perf_counter() - started, 4))

    async def turn(self, request: Request, session_id: str, message: MessageIn) -> TurnReply:
        started = time.perf_counter()
        state, version = await self._admit(request, session_id, message)
        if state.status == "human":
            return await self._to_human(state, message, started)
        self.busy.add(session_id)
        try:
            with session_context(session_id):
                outcome = await self._run_turn(state, message)
                await self._save(outcome, version)
        finally:
            self.busy.discard(session_id)
        return self._out(outcome, started)

    def turn_events(self, request: Request, session_id: str,
                    message: MessageIn) -> AsyncIterator[ServiceEvent]:
        """The turn's events for the client; the turn is saved before ``done``. What is
        logged while they are made carries the session id, as a plain turn's does."""
        return in_session(session_id, self._turn_events(request, session_id, message))

    async def _turn_events(self, request: Request, session_id: str,
                           message: MessageIn) -> AsyncIterator[ServiceEvent]:
        started = time.perf_counter()
        state, version = await self._admit(request, session_id, message)
        if state.status == "human":
            yield DoneEvent(**(await self._to_human(state, message, started)).model_dump())
            return
        self.busy.add(session_id)
        try:
            outcome = None
            attempts = retrying(lambda: self.master_stream.events.remote(
                state, message.content, message.attachments), self.options.turn_retry_s)
            async with aclosing(attempts):  # a restarted turn only extends what was shown
                try:
                    async for event in extended(attempts):
                        if isinstance(event, FinalEvent):
                            outcome = event.outcome
                        else:
                            yield event
                except Diverged as exc:  # nothing saved: see ExtendOnly
                    logger.warning("session %s: restarted turn not saved: %s", session_id, exc)
                    yield ErrorEvent(status=503, detail=DIVERGED_DETAIL)
                    return
            await self._save(outcome, version)
            yield DoneEvent(**self._out(outcome, started).model_dump())
        finally:
            self.busy.discard(session_id)

    # -- routes ---------------------------------------------------------------------------

    @app.post("/v1/sessions", status_code=201)
    async def create_session(self, request: Request) -> dict:
        self.authorize(request, "customer")
        body = self._model(CreateSession, await self.body(request))
        if body.scenario not in (None, self.args.scenario, self.pack.name):
            raise HTTPException(422, [{"field": "scenario", "error":
                                       f"this service serves {self.pack.name!r}"}])
        unknown = [e for e in body.evidence if e not in self.pack.manifest.dialogue.evidence]
        if unknown:
            raise HTTPException(422, [{"field": "evidence", "error": f"unknown kinds {unknown}"}])
        state, token = await self._new_session(request, body.evidence,
                                               {**body.metadata, "simulated": body.simulated})
        brand = self.args.dialogue.brand or self.pack.manifest.title
        out = {"session_id": state.session_id, "scenario": self.pack.name, "status": "active",
               "greeting": f"Hello, and welcome to {brand} customer service! How can I help?"}
        if token is not None:
            out["customer_token"] = token  # an anonymous visitor's: it owns the session
        return out

    async def _new_session(self, request: Request, evidence: list[str],
                           metadata: dict[str, Any]) -> tuple[Any, str | None]:
        """A session of the request's customer (or of a new anonymous visitor, and its token)."""
        try:
            who, token = self.gate.new_customer(request.headers)
        except AccessDenied as exc:
            raise HTTPException(exc.status, exc.detail) from None
        state = new_session(self.pack.name, user_id=who.user_id, owner=who.subject,
                            identity_verified=who.verified and not who.anonymous,
                            evidence=evidence)
        await asyncio.to_thread(self.store.create, state, json.dumps(metadata))
        return state, token

    @app.post("/v1/sessions/{session_id}/messages")
    async def send(self, session_id: str, request: Request,
                   stream: bool = Query(False, description="Answer as server-sent events.")) -> Any:
        self.authorize(request, "customer")
        message = self._model(MessageIn, await self.body(request))
        if not stream:
            return (await self.turn(request, session_id, message)).model_dump()
        events = self.turn_events(request, session_id, message)
        first = await anext(events)  # admission errors become HTTP errors, not broken streams
        return StreamingResponse(events_as_sse(first, events), media_type="text/event-stream")

    @app.get("/v1/sessions/{session_id}")
    async def session(self, session_id: str, request: Request) -> dict:
        self.authorize(request, "customer")
        state, version = await self._owned(request, session_id)
        return {"session_id": session_id, "scenario": state.scenario, "status": state.status,
                "turns": state.turns, "version": version, "ticket_id": state.ticket_id,
                "user_id": state.dialogue.user_id,
                "active": state.active.model_dump() if state.active else None}

    @app.get("/v1/sessions/{session_id}/transcript")
    async def transcript(self, session_id: str, request: Request) -> JSONResponse:
        self.authorize(request, "customer")
        await self._owned(request, session_id)
        return await self._transcript(session_id)

    async def _transcript(self, session_id: str) -> JSONResponse:
        try:
            found = await asyncio.to_thread(self.store.transcript, session_id)
        except SessionNotFound:
            raise HTTPException(404, f"no session {session_id!r}") from None
        return JSONResponse(found.model_dump(mode="json"))

    @app.delete("/v1/sessions/{session_id}")
    async def end(self, session_id: str, request: Request) -> dict:
        self.authorize(request, "customer")
        await self._owned(request, session_id)
        try:
            state = await asyncio.to_thread(self.store.end, session_id, "api")
        except SessionNotFound:
            raise HTTPException(404, f"no session {session_id!r}") from None
        except SessionConflict as exc:
            raise HTTPException(409, str(exc)) from None
        return {"session_id": session_id, "status": state.status}

    @app.post("/v1/chat/completions")
    async def chat_completions(self, request: Request,
                               x_session_id: str | None = Header(None)) -> Any:
        """OpenAI-compatible: the last user message is this turn; the session is in
        ``X-Session-Id`` (or ``session_id`` in the body), created when absent."""
        self.authorize(request, "customer")
        body = self._model(ChatCompletionsBody, await self.body(request))
        session_id = x_session_id or body.session_id
        headers: dict[str, str] = {}
        if session_id is None:  # identity from the customer token; ``user`` is only a label
            if mismatch := body.history_mismatch([]):
                raise HTTPException(409, [{"field": "messages", "error": mismatch}])
            state, token = await self._new_session(request, [], {"channel": "openai"})
            session_id = state.session_id
            if token is not None:
                headers["X-Customer-Token"] = token
        else:
            state, _ = await self._owned(request, session_id)
            history = [(line.role, line.text) for line in state.history]
            if mismatch := body.history_mismatch(history):
                raise HTTPException(409, [{"field": "messages", "error": mismatch}])
        message = MessageIn(content=body.last_user_message())
        headers["X-Session-Id"] = session_id
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        if not body.stream:
            out = await self.turn(request, session_id, message)
            return JSONResponse(completion_response(completion_id, self.pack.name, out.reply,
                                                    session_id), headers=headers)
        events = self.turn_events(request, session_id, message)
        first = await anext(events)
        return StreamingResponse(completion_stream(resumed(first, events), completion_id,
                                                   self.pack.name),
                                 media_type="text/event-stream", headers=headers)

    @app.get("/v1/models")
    async def models(self, request: Request) -> dict:
        self.authorize(request, "customer")
        return {"object": "list", "data": [{"id": self.pack.name, "object": "model",
                                            "owned_by": "wow-ray"}]}

    @app.get("/healthz")
    async def healthz(self) -> dict:
        return {"status": "ok", "scenario": self.pack.name}
