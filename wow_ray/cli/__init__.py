"""The ``wow-ray`` command: one typer app, one sub-app per stage of the loop.

Each stage keeps its commands in its own module here (``model.py``, ``serve.py``, ...), and
this file only wires them together, so adding a stage's commands touches one line below.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from wow_ray.config import WowSettings, load_settings
from wow_ray.errors import WowRayError

app = typer.Typer(
    name="wow-ray",
    help="WOW-Ray: serve multi-agent customer service on Ray, build its training data and fine-tune its model.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)


@app.callback()
def _global_options(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            envvar="WOW_RAY_CONFIG",
            help="YAML settings file (storage_path, ray_address, model, engine, serve). "
            "Environment variables WOW_RAY_* override it.",
        ),
    ] = None,
) -> None:
    ctx.obj = {"config": config}


def settings_from(ctx: typer.Context) -> WowSettings:
    """The settings for this invocation, loaded once and shared by the sub-commands."""
    root = ctx.find_root()
    if root.obj is None:
        root.obj = {}
    if "settings" not in root.obj:
        root.obj["settings"] = load_settings(root.obj.get("config"))
    return root.obj["settings"]


def _register_subcommands() -> None:
    from wow_ray.cli import auth, data, eval, flywheel, model, scenario, serve, train

    app.add_typer(auth.app, name="auth")
    app.add_typer(data.app, name="data")
    app.add_typer(eval.app, name="eval")
    app.add_typer(flywheel.app, name="flywheel")
    app.add_typer(model.app, name="model")
    app.add_typer(scenario.app, name="scenario")
    app.add_typer(train.app, name="train")
    serve.register(app)


_register_subcommands()


def main() -> None:
    """Console entry point: our own errors print as one clear line instead of a traceback."""
    try:
        app()
    except WowRayError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise SystemExit(1) from None
