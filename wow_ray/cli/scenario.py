"""``wow-ray scenario ...``: validate, scaffold, inspect and export scenario packs.

A business adds a scenario by writing files: ``new`` writes a working skeleton, ``validate``
checks it (every file, cross-references, and that each task's gold actions are what the
oracle computes), ``gold`` fills gold actions in from the oracle, ``check`` asks the rule
engine about one action, and ``schema`` exports JSON Schemas for editors.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    help="Scenario packs: validate, scaffold, list, export schemas, fill gold actions.",
    no_args_is_help=True,
)
console = Console()

PackArg = Annotated[str, typer.Argument(help="A pack folder, or the name of a built-in pack.")]


@app.command()
def validate(
    pack: PackArg,
    gold: Annotated[
        bool,
        typer.Option(
            "--gold/--no-gold", help="Also check every task's gold actions against the oracle."
        ),
    ] = True,
) -> None:
    """Check a pack: each file's schema, cross-references, rules, tools, tasks (and gold actions)."""
    from wow_ray.scenario import PackValidationError, check_gold, load_pack

    try:
        loaded = load_pack(pack)
    except PackValidationError as exc:
        _print_issues(exc.issues)
        raise typer.Exit(1) from None
    issues = check_gold(loaded) if gold else []
    if issues:
        _print_issues(issues)
        raise typer.Exit(1)
    summary = loaded.summary()
    table = Table(title=f"{summary['title']} ({summary['name']}) is valid", show_header=False)
    for key, value in summary.items():
        if key not in {"name", "title"}:
            table.add_row(key.replace("_", " "), str(value))
    table.add_row("gold actions", "agree with the oracle" if gold else "not checked")
    console.print(table)


def _print_issues(issues: list) -> None:
    for issue in issues:
        console.print(f"[red]{issue}[/red]", highlight=False, soft_wrap=True)
    console.print(f"[red]{len(issues)} problem(s)[/red]")


@app.command()
def new(
    name: Annotated[str, typer.Argument(help="Pack name, lower_snake_case.")],
    dir: Annotated[Path, typer.Option("--dir", help="Folder to create the pack in.")] = Path("."),
    title: Annotated[str | None, typer.Option(help="Human title of the business.")] = None,
) -> None:
    """Write a small, valid pack to start a new business scenario from."""
    from wow_ray.scenario import scaffold_pack

    path = scaffold_pack(name, dir, title)
    console.print(f"created {path}; edit its files, then run: wow-ray scenario validate {path}")


@app.command("list")
def list_packs() -> None:
    """The built-in packs."""
    from wow_ray.scenario import builtin_packs, load_pack

    table = Table("name", "title", "rules", "tools", "intents", "tasks")
    for name in builtin_packs():
        s = load_pack(name).summary()
        table.add_row(
            name, s["title"], str(s["rules"]), str(s["tools"]), str(s["intents"]), str(s["tasks"])
        )
    console.print(table)


@app.command()
def schema(
    out: Annotated[
        Path | None, typer.Option("--out", help="Write <kind>.schema.json files into this folder.")
    ] = None,
    kind: Annotated[
        str | None,
        typer.Option(
            help="Print one schema: pack, rules, tools, intents, playbooks, fixtures-schema, tasks."
        ),
    ] = None,
) -> None:
    """Export the JSON Schemas of pack files, for editors and other tools."""
    from wow_ray.scenario import ScenarioError, export_json_schemas, json_schemas

    if kind is not None:
        schemas = json_schemas()
        if kind not in schemas:
            raise ScenarioError(f"unknown schema '{kind}' (kinds: {', '.join(schemas)})")
        typer.echo(json.dumps(schemas[kind], indent=2, sort_keys=True))
        return
    for path in export_json_schemas(out) if out else export_json_schemas():
        console.print(str(path))


@app.command()
def gold(
    pack: PackArg,
    write: Annotated[
        bool, typer.Option("--write", help="Rewrite tasks.json; otherwise only report.")
    ] = False,
) -> None:
    """Compute every task's gold actions and communicate_info with the oracle."""
    from wow_ray.scenario import fill_gold, load_pack

    loaded = load_pack(pack)
    path = loaded.path / "tasks.json"
    tasks = json.loads(path.read_text(encoding="utf-8"))
    changed = fill_gold(loaded, tasks)
    if write and changed:
        path.write_text(json.dumps(tasks, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    verb = "updated" if write else "would update"
    console.print(f"{verb} {changed} of {len(tasks)} task(s) in {path}")


@app.command()
def check(
    pack: PackArg,
    tool: Annotated[str, typer.Argument(help="The tool of the proposed action.")],
    args: Annotated[str, typer.Option("--args", help="The action's arguments, as JSON.")] = "{}",
    state: Annotated[
        str, typer.Option("--state", help="The dialogue state (DialogueState fields), as JSON.")
    ] = "{}",
) -> None:
    """Ask the rule engine about one action against the pack's fixtures."""
    from wow_ray.scenario import DialogueState, ScenarioError, ToolCall, load_pack

    try:
        arguments, fields = json.loads(args), json.loads(state)
    except json.JSONDecodeError as exc:
        raise ScenarioError(f"--args and --state must be JSON: {exc.msg}") from None
    loaded = load_pack(pack)
    env = loaded.new_environment()
    decision = env.check(
        ToolCall(name=tool, arguments=arguments), DialogueState.model_validate(fields)
    )
    console.print_json(json.dumps(decision.to_dict()))


@app.command("build-db")
def build_db(
    pack: PackArg,
    out: Annotated[Path, typer.Argument(help="SQLite file to write (replaced).")],
) -> None:
    """Write the pack's fixtures database to a SQLite file."""
    from wow_ray.scenario import load_pack

    path = load_pack(pack).template.save(out)
    console.print(f"wrote {path}")
