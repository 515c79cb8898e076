"""``wow-ray eval ...``: evaluate the dialogue service with simulated customers, read reports.

``run`` plays a split's tasks x k trials in this process (the agents in-process, a chat client
to the served LLM, or none for the deterministic floor); the same run on a Ray cluster, with a
pool of simulator actors, is ``ray job submit -- python -m evaluators.run ...``. ``show`` prints
a report (a folder or a registry ref ``eval-<scenario>-<split>:vN``); ``compare A B`` lists
where B differs from A, task by task.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Evaluation: simulated customers, scorers, reports.", no_args_is_help=True)


def _load(ctx: typer.Context, where: str):  # noqa: ANN202 - typer helper
    from wow_ray.evaluation import EvalReport

    path = Path(where)
    if not path.exists():
        from wow_ray.cli import settings_from
        from wow_ray.registry import EntryKind, Registry

        registry = Registry(settings_from(ctx).storage_path)
        path = registry.local_dir(registry.get(EntryKind.REPORT, where))
    if path.is_dir():
        path = path / "report.json"
    return EvalReport.model_validate_json(path.read_text())


@app.command()
def run(
    ctx: typer.Context,
    scenario: Annotated[str, typer.Option(help="Scenario pack.")] = "food_delivery",
    split: Annotated[str, typer.Option(help="train, dev or test.")] = "dev",
    trials: Annotated[int, typer.Option(help="k trials per task (pass^1..k).")] = 1,
    model: Annotated[str, typer.Option(help="Model id to judge; 'none': the deterministic floor.")] = "none",
    llm_url: Annotated[str, typer.Option(help="OpenAI-compatible URL of the served LLM.")] = "http://127.0.0.1:8000",
    tasks: Annotated[str | None, typer.Option(help="Comma-separated task ids (a subset).")] = None,
    customer: Annotated[str, typer.Option(help="scripted or model.")] = "scripted",
    judge: Annotated[bool, typer.Option(help="Also the model judge (reported apart).")] = False,
    concurrency: Annotated[int, typer.Option(help="Episodes at once.")] = 2,
    out: Annotated[Path, typer.Option(help="Folder for report.json, REPORT.md, report.png, evaluated.jsonl.")]
    = Path("eval_report"),
    register: Annotated[bool, typer.Option(help="Record the report in the registry.")] = False,
) -> None:
    """Evaluate a split in this process and write the report."""
    from wow_ray.evaluation import build_report, evaluate_split, local_target, publish
    from wow_ray.llm.client import AsyncOpenAIChatClient
    from wow_ray.scenario import load_pack

    pack = load_pack(scenario)
    chosen = pack.tasks_in(split)
    if tasks:
        chosen = [t for t in chosen if t.id in set(tasks.split(","))]
    client = None if model == "none" else AsyncOpenAIChatClient(llm_url, model=model)
    results = asyncio.run(evaluate_split(pack, chosen, lambda: local_target(pack, client), trials=trials,
                                         concurrency=concurrency, customer=customer, client=client,
                                         judge=judge))
    report = build_report([s for s, _ in results], scenario=scenario, split=split, trials=trials,
                          model=model, customer=customer)
    publish.save(report, [d for _, d in results], out)
    if register:
        from wow_ray.cli import settings_from
        from wow_ray.registry import Registry

        entry = publish.register(Registry(settings_from(ctx).storage_path), report, out, judged=model,
                                 source="wow-ray eval run")
        typer.echo(f"registered report {entry.ref}")
    typer.echo(f"success {report.success}, compliance {report.compliance}, pass^k {report.pass_k}")
    typer.echo(f"report: {out / 'REPORT.md'}")


@app.command()
def show(ctx: typer.Context, report: Annotated[str, typer.Argument(help="A report folder or registry ref.")]) -> None:
    """Print a report as markdown."""
    from wow_ray.evaluation import to_markdown

    typer.echo(to_markdown(_load(ctx, report)))


@app.command("compare")
def compare_cmd(ctx: typer.Context, a: Annotated[str, typer.Argument(help="Report A (folder or ref).")],
                b: Annotated[str, typer.Argument(help="Report B (folder or ref).")]) -> None:
    """Where B differs from A: headline deltas, model share per agent, and each task that changed."""
    from wow_ray.evaluation import compare, compare_markdown

    typer.echo(compare_markdown(compare(_load(ctx, a), _load(ctx, b))))
