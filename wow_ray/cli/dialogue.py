"""The dialogue service from a terminal: ``wow-ray chat --scenario``, ``wow-ray serve
--scenario`` and the dialogue that ``wow-ray demo`` holds.

It talks to the gateway's session API (``wow_ray/serving/gateway.py``): creates a session,
sends messages and prints the reply as it streams (server-sent events), with the agents' steps
shown dimmed.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import httpx
from rich.console import Console

from wow_ray.agents.events import (
    DeltaEvent,
    DoneEvent,
    ErrorEvent,
    ResetEvent,
    ServiceEvent,
    StepEvent,
    from_sse,
)
from wow_ray.config import WowSettings
from wow_ray.llm.wire import sse_events

console = Console(stderr=True)
out = Console()
DEMO_USER = "U0214"  # a LanternEats customer whose order O10337 arrived 20 minutes late
DEMO_DIALOGUE = ["Hi! My order O10337 arrived 20 minutes late.", "Thanks, that's all."]


class SessionClient:
    """The gateway's session API, over HTTP, as a customer channel acting for one customer."""

    def __init__(self, url: str, api_key: str | None = None, customer_token: str | None = None,
                 timeout_s: float = 600.0) -> None:
        # Once Ray is up in this process its logging setup shows httpx's per-request INFO
        # lines, in the middle of the dialogue.
        logging.getLogger("httpx").setLevel(logging.WARNING)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        if customer_token:
            headers["X-Customer-Token"] = customer_token
        self.http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout_s)

    def close(self) -> None:
        self.http.close()

    def create(self, scenario: str | None = None) -> dict[str, Any]:
        response = self.http.post("/v1/sessions", json={"scenario": scenario})
        _check(response)
        found = response.json()
        if "customer_token" in found:  # an anonymous session's own token
            self.http.headers["X-Customer-Token"] = found["customer_token"]
        return found

    def stream(self, session_id: str, text: str, attachments: list[str]) -> Iterator[ServiceEvent]:
        """The events of one turn: steps, deltas, resets, then done (or error)."""
        with self.http.stream("POST", f"/v1/sessions/{session_id}/messages", params={"stream": "true"},
                              json={"content": text, "attachments": attachments}) as response:
            if response.status_code >= 400:
                response.read()
                _check(response)
            for event in sse_events(response.iter_lines()):
                yield from_sse(event)

    def end(self, session_id: str) -> None:
        self.http.delete(f"/v1/sessions/{session_id}")


def _check(response: httpx.Response) -> None:
    if response.status_code >= 400:
        from wow_ray.errors import WowRayError

        try:
            detail = response.json().get("detail")
        except ValueError:
            detail = response.text
        raise WowRayError(f"the dialogue service answered {response.status_code}: {detail}")


def print_turn(client: SessionClient, session_id: str, text: str, attachments: list[str],
               show_steps: bool = True) -> DoneEvent | None:
    """Send one message, print the reply as it streams; return the final ``done`` event."""
    done: DoneEvent | None = None
    out.print("[bold green]agent>[/] ", end="")
    streamed = False
    for event in client.stream(session_id, text, attachments):
        match event:
            case StepEvent(agent=agent, summary=summary) if show_steps:
                console.print(f"[dim]  · {agent}: {_brief(summary)}[/]")
            case DeltaEvent(text=piece):
                streamed = True
                out.print(piece, end="", markup=False, highlight=False, soft_wrap=True)
            case ResetEvent():
                if streamed:
                    out.print(" [dim](draft withdrawn)[/]")
                    out.print("[bold green]agent>[/] ", end="")
                streamed = False
            case DoneEvent():
                done = event
                if not streamed:
                    out.print(event.reply, markup=False, highlight=False, soft_wrap=True)
                else:
                    out.print()
            case ErrorEvent():
                out.print()
                raise SystemExit(f"error: {event.model_dump(exclude={'type'})}")
    if done is not None and done.status == "handed_off":
        console.print(f"[yellow]handed over to a colleague, ticket {done.ticket_id}[/]")
    elif done is not None and done.status == "ended":
        console.print("[dim]conversation ended[/]")
    return done


def _brief(summary: Any) -> str:
    text = json.dumps(summary, ensure_ascii=False, default=str)
    return text if len(text) < 140 else text[:137] + "..."


