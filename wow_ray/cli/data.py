"""``wow-ray data ...``: build training datasets and register them.

``build`` makes a cold-start dataset from a scenario pack on Ray Data (sample situations, solve
them with the oracle, render dialogues, filter, deduplicate) and registers it as the next
version; ``from-failures`` turns evaluated dialogues into corrections and preference pairs;
``export-traffic`` exports masked session transcripts as candidate data; ``show`` reads a
registered dataset back and validates every line.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

app = typer.Typer(help="Training data: cold start from a scenario pack, failures, live traffic.",
                  no_args_is_help=True)
console = Console()


def _registry(ctx: typer.Context):  # noqa: ANN202 - typer helper
    from wow_ray.cli import settings_from
    from wow_ray.registry import Registry

    return Registry(settings_from(ctx).storage_path)


@app.command()
def build(
    ctx: typer.Context,
    scenario: Annotated[str, typer.Option(help="Built-in pack name or pack folder.")] = "food_delivery",
    situations: Annotated[int, typer.Option(help="Sampled situations kept after balancing by outcome.")] = 300,
    seed: Annotated[int, typer.Option(help="Seeds sampling, rendering and the train/eval split.")] = 0,
    name: Annotated[str | None, typer.Option(help="Dataset name (default: <scenario>-cold-start).")] = None,
    workers: Annotated[int, typer.Option(help="Ray Data tasks at once per stage (1 CPU each).")] = 2,
    train_tasks: Annotated[bool, typer.Option(help="Also render the train split's own tasks.")] = True,
    eval_fraction: Annotated[float, typer.Option(help="Share of dialogues held out as eval.jsonl.")] = 0.1,
    max_tokens: Annotated[int, typer.Option(help="Longest sample kept, estimated tokens.")] = 2048,
    dedup_threshold: Annotated[float, typer.Option(help="MinHash Jaccard at which samples are near-duplicates.")] = 0.9,
    paraphrase_url: Annotated[str | None, typer.Option(help="OpenAI-compatible URL: reword some customer openings with that model (off by default).")] = None,
    paraphrase_rate: Annotated[float, typer.Option(help="Share of openings to reword when --paraphrase-url is set.")] = 0.3,
) -> None:
    """Build a cold-start SFT dataset from a scenario pack and register it as a new version.

    Situations come from the pack's fixtures, intents and rules (never from held-out dev/test
    tasks); the oracle gives the correct actions; every agent's samples are rendered through
    the run-time prompts and filtered (schema, rules, length, language, held-out content,
    near-duplicates). The manifest records counts per agent and intent, what each filter
    removed, and the pack, prompt and generator versions.
    """
    from wow_ray.cli import settings_from
    from wow_ray.data.paraphrase import ParaphraseConfig
    from wow_ray.data.pipeline import BuildConfig, build_cold_start
    from wow_ray.data.store import register_build
    from wow_ray.ray_runtime import init_ray

    para = ParaphraseConfig(base_url=paraphrase_url, rate=paraphrase_rate) if paraphrase_url else None
    config = BuildConfig(scenario=scenario, situations=situations, seed=seed, name=name,
                         concurrency=workers, train_tasks=train_tasks, eval_fraction=eval_fraction,
                         max_tokens=max_tokens, dedup_threshold=dedup_threshold, paraphrase=para)
    registry = _registry(ctx)
    init_ray(settings_from(ctx), include_dashboard=False, log_to_driver=False)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as bar:
        tasks: dict[str, int] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total or None)
            bar.update(tasks[stage], completed=done)

        result = build_cold_start(config, progress)
        for task_id in tasks.values():
            bar.update(task_id, total=bar.tasks[task_id].completed)
    entry, manifest = register_build(registry, result)
    _print_counts(manifest)
    _print_filters(manifest)
    console.print(f"registered dataset [bold]{entry.ref}[/bold] at {registry.artifact_uri(entry)} "
                  f"({result.situations} situations, {manifest.counts.total} samples, "
                  f"{result.samples_per_s:.0f} samples/s rendered and checked)")


def _print_counts(manifest) -> None:  # noqa: ANN001
    counts = manifest.counts
    agents = sorted(counts.by_agent)
    table = Table("intent", *agents, "total", title=f"{manifest.name}: samples per intent and agent "
                  f"(train {counts.by_split.get('train', 0)}, eval {counts.by_split.get('eval', 0)})")
    for intent in sorted(counts.by_intent):
        row = [str(counts.by_agent_intent.get(a, {}).get(intent, 0)) for a in agents]
        table.add_row(intent, *row, str(counts.by_intent[intent]))
    table.add_row("total", *[str(counts.by_agent[a]) for a in agents], str(counts.total), style="bold")
    console.print(table)


def _print_filters(manifest) -> None:  # noqa: ANN001
    table = Table("filter", "checked", "removed", "by agent", title="quality filters")
    for stat in manifest.filters:
        by = ", ".join(f"{a} {n}" for a, n in stat.removed_by_agent.items())
        table.add_row(stat.name, str(stat.checked), str(stat.removed), by)
    console.print(table)


@app.command()
def show(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="Dataset reference: name, name:vN or name:latest.")],
    examples: Annotated[int, typer.Option(help="Records to print.")] = 1,
) -> None:
    """Read a registered dataset back: verify hashes, validate every line, print its counts."""
    from wow_ray.data.store import load_dataset

    version = load_dataset(_registry(ctx), ref)
    version.verify()
    _print_counts(version.manifest)
    if version.manifest.filters:
        _print_filters(version.manifest)
    for i, record in enumerate(version.records()):
        if i >= examples:
            break
        console.print_json(record.model_dump_json(exclude={"meta": {"input", "check"}}))
    console.print(f"{version.folder}: every line valid ({version.manifest.counts.total} records)")


@app.command("from-failures")
def from_failures(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="JSON Lines of evaluated dialogues (EvaluatedDialogue).")],
    scenario: Annotated[str, typer.Option(help="The pack the dialogues ran on.")] = "food_delivery",
    name: Annotated[str | None, typer.Option(help="Base dataset name (default <scenario>-failures).")] = None,
) -> None:
    """Corrected samples and preference pairs from failed dialogues, registered as two datasets
    (``<name>`` with kind sft, ``<name>-pref`` with kind preference)."""
    from wow_ray.data.failures import EvaluatedDialogue, register_failures
    from wow_ray.data.formats import read_jsonl
    from wow_ray.scenario import load_pack

    pack = load_pack(scenario)
    register_failures(_registry(ctx), pack, list(read_jsonl(file, EvaluatedDialogue)),
                      name=name or f"{pack.name}-failures", inputs=[str(file)],
                      source=f"wow_ray.data failures {file.name}", report=console.print)


@app.command("export-traffic")
def export_traffic(
    ctx: typer.Context,
    db: Annotated[str, typer.Option(help="Session database, a SQLAlchemy URL.")] = "sqlite:///~/.wow_ray/sessions.db",
    scenario: Annotated[str, typer.Option(help="Only sessions of this pack.")] = "food_delivery",
    since_hours: Annotated[float | None, typer.Option(help="Only sessions started this recently.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many sessions, newest first.")] = 1000,
    name: Annotated[str | None, typer.Option(help="Dataset name (default <scenario>-traffic).")] = None,
) -> None:
    """Export session transcripts with their outcomes as candidate data, personal data masked."""
    from wow_ray.data.pipeline import pack_fingerprint
    from wow_ray.data.store import register_samples
    from wow_ray.data.traffic import Masker, read_transcripts, traffic_samples
    from wow_ray.scenario import load_pack

    pack = load_pack(scenario)
    since = timedelta(hours=since_hours) if since_hours else None
    transcripts = read_transcripts(db, since=since, limit=limit, scenario=pack.name)
    if not transcripts:
        console.print(f"no {pack.name} sessions in {db}")
        raise typer.Exit(1)
    masker = Masker.for_pack(pack)
    masked = [masker.mask(t) for t in transcripts]
    version = pack_fingerprint(pack)
    samples = [s for t in masked for s in traffic_samples(t, version)]
    entry, manifest = register_samples(
        _registry(ctx), name or f"{pack.name}-traffic", "sft", samples,
        _sources(pack, version, [db.split("@")[-1]]), source=f"wow_ray.data traffic {db.split('@')[-1]}",
        extra={"transcripts.jsonl": masked})
    _print_counts(manifest)
    console.print(f"registered [bold]{entry.ref}[/bold]: {len(masked)} transcripts, {len(samples)} samples")


def _sources(pack, version: str, inputs: list[str]):  # noqa: ANN001, ANN202
    from wow_ray.agents.prompts import PROMPT_VERSION
    from wow_ray.data.formats import Sources

    return Sources(pack={"name": pack.name, "version": pack.manifest.version, "content_sha256": version,
                         "rules_version": pack.rules.version},
                   prompt_version=PROMPT_VERSION, seed=0, inputs=inputs)
