"""The console's rules, models and demonstration-chat pages (routes on ``console_app``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import yaml
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
from wow_ray.serving.console.views import models_seen, rules_history

DEMO_CUSTOMER = "U0214"  # the demo's customer: order O10337 arrived 20 minutes late
AGENT_DEPLOYMENTS = ("Policy", "Understanding", "Solution", "Response", "Handoff", "Master")


# --------------------------------------------------------------------------- rules


@console_app.get("/rules", response_class=HTMLResponse)
async def rules_page(request: Request, who: str = Depends(operator)) -> HTMLResponse:
    gateway = gateway_of(request)
    in_force = await gateway.master.rules_in_force.remote()
    text = yaml.safe_dump(in_force["rules"], sort_keys=False, allow_unicode=True)
    history = rules_history([t for t, _ in await recent_transcripts(gateway)])
    return page(request, "rules.html", in_force=in_force, text=text, history=history,
                result=None, operator=who)


def _validate(gateway: Any, text: str) -> dict[str, Any]:
    """The rule engine's verdict on an edited rules file: its version, or every issue with
    file, line and field. Checked on a scratch copy of the pack: the rules in force stay."""
    from wow_ray.scenario import load_pack
    from wow_ray.scenario.errors import PackValidationError

    scratch = getattr(gateway, "_console_scratch_pack", None)
    if scratch is None:
        scratch = gateway._console_scratch_pack = load_pack(gateway.args.scenario)
    try:
        version = scratch.rules.load_text(text, "rules.yaml")
    except PackValidationError as exc:
        return {"ok": False, "issues": [{"file": i.file, "line": i.line, "field": i.field,
                                         "message": i.message} for i in exc.issues]}
    user_config = {"rules": yaml.safe_load(text)}
    deployments = [{"name": name, "user_config": user_config} for name in AGENT_DEPLOYMENTS]
    return {"ok": True, "version": version,
            "deploy_yaml": yaml.safe_dump({"deployments": deployments}, sort_keys=False,
                                          allow_unicode=True)}


@console_app.post("/rules/validate", response_class=HTMLResponse)
async def validate_rules(request: Request, text: str = Form(...),
                         who: str = Depends(operator)) -> HTMLResponse:
    same_origin(request)
    gateway = gateway_of(request)
    result = await asyncio.to_thread(_validate, gateway, text)
    in_force = await gateway.master.rules_in_force.remote()
    history = rules_history([t for t, _ in await recent_transcripts(gateway)])
    response = page(request, "rules.html", in_force=in_force, text=text, history=history,
                    result=result, app_name=None, operator=who)
    response.status_code = 200 if result["ok"] else 422
    return response


# --------------------------------------------------------------------------- models


def _agents_models(gateway: Any) -> tuple[list[dict[str, Any]], list[Any], list[Any]]:
    """Per agent: its adapter setting and the model id it requests (resolved through the
    registry as the agents resolve it); the registry's adapters and evaluation reports."""
    from wow_ray.config import load_settings
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
    adapters = registry.entries(EntryKind.ADAPTER)
    reports = registry.entries(EntryKind.REPORT)
    return agents, adapters, reports


@console_app.get("/models", response_class=HTMLResponse)
async def models_page(request: Request, who: str = Depends(operator)) -> HTMLResponse:
    gateway = gateway_of(request)
    agents, adapters, reports = await asyncio.to_thread(_agents_models, gateway)
    seen = models_seen([t for t, _ in await recent_transcripts(gateway)])
    return page(request, "models.html", agents=agents, adapters=adapters, reports=reports,
                seen=seen, operator=who)


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
