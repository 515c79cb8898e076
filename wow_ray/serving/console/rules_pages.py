"""The console's rules page: the rules in force, an edited file checked by the rule engine and
deployed to the agents (admin keys only; see ``wow_ray/serving/rules_deploy.py``), and every
deployment's history with its file text."""

from __future__ import annotations

import asyncio
from typing import Any

import yaml
from fastapi import Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse

from wow_ray.serving.access import ConsoleSession
from wow_ray.serving.console.app import (
    console_app,
    console_user,
    gateway_of,
    operator,
    page,
    recent_transcripts,
    same_origin,
)
from wow_ray.serving.console.views import rules_history
from wow_ray.serving.rules_deploy import (
    RulesCheck,
    RulesRefused,
    check_rules,
    deploy_rules,
    deploy_yaml,
)
from wow_ray.serving.rules_history import RulesHistory

SIGNED_IN = Depends(console_user)  # who is logged in, with their scope


async def _rules_page(request: Request, who: ConsoleSession, *, text: str | None = None,
                      result: RulesCheck | None = None, deployed: Any = None,
                      status: int = 200) -> HTMLResponse:
    gateway = gateway_of(request)
    in_force = await gateway.master.rules_in_force.remote()
    if text is None:
        text = yaml.safe_dump(in_force["rules"], sort_keys=False, allow_unicode=True)
    used = rules_history([t for t, _ in await recent_transcripts(gateway)])
    deployments = await asyncio.to_thread(RulesHistory(gateway.store.engine).list,
                                          gateway.pack.name)
    response = page(request, "rules.html", in_force=in_force, text=text, history=used,
                    deployments=deployments, result=result, deployed=deployed,
                    deploy_yaml=deploy_yaml(result.rules) if result and result.ok else None,
                    can_deploy=who.scope == "admin", operator=who.name)
    response.status_code = status
    return response


@console_app.get("/rules", response_class=HTMLResponse)
async def rules_page(request: Request, edit: int | None = None,
                     who: ConsoleSession = SIGNED_IN) -> HTMLResponse:
    """The rules in force; ``?edit=<deployment id>`` puts that earlier version in the editor."""
    text = None
    if edit is not None:
        found = await asyncio.to_thread(RulesHistory(gateway_of(request).store.engine).get, edit)
        if found is None:
            raise HTTPException(404, f"no rules deployment {edit}")
        text = found.text
    return await _rules_page(request, who, text=text)


@console_app.post("/rules/validate", response_class=HTMLResponse)
async def validate_rules(request: Request, text: str = Form(...),
                         who: ConsoleSession = SIGNED_IN) -> HTMLResponse:
    same_origin(request)
    result = await asyncio.to_thread(check_rules, gateway_of(request).args.scenario, text)
    return await _rules_page(request, who, text=text, result=result,
                             status=200 if result.ok else 422)


@console_app.post("/rules/deploy", response_class=HTMLResponse)
async def deploy(request: Request, text: str = Form(...),
                 who: ConsoleSession = SIGNED_IN) -> HTMLResponse:
    """Deploy the edited file to every agent (an admin key's session only)."""
    same_origin(request)
    if who.scope != "admin":
        raise HTTPException(403, "deploying rules needs an admin key; log in with one")
    try:
        done = await deploy_rules(gateway_of(request), text, who.name)
    except RulesRefused as exc:
        return await _rules_page(request, who, text=text, status=422,
                                 result=RulesCheck(ok=False, issues=exc.issues))
    return await _rules_page(request, who, deployed=done)


@console_app.get("/rules/deployments/{deployment_id}", response_class=HTMLResponse)
async def deployment_page(request: Request, deployment_id: int,
                          who: str = Depends(operator)) -> HTMLResponse:
    found = await asyncio.to_thread(RulesHistory(gateway_of(request).store.engine).get,
                                    deployment_id)
    if found is None:
        raise HTTPException(404, f"no rules deployment {deployment_id}")
    return page(request, "rules_deployment.html", d=found, operator=who)