def local_client(url: str, user_id: str | None, verified: bool = True,
                 api_key: str | None = None, customer_token: str | None = None) -> SessionClient:
    """A client for a gateway on this machine, the CLI playing the business's app: its own
    customer-channel key, and a customer token it mints with this machine's secret (the files
    under ~/.wow_ray/ that a gateway started here reads). Given a key or token, those are used."""
    from wow_ray.serving.access import mint_customer_token
    from wow_ray.serving.credentials import ensure_cli_key, ensure_secret

    if customer_token is None and user_id is not None:
        customer_token = mint_customer_token(ensure_secret(), user_id, verified=verified)
    return SessionClient(url, api_key or ensure_cli_key(), customer_token)


def chat_session(url: str, scenario: str, user_id: str | None, verified: bool,
                 api_key: str | None, message: str | None, show_steps: bool,
                 customer_token: str | None = None) -> None:
    """An interactive session; ``/attach photo`` sends evidence, ``/new`` starts over."""
    from wow_ray.cli.serve import read_user_line

    client = local_client(url, user_id, verified, api_key, customer_token)
    try:
        session = client.create(scenario)
        sid = session["session_id"]
        if message is not None:
            print_turn(client, sid, message, [], show_steps)
            return
        console.print(f"[dim]session {sid} with {scenario} at {url} as {user_id or 'a guest'}; "
                      "/attach <kind>, /new, /quit[/]")
        out.print(f"[bold green]agent>[/] {session['greeting']}")
        pending: list[str] = []
        while True:
            text = read_user_line()
            if text is None:
                return
            if text in ("/quit", "/exit"):
                client.end(sid)
                return
            if text.startswith("/attach"):
                pending += text.split()[1:] or ["photo"]
                console.print(f"[dim]will attach {pending} to your next message[/]")
                continue
            if text == "/new":
                sid = client.create(scenario)["session_id"]
                console.print(f"[dim]new session {sid}[/]")
                continue
            if not text:
                continue
            done = print_turn(client, sid, text, pending, show_steps)
            pending = []
            if done is None or done.status != "active":
                return
    finally:
        client.close()


def start_dialogue_app(settings: WowSettings, scenario: str, *, show_logs: bool = False) -> str:
    """Start Ray and the scenario's dialogue service (its own LLM deployment); return its URL."""
    from ray import serve
    from ray.serve.config import HTTPOptions

    from wow_ray.cli.serve import deploy_with_progress
    from wow_ray.ray_runtime import init_ray
    from wow_ray.registry import Registry, resolve_model
    from wow_ray.serving import build_dialogue_app
    from wow_ray.serving.credentials import ensure_cli_key, ensure_secret

    entry = resolve_model(Registry(settings.storage_path), settings.model,
                          progress=lambda m: console.print(f"[dim]{m}[/]"))
    ensure_secret()  # the gateway reads this machine's customer-token secret and keys file
    ensure_cli_key()
    console.print(f"[dim]starting Ray, {entry.ref} on vLLM and the {scenario} agents "
                  "(a minute or two on a CPU)[/]")
    init_ray(settings, log_to_driver=show_logs)
    if not show_logs:
        console.print("[dim]replica logs: /tmp/ray/session_latest/logs (or --logs)[/]")
    serve.start(http_options=HTTPOptions(host=settings.serve.host, port=settings.serve.port))
    llm_settings = settings.model_dump(exclude={"ray_address", "ray_num_cpus", "serve"})
    app = build_dialogue_app({"dialogue": {"scenario": scenario}, "llm": {"settings": llm_settings}})
    started = time.monotonic()
    deploy_with_progress(app, scenario, "/")
    url = f"http://{settings.serve.host}:{settings.serve.port}"
    console.print(f"[green]serving[/] the {scenario} dialogue service at {url} "
                  f"after {time.monotonic() - started:.0f} s")
    console.print(f"operator console: {url}/console/ (log in with an operator key: "
                  "wow-ray auth new-key NAME --scope operator)")
    return url


def demo_dialogue(url: str, scenario: str = "food_delivery") -> bool:
    """Hold the demo's short dialogue; True if every turn got a reply."""
    client = local_client(url, DEMO_USER)
    try:
        sid = client.create(scenario)["session_id"]
        console.print(f"[dim]customer {DEMO_USER} (signed in), session {sid}[/]")
        replies = []
        for text in DEMO_DIALOGUE:
            out.print(f"[bold cyan]customer>[/] {text}")
            done = print_turn(client, sid, text, [])
            replies.append(done.reply if done is not None else "")
        return all(r.strip() for r in replies)
    finally:
        client.close()
