"""The console's models and demonstration-chat pages (routes on ``console_app``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

from fastapi import Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from wow_ray.agents.events import ErrorEvent, to_sse
from wow_ray.serving.console.app import (
    base,
    console_app,
    gateway_of,
    operator,
    page,
    recent_transcripts,
    same_origin,
)
from wow_ray.serving.console.charts import line_chart
from wow_ray.serving.console.views import models_seen

DEMO_CUSTOMER = "U0214"  # the demo's customer: order O10337 arrived 20 minutes late


# --------------------------------------------------------------------------- models


def _agents_models(gateway: Any) -> dict[str, Any]:
    """Per agent: its adapter setting and the model id it requests (resolved through the
    registry as the agents resolve it); the registry's adapters and evaluation reports; the
    loop's turns (wow_ray/flywheel/history.py, as ``wow-ray flywheel history`` reads them)."""
    from wow_ray.config import load_settings
    from wow_ray.flywheel.history import loop_history
    from wow_ray.registry import EntryKind, Registry
    from wow_ray.serving.adapters import resolve_adapters

    args = gateway.args
    settings = load_settings(args.llm.config_file, **args.llm.settings)
    registry = Registry(settings.storage_path)
    base_model = settings.model.split(":")[0]
    try:
        resolved = resolve_adapters(args.dialogue, registry, base_model)
    except Exception:  # noqa: BLE001 - show the page; the column says what failed
        resolved = None
    agents = []
    for name in args.dialogue.model_agents():
        model = (resolved.agent(name).settings.model if resolved is not None else None)
        agents.append({"agent": name, "adapter": args.dialogue.adapter(name) or "none",
                       "model": model or base_model})
    reports = sorted(registry.entries(EntryKind.REPORT), key=lambda e: e.created_at)
    turns = loop_history(registry, args.scenario)
    return {"agents": agents, "adapters": registry.entries(EntryKind.ADAPTER),
            "reports": reports[::-1], "turns": turns[::-1],
            "turns_chart": line_chart(
                [f"t{t.turn}" for t in turns],
                {"success": [t.production_success for t in turns],
                 "model share": [t.mean_model_share for t in turns]},
                "the loop: production success and model share per turn") if turns else None,
            "reports_chart": line_chart(
                [e.created_at.strftime("%m-%d %H:%M") for e in reports],
                {"success": [_number(e.metadata.get("success")) for e in reports],
                 "model share": [_mean(e.metadata.get("model_share")) for e in reports]},
                "evaluation reports: success and model share over time") if reports else None}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def _mean(shares: Any) -> float | None:
    known = [v for v in (shares or {}).values() if isinstance(v, int | float)]
    return sum(known) / len(known) if known else None


@console_app.get("/models", response_class=HTMLResponse)
async def models_page(request: Request, who: str = Depends(operator)) -> HTMLResponse:
    gateway = gateway_of(request)
    found = await asyncio.to_thread(_agents_models, gateway)
    seen = models_seen([t for t, _ in await recent_transcripts(gateway)])
    return page(request, "models.html", seen=seen, operator=who, **found)


# --------------------------------------------------------------------------- demo chat


def _as_customer(gateway: Any, subject: str) -> Any:
    """A request of the customer channel acting for ``subject``, as the business's app would
    send it: the console plays the app, minting the token with the gateway's own secret."""
    from wow_ray.serving.access import mint_customer_token

    if not gateway.gate.token_secrets:
        raise HTTPException(409, "customer tokens are not configured on this service")
    token = mint_customer_token(gateway.gate.token_secrets[0], subject,
                                verified=not subject.startswith("anon:"))
    return SimpleNamespace(headers={"x-customer-token": token}, client=None)


@console_app.get("/chat", response_class=HTMLResponse)
async def chat_page(request: Request, session: str | None = None,
                    who: str = Depends(operator)) -> HTMLResponse:
    t = None
    if session:
        t = await asyncio.to_thread(gateway_of(request).store.transcript, session)
    return page(request, "chat.html", t=t, demo_customer=DEMO_CUSTOMER, operator=who)


@console_app.get("/chat/{session_id}/lines", response_class=HTMLResponse)
async def chat_lines(request: Request, session_id: str,
                     who: str = Depends(operator)) -> HTMLResponse:
    t = await asyncio.to_thread(gateway_of(request).store.transcript, session_id)
    return page(request, "_chat_lines.html", t=t)


@console_app.post("/chat/new")
async def chat_new(request: Request, customer: str = Form(DEMO_CUSTOMER, max_length=64),
                   who: str = Depends(operator)) -> Response:
    same_origin(request)
    gateway = gateway_of(request)
    state, _ = await gateway._new_session(_as_customer(gateway, customer.strip()), [],
                                          {"channel": "console-demo", "simulated": False})
    return RedirectResponse(f"{base(request)}/chat?session={state.session_id}", status_code=303)


@console_app.post("/chat/{session_id}/messages")
async def chat_send(request: Request, session_id: str, content: str = Form(...),
                    who: str = Depends(operator)) -> StreamingResponse:
    """The customer's message, answered as server-sent events (the gateway's own stream)."""
    from wow_ray.serving.gateway_models import MessageIn

    same_origin(request)
    gateway = gateway_of(request)
    state, _ = await gateway._load(session_id)
    customer = _as_customer(gateway, state.owner or "")
    events = gateway.turn_events(customer, session_id, MessageIn(content=content))

    async def sse() -> AsyncIterator[str]:
        try:
            async for event in events:
                yield to_sse(event)
        except HTTPException as exc:
            yield to_sse(ErrorEvent(status=exc.status_code, detail=exc.detail))

    return StreamingResponse(sse(), media_type="text/event-stream")
