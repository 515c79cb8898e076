"""The dialogue service over HTTP, through the gateway, as a :class:`DialogueTarget`.

Written against the gateway's access contract (issue 14): customer routes take
``Authorization: Bearer <key of scope customer>`` and ``X-Customer-Token: <JWT>`` (identity
comes from the token, minted by the caller: this package does not import the serving code);
``POST /v1/sessions`` takes ``{"evidence", "metadata", "simulated": true}``, so simulated
sessions are marked where they are stored and never exported as traffic; the backend view is
on the operator scope, ``GET /v1/operator/sessions/{id}/backend``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from wow_ray.agents.transcript import Transcript
from wow_ray.evaluation.episode import BackendView, TargetReply
from wow_ray.scenario import DialogueState, Task


class GatewayTarget:
    """One session at a time on the gateway at ``url`` (the app's route, e.g. ``.../fd``)."""

    def __init__(self, url: str, api_key: str, operator_key: str | None = None,
                 customer_token: Callable[[str, bool], str] | str | None = None,
                 timeout_s: float = 300.0) -> None:
        self.url = url.rstrip("/")
        self.api_key, self.operator_key = api_key, operator_key or api_key
        self.customer_token = customer_token
        self.http = httpx.AsyncClient(timeout=timeout_s)
        self.session_id: str | None = None
        self.headers: dict[str, str] = {}
        self.start = DialogueState()

    async def open(self, task: Task, session_id: str, metadata: dict[str, Any]) -> DialogueState:
        s = task.situation
        self.headers = {"Authorization": f"Bearer {self.api_key}"}
        token = self.customer_token(s.user_id, s.identity_verified) \
            if callable(self.customer_token) and s.user_id \
            else self.customer_token if isinstance(self.customer_token, str) else None
        if token:
            self.headers["X-Customer-Token"] = token
        answer = await self.http.post(f"{self.url}/v1/sessions", headers=self.headers, json={
            "evidence": [], "simulated": True,
            "metadata": {k: v for k, v in metadata.items() if isinstance(v, str | int | float | bool)}})
        answer.raise_for_status()
        self.session_id = answer.json()["session_id"]
        verified = bool(token) and s.identity_verified and s.user_id is not None
        self.start = DialogueState(user_id=s.user_id if token else None, identity_verified=verified)
        return self.start

    async def send(self, text: str, attachments: list[str]) -> TargetReply:
        answer = await self.http.post(f"{self.url}/v1/sessions/{self.session_id}/messages",
                                      headers=self.headers,
                                      json={"content": text, "attachments": attachments})
        answer.raise_for_status()
        body = answer.json()
        return TargetReply(body["reply"], body.get("status", "active"))

    async def finish(self) -> tuple[Transcript, BackendView]:
        got = await self.http.get(f"{self.url}/v1/sessions/{self.session_id}/transcript", headers=self.headers)
        got.raise_for_status()
        transcript = Transcript.model_validate(got.json())
        view = await self.http.get(f"{self.url}/v1/operator/sessions/{self.session_id}/backend",
                                   headers={"Authorization": f"Bearer {self.operator_key}"})
        view.raise_for_status()
        data = view.json()
        await self.http.aclose()
        return transcript, BackendView(state_hash=data["state_hash"], diff=data.get("changes"),
                                       source="service")

