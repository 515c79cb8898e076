"""The dialogue service over HTTP, through the gateway, as a :class:`DialogueTarget`.

Written against the gateway's access contract (issue 14): customer routes take
``Authorization: Bearer <key of scope customer>`` and ``X-Customer-Token: <JWT>`` (identity
comes from the token, minted by the caller: this package does not import the serving code);
``POST /v1/sessions`` takes ``{"evidence", "metadata", "simulated": true}``, so simulated
sessions are marked where they are stored and never exported as traffic; the backend view is
on the operator scope, ``GET /v1/operator/sessions/{id}/backend``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx

from wow_ray.agents.events import DeltaEvent, DoneEvent, ErrorEvent, ResetEvent, from_sse
from wow_ray.agents.transcript import Transcript
from wow_ray.evaluation.episode import BackendView, TargetReply
from wow_ray.llm.wire import asse_events
from wow_ray.scenario import DialogueState, Task

# The turn may or may not have been stored: read, then retry. Serve's proxy answers 500 when
# the replica serving the request died under it (its node lost), 502/503/504 for the others.
LOST_STATUS = {500, 502, 503, 504}
RETRY_AFTER_S = 3.0  # about how long Ray takes to notice a dead replica or node
MAX_RETRY_AFTER_S = 15.0


class TurnLost(RuntimeError):
    """A turn whose answer did not arrive; ``retry_after_s``: when to look again."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class GatewayTarget:
    """One session at a time on the gateway at ``url`` (the app's route, e.g. ``.../fd``).

    stream: send each turn as a streamed one (``?stream=true``), as a chat window does; a
    ``done`` reply that does not begin with the text streamed before it counts as withdrawn.
    ``lost`` counts the turns whose answer was lost and ``from_transcript`` those of them
    found stored (not sent again)."""

    def __init__(self, url: str, api_key: str, operator_key: str | None = None,
                 customer_token: Callable[[str, bool], str] | str | None = None,
                 timeout_s: float = 300.0, stream: bool = False) -> None:
        self.url = url.rstrip("/")
        self.stream = stream
        self.lost = self.from_transcript = 0
        self.api_key, self.operator_key = api_key, operator_key or api_key
        self.customer_token = customer_token
        self.http = httpx.AsyncClient(timeout=timeout_s)
        self.session_id: str | None = None
        self.answered = 0  # turns of this session answered, to recognise a stored retry
        self.headers: dict[str, str] = {}
        self.start = DialogueState()

    async def open(self, task: Task, session_id: str, metadata: dict[str, Any]) -> DialogueState:
        s = task.situation
        return await self.open_session(s.user_id, s.identity_verified, metadata)

    async def open_session(self, user_id: str | None, verified: bool,
                           metadata: dict[str, Any]) -> DialogueState:
        """A new simulated session of customer ``user_id`` (anonymous when None or when no
        customer token is given)."""
        self.headers = {"Authorization": f"Bearer {self.api_key}"}
        token = self.customer_token(user_id, verified) \
            if callable(self.customer_token) and user_id \
            else self.customer_token if isinstance(self.customer_token, str) else None
        if token:
            self.headers["X-Customer-Token"] = token
        answer = await self._request("POST", "/v1/sessions", headers=self.headers, json={
            "evidence": [], "simulated": True,
            "metadata": {k: v for k, v in metadata.items() if isinstance(v, str | int | float | bool)}})
        answer.raise_for_status()
        self.session_id, self.answered = answer.json()["session_id"], 0
        self.start = DialogueState(user_id=user_id if token else None,
                                   identity_verified=bool(token) and verified and user_id is not None)
        return self.start

    async def send(self, text: str, attachments: list[str]) -> TargetReply:
        """One turn. A turn lost on the way (the connection dropped, a 500/502/503/504 or a
        stream's ``error`` event of one: a replica or node died, the sessions database was
        away) is retried once, as a customer's app would, after reading the transcript: a turn
        stored before its answer was lost is taken from there, never sent twice."""
        try:
            return await self._turn(text, attachments)
        except TurnLost as lost:
            self.lost += 1
            await asyncio.sleep(lost.retry_after_s)
            if (stored := await self._stored_turn(text)) is not None:
                self.from_transcript += 1
                return stored
            return await self._turn(text, attachments)

    async def _turn(self, text: str, attachments: list[str]) -> TargetReply:
        url = f"{self.url}/v1/sessions/{self.session_id}/messages"
        body = {"content": text, "attachments": attachments}
        try:
            if self.stream:
                reply = await self._streamed(url, body)
            else:
                answer = _answered(await self.http.post(url, headers=self.headers, json=body)).json()
                reply = TargetReply(answer["reply"], answer.get("status", "active"))
        except httpx.TransportError as exc:  # also a stream cut before its end
            raise TurnLost(f"{type(exc).__name__}: {exc}", RETRY_AFTER_S) from exc
        self.answered += 1
        return reply

    async def _streamed(self, url: str, body: dict[str, Any]) -> TargetReply:
        """A streamed turn read to its ``done`` (or its ``error``: lost, or raised)."""
        async with self.http.stream("POST", url, params={"stream": "true"}, headers=self.headers,
                                    json=body) as answer:
            if answer.status_code != 200:  # admission's errors come as statuses
                await answer.aread()
                _answered(answer)
            shown, withdrawn = "", 0
            async for sse in asse_events(answer.aiter_lines()):
                match from_sse(sse):
                    case DeltaEvent(text=piece):
                        shown += piece
                    case ResetEvent():
                        shown, withdrawn = "", withdrawn + 1
                    case DoneEvent() as done:
                        withdrawn += not done.reply.startswith(shown)
                        return TargetReply(done.reply, done.status, withdrawn)
                    case ErrorEvent(status=status, detail=detail) if status in LOST_STATUS:
                        raise TurnLost(f"{status} in the stream: {detail}", RETRY_AFTER_S)
                    case ErrorEvent(status=status, detail=detail):
                        raise RuntimeError(f"the turn failed with {status}: {detail}")
        raise TurnLost("the stream ended with neither done nor error", RETRY_AFTER_S)

    async def _stored_turn(self, text: str) -> TargetReply | None:
        """The reply of ``text`` if the session stored it as its next turn, else None."""
        got = await self._request("GET", f"/v1/sessions/{self.session_id}/transcript",
                                  headers=self.headers)
        if not got.is_success:
            return None
        data = got.json()
        turns = data.get("turns", [])
        if len(turns) != self.answered + 1 or turns[-1].get("customer") != text:
            return None
        self.answered += 1
        return TargetReply(turns[-1].get("reply", ""),
                           (data.get("outcome") or {}).get("status", "active"))

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A request that may be sent twice (a read; a session's creation, where a session
        created before its answer was lost stays empty and unused), sent once more after a
        lost answer (the connection dropped, a 500/502/503/504), as a turn is."""
        try:
            answer = await self.http.request(method, f"{self.url}{path}", **kwargs)
        except httpx.TransportError:
            await asyncio.sleep(RETRY_AFTER_S)
        else:
            if answer.status_code not in LOST_STATUS:
                return answer
            await asyncio.sleep(_retry_after(answer))
        return await self.http.request(method, f"{self.url}{path}", **kwargs)

    async def finish(self) -> tuple[Transcript, BackendView]:
        got = await self._request("GET", f"/v1/sessions/{self.session_id}/transcript", headers=self.headers)
        got.raise_for_status()
        transcript = Transcript.model_validate(got.json())
        view = await self._request("GET", f"/v1/operator/sessions/{self.session_id}/backend",
                                   headers={"Authorization": f"Bearer {self.operator_key}"})
        view.raise_for_status()
        data = view.json()
        await self.http.aclose()
        return transcript, BackendView(state_hash=data["state_hash"], diff=data.get("changes"),
                                       source="service")


def _answered(answer: httpx.Response) -> httpx.Response:
    """``answer``, unless it is lost (:class:`TurnLost`) or another error (raised)."""
    if answer.status_code in LOST_STATUS:
        raise TurnLost(f"{answer.status_code}: {answer.text[:200]}", _retry_after(answer))
    return answer.raise_for_status()


def _retry_after(answer: httpx.Response) -> float:
    """How long to wait before trying again: the answer's Retry-After, bounded, or our guess."""
    wait = answer.headers.get("Retry-After", "")
    return min(float(wait), MAX_RETRY_AFTER_S) if wait.isdigit() else RETRY_AFTER_S
