"""The gateway's routes for staff: operators read sessions, backends and tickets; admins read
and deploy the rules. Each needs an API key of its scope (wow_ray/serving/access.py).

    operator  GET    /v1/operator/sessions           recent sessions
              GET    /v1/operator/sessions/{id}/transcript
              GET    /v1/operator/sessions/{id}/backend   state hash, rows changed: what
                                                          evaluation judges
              GET    /v1/operator/tickets/{ticket_id}
    admin     GET    /v1/admin/rules                 the rules version in force
              PUT    /v1/admin/rules                 {"text"}: deploy a rules file to every
                                                     agent (wow_ray/serving/rules_deploy.py)

``StaffRoutes`` is a base class of the Gateway deployment (wow_ray/serving/gateway.py), which
includes ``router`` in its app; Serve's ingress binds inherited route methods to the replica.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse

from wow_ray.serving import rules_deploy

router = APIRouter()


class StaffRoutes:
    """Operator and admin routes; they use the gateway's store, pack, master and checks."""

    store: Any
    pack: Any
    master: Any

    # -- operator routes ------------------------------------------------------------------

    @router.get("/v1/operator/sessions")
    async def operator_sessions(self, request: Request,
                                limit: int = Query(50, ge=1, le=500)) -> dict:
        self.authorize(request, "operator")
        states = await asyncio.to_thread(self.store.recent_states, limit)
        return {"sessions": [
            {"session_id": state.session_id, "status": state.status, "turns": state.turns,
             "user_id": state.dialogue.user_id, "ticket_id": state.ticket_id,
             "intent": state.active.intent if state.active else None} for state in states]}

    @router.get("/v1/operator/sessions/{session_id}/transcript")
    async def operator_transcript(self, session_id: str, request: Request) -> JSONResponse:
        self.authorize(request, "operator")
        return await self._transcript(session_id)

    @router.get("/v1/operator/sessions/{session_id}/backend")
    async def backend(self, session_id: str, request: Request) -> dict:
        """The session's business backend after its actions: what evaluation judges."""
        from wow_ray.scenario import replay

        self.authorize(request, "operator")
        state, _ = await self._load(session_id)
        return replay(self.pack, None, state.actions, check=False).to_dict()

    @router.get("/v1/operator/tickets/{ticket_id}")
    async def ticket(self, ticket_id: str, request: Request) -> dict:
        self.authorize(request, "operator")
        found = await asyncio.to_thread(self.store.ticket, ticket_id)
        if found is None:
            raise HTTPException(404, f"no ticket {ticket_id!r}")
        return found

    # -- admin routes ---------------------------------------------------------------------

    @router.get("/v1/admin/rules")
    async def rules(self, request: Request) -> dict:
        self.authorize(request, "admin")
        return {"scenario": self.pack.name, "version": await self.master.rules_version.remote()}

    @router.put("/v1/admin/rules")
    async def deploy_rules(self, request: Request) -> dict:
        self.authorize(request, "admin")
        return await rules_deploy.deploy_request(self, request)
