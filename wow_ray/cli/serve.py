"""``wow-ray serve``, ``wow-ray chat`` and ``wow-ray demo``: the LLM app and the dialogue
service (``--scenario``; its client code is in ``dialogue.py``) from a terminal."""

from __future__ import annotations

import threading
import time
from typing import Annotated

import typer
from rich.console import Console

from wow_ray.config import WowSettings
from wow_ray.llm.client import ChatMessage, OpenAIChatClient

console = Console(stderr=True)
out = Console()


def register(app: typer.Typer) -> None:
    """Add the serving commands to the top-level app."""
    app.command()(serve)
    app.command()(chat)
    app.command()(demo)


def _settings(ctx: typer.Context, **overrides: object) -> WowSettings:
    from wow_ray.cli import settings_from

    settings = settings_from(ctx)
    values = {k: v for k, v in overrides.items() if v is not None}
    if not values:
        return settings
    serve_values = {k: values.pop(k) for k in ("host", "port") if k in values}
    return settings.model_copy(
        update={**values, "serve": settings.serve.model_copy(update=serve_values)}
    )


def start_llm_app(settings: WowSettings, *, show_logs: bool = False) -> str:
    """Start Ray and the LLM app, showing progress while vLLM loads; return the base URL."""
    from ray import serve
    from ray.serve.config import HTTPOptions

    from wow_ray.ray_runtime import init_ray
    from wow_ray.registry import Registry, resolve_model
    from wow_ray.serving import build_llm_app

    entry = resolve_model(
        Registry(settings.storage_path),
        settings.model,
        progress=lambda m: console.print(f"[dim]{m}[/]"),
    )
    console.print(f"[dim]starting Ray and serving {entry.ref} with vLLM (about a minute on CPU)[/]")
    init_ray(settings, log_to_driver=show_logs)
    if not show_logs:
        console.print("[dim]replica logs: /tmp/ray/session_latest/logs (or --logs)[/]")
    serve.start(http_options=HTTPOptions(host=settings.serve.host, port=settings.serve.port))
    app = build_llm_app(settings.model_dump(exclude={"ray_address", "ray_num_cpus"}))

    started = time.monotonic()
    deploy_with_progress(app, settings.serve.app_name, settings.serve.route_prefix)
    url = f"http://{settings.serve.host}:{settings.serve.port}"
    console.print(
        f"[green]serving[/] {entry.name} at {url}/v1 (OpenAI-compatible) after {time.monotonic() - started:.0f} s"
    )
    return url


def deploy_with_progress(app, name: str, route_prefix: str) -> None:
    """``serve.run`` on a thread, so the terminal shows a live timer while vLLM loads; a failed
    deployment is raised here, on the caller's thread."""
    from ray import serve

    errors: list[BaseException] = []

    def deploy() -> None:
        try:
            serve.run(app, name=name, route_prefix=route_prefix)
        except BaseException as exc:  # reported on the main thread
            errors.append(exc)

    worker = threading.Thread(target=deploy, daemon=True)
    started = time.monotonic()
    worker.start()
    with console.status("") as status:
        while worker.is_alive():
            status.update(f"deploying {name}: {time.monotonic() - started:.0f} s")
            worker.join(timeout=1.0)
    if errors:
        raise errors[0]


def serve(
    ctx: typer.Context,
    model: Annotated[
        str | None, typer.Option(help="Registered model to serve (name or name:vN).")
    ] = None,
    host: Annotated[
        str | None, typer.Option(help="HTTP host (default from settings: 127.0.0.1).")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="HTTP port (default from settings: 8000).")
    ] = None,
    scenario: Annotated[
        str | None,
        typer.Option(help="Serve this scenario's multi-agent dialogue service instead "
                     "(e.g. food_delivery), with the model inside it."),
    ] = None,
    logs: Annotated[
        bool, typer.Option("--logs", help="Print the replicas' logs here too.")
    ] = False,
) -> None:
    """Serve a registered model (default: the embedded SmolLM2-135M-Instruct) with vLLM on Ray
    Serve, behind an OpenAI-compatible API, until Ctrl-C. LoRA adapters registered over it are
    served as `<model>:<adapter>`. With --scenario, serve that scenario's dialogue service."""
    from ray import serve as ray_serve

    settings = _settings(ctx, model=model, host=host, port=port)
    if scenario:
        from wow_ray.cli.dialogue import start_dialogue_app

        url = start_dialogue_app(settings, scenario, show_logs=logs)
        console.print(f"try: wow-ray chat --scenario {scenario} --url {url}    (Ctrl-C stops)")
    else:
        url = start_llm_app(settings, show_logs=logs)
        console.print(f"try: wow-ray chat --url {url}    (Ctrl-C stops serving)")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        console.print("stopping")
        ray_serve.shutdown()


def chat(
    url: Annotated[
        str, typer.Option(help="OpenAI-compatible endpoint of the served model.")
    ] = "http://127.0.0.1:8000",
    model: Annotated[
        str | None,
        typer.Option(
            help="Model, or `<model>:<adapter>` for a LoRA adapter (default: the only model served)."
        ),
    ] = None,
    system: Annotated[
        str | None, typer.Option(help="A system prompt for the conversation.")
    ] = None,
    message: Annotated[
        str | None, typer.Option("--message", "-m", help="Send one message, print the reply, exit.")
    ] = None,
    max_tokens: Annotated[int, typer.Option(min=1, help="Longest reply, in tokens.")] = 256,
    temperature: Annotated[float, typer.Option(min=0.0, max=2.0)] = 0.7,
    api_key: Annotated[
        str | None,
        typer.Option(envvar="WOW_RAY_API_KEY", help="Bearer token, if the endpoint needs one."),
    ] = None,
    scenario: Annotated[
        str | None,
        typer.Option(help="Talk to this scenario's dialogue service (its session API) "
                     "instead of the bare model."),
    ] = None,
    user: Annotated[
        str | None,
        typer.Option(help="With --scenario: the customer account you are signed in as (in the "
                     "token minted for you)."),
    ] = "U0214",
    verified: Annotated[
        bool, typer.Option(help="With --scenario: whether that account is signed in.")
    ] = True,
    steps: Annotated[
        bool, typer.Option(help="With --scenario: show which agent ran, as it runs.")
    ] = True,
    customer_token: Annotated[
        str | None,
        typer.Option(envvar="WOW_RAY_CUSTOMER_TOKEN", help="With --scenario: the customer token "
                     "the business's app minted; default: minted here for --user with this "
                     "machine's secret (a gateway started on this machine accepts it)."),
    ] = None,
) -> None:
    """Talk to the served model in the terminal; replies stream as they are generated.
    Type /reset to start over, /quit (or Ctrl-D) to leave. With --scenario, talk to the
    multi-agent dialogue service as a customer (/attach photo sends evidence)."""
    if scenario:
        from wow_ray.cli.dialogue import chat_session

        chat_session(url, scenario, user, verified, api_key, message, steps, customer_token)
        return
    history: list[ChatMessage] = [ChatMessage(role="system", content=system)] if system else []
    options = {"max_tokens": max_tokens, "temperature": temperature}
    with OpenAIChatClient(url, model=model, api_key=api_key) as client:
        if message is not None:
            _stream_reply(client, [*history, ChatMessage(role="user", content=message)], options)
            return
        console.print(f"chatting with {model or 'the served model'} at {url}; /reset, /quit")
        while True:
            text = read_user_line()
            if text is None or text in ("/quit", "/exit"):
                return
            if text == "/reset":
                history = history[:1] if system else []
                continue
            if not text:
                continue
            history.append(ChatMessage(role="user", content=text))
            reply = _stream_reply(client, history, options)
            history.append(ChatMessage(role="assistant", content=reply))


def read_user_line() -> str | None:
    """The user's next line in a terminal chat, stripped; None at end of input or Ctrl-C."""
    try:
        return console.input("[bold cyan]you>[/] ").strip()
    except (EOFError, KeyboardInterrupt):
        console.print()
        return None


def _stream_reply(client: OpenAIChatClient, messages: list[ChatMessage], options: dict) -> str:
    pieces = []
    for piece in client.stream(messages, **options):
        pieces.append(piece)
        out.print(piece, end="", markup=False, highlight=False, soft_wrap=True)
    out.print()
    return "".join(pieces)


def demo(
    ctx: typer.Context,
    scenario: Annotated[str, typer.Option(help="The dialogue service to bring up.")] = "food_delivery",
    logs: Annotated[
        bool, typer.Option("--logs", help="Print the replicas' logs here too.")
    ] = False,
) -> None:
    """The main job on the embedded default: start a local Ray, serve the food_delivery
    dialogue service (a master agent, its specialists and vLLM, each a Serve deployment), hold
    one short customer dialogue (streamed), then shut everything down."""
    import ray
    from ray import serve as ray_serve

    from wow_ray.cli.dialogue import demo_dialogue, start_dialogue_app

    settings = _settings(ctx)
    url = start_dialogue_app(settings, scenario, show_logs=logs)
    try:
        if not demo_dialogue(url, scenario):
            raise typer.Exit(1)
    finally:
        ray_serve.shutdown()
        ray.shutdown()
