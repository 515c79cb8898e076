"""``wow-ray flywheel ...``: run the self-evolving loop, and show what it did."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from wow_ray.flywheel import Flywheel, FlywheelOptions
from wow_ray.registry import Registry

if TYPE_CHECKING:
    from wow_ray.flywheel.stages import StageOptions

app = typer.Typer(help="The loop: evaluate production, failures become data, fine-tune a "
                  "candidate, promote it only if the gate says it is better.",
                  no_args_is_help=True)
console = Console(stderr=True)


def _registry(ctx: typer.Context) -> Registry:
    from wow_ray.cli import settings_from

    return Registry(settings_from(ctx).storage_path)


def _loop(ctx: typer.Context, options: StageOptions, alpha: float = 0.05) -> Flywheel:
    """The loop over the real stages, its progress printed dimmed."""
    from wow_ray.flywheel.stages import RealStages

    registry = _registry(ctx)
    return Flywheel(registry, options.scenario, RealStages(registry, options, _progress),
                    FlywheelOptions(alpha=alpha), progress=_progress)


def _progress(message: str) -> None:
    console.print(f"[dim]{message}[/]")


@contextmanager
def _llm_app(ctx: typer.Context, llm_url: str | None) -> Iterator[str]:
    """The LLM app's URL: the given one, else the local one if it answers, else one started
    here (Ray, Serve, vLLM) for the duration and shut down after."""
    import httpx

    from wow_ray.cli import settings_from

    settings = settings_from(ctx)
    url = llm_url or f"http://{settings.serve.host}:{settings.serve.port}"
    try:
        answers = httpx.get(f"{url}/v1/models", timeout=5).is_success
    except httpx.HTTPError:
        answers = False
    if answers:
        yield url
        return
    if llm_url is not None:
        raise typer.BadParameter(f"no LLM app answers at {llm_url} (start one with "
                                 "`wow-ray serve`, or leave --llm-url out)")
    import ray
    from ray import serve

    from wow_ray.cli.serve import start_llm_app

    try:
        yield start_llm_app(settings)
    finally:  # only what was started here: on a shared cluster, other Serve apps keep running
        serve.delete(settings.serve.app_name)
        ray.shutdown()


def _sessions_db(url: str | None) -> str | None:
    """The given database, else the local service's default one if it exists, else None."""
    from wow_ray.agents.sessions import DEFAULT_DATABASE_URL, sqlite_path

    if url is not None:
        return url
    path = sqlite_path(DEFAULT_DATABASE_URL)
    return DEFAULT_DATABASE_URL if path is not None and path.exists() else None


@app.command()
def run(
    ctx: typer.Context,
    scenario: Annotated[str, typer.Option(help="The scenario pack.")] = "food_delivery",
    turns: Annotated[int, typer.Option(help="Turns to run (an unfinished turn is finished first).")] = 1,
    llm_url: Annotated[str | None, typer.Option(help="The LLM app serving the base model and adapters; default: the local one at the settings' port, started here (Ray, vLLM) when none answers, and stopped at the end.")] = None,
    tasks: Annotated[int | None, typer.Option(help="At most this many tasks per split.")] = None,
    trials: Annotated[int, typer.Option(help="k: trials per task.")] = 1,
    max_steps: Annotated[int, typer.Option(help="Optimizer steps of each candidate's job.")] = 150,
    alpha: Annotated[float, typer.Option(help="The gate's significance level.")] = 0.05,
    sessions_db: Annotated[str | None, typer.Option(help="The service's sessions database (a SQLAlchemy URL) whose live sessions each turn scores; default: the local service's, when it exists.")] = None,
) -> None:
    """Run the loop; interrupted, it resumes where it stopped when run again."""
    from wow_ray.flywheel.stages import StageOptions

    with _llm_app(ctx, llm_url) as url:
        options = StageOptions(scenario=scenario, llm_url=url, tasks=tasks, trials=trials,
                               database_url=_sessions_db(sessions_db))
        options.train["max_steps"] = max_steps
        for records in _loop(ctx, options, alpha).run(turns):
            gate = records["gate"].outputs
            console.print(f"turn {records['gate'].turn}: "
                          f"{'[green]promoted[/]' if gate['promote'] else '[yellow]rejected[/]'}: "
                          f"{gate['reason']}")


@app.command()
def demo(
    ctx: typer.Context,
    scenario: Annotated[str, typer.Option(help="The scenario pack.")] = "food_delivery",
    llm_url: Annotated[str | None, typer.Option(help="The LLM app serving the base model and adapters; default: the local one at the settings' port, started here (Ray, vLLM) when none answers, and stopped at the end.")] = None,
    tasks: Annotated[int, typer.Option(help="Tasks per split for the loop (train, dev); at least 5, or the gate's sign test can never promote.")] = 8,
    test_tasks: Annotated[int, typer.Option(help="The scorecard's subset: the test split's first N tasks.")] = 10,
    trials: Annotated[int, typer.Option(help="k: trials per task.")] = 1,
    max_steps: Annotated[int, typer.Option(help="Optimizer steps of the candidate's job (about 6 s each on 2 CPU cores).")] = 150,
    situations: Annotated[int, typer.Option(help="Cold-start situations (built once).")] = 60,
    out: Annotated[Path, typer.Option(help="Where the scorecard (JSON, markdown, PNG chart) is written.")] = Path("flywheel-demo"),
    sessions_db: Annotated[str | None, typer.Option(help="The service's sessions database (a SQLAlchemy URL) whose live sessions each turn scores; default: the local service's, when it exists.")] = None,
) -> None:
    """The main job at small scale: cold start and one turn, then a before/after scorecard on
    the test split's first --test-tasks tasks (never seen by the data or the gate)."""
    from wow_ray.flywheel.demo import run_demo, scorecard_lines, write_scorecard
    from wow_ray.flywheel.stages import RealStages, StageOptions

    with _llm_app(ctx, llm_url) as url:
        options = StageOptions(scenario=scenario, llm_url=url, tasks=tasks, trials=trials,
                               cold_start_situations=situations,
                               database_url=_sessions_db(sessions_db))
        options.train["max_steps"] = max_steps
        loop = _loop(ctx, options)
        result = run_demo(loop, RealStages(loop.registry,
                                           options.model_copy(update={"tasks": test_tasks}),
                                           _progress))
    header, *rows = scorecard_lines(result)
    table = Table(*header, title=f"{scenario}, {result.split} split: {len(result.tasks)} tasks "
                  f"({', '.join(result.tasks)}), k={trials}")
    for row in rows:
        table.add_row(*row)
    Console().print(table)
    gate = result.decision
    Console().print(f"{'promoted' if gate['promote'] else 'rejected'}: {gate['reason']}")
    stages = Table("stage", "seconds", title="where the time went")
    for stage, seconds in result.seconds.items():
        stages.add_row(stage, f"{seconds:.0f}")
    stages.add_row("total", f"{sum(result.seconds.values()):.0f}")
    Console().print(stages)
    paths = write_scorecard(result, out)
    console.print(f"scorecard: {', '.join(str(p) for p in paths)}")


@app.command()
def history(ctx: typer.Context,
            scenario: Annotated[str, typer.Option(help="The scenario pack.")] = "food_delivery",
            chart: Annotated[Path | None, typer.Option(
                help="Also write a PNG chart of success and model share per turn here.")] = None,
            ) -> None:
    """Every turn: datasets, job, candidate, the gate's decision and the numbers."""
    from wow_ray.flywheel.history import loop_history, write_history_chart

    turns = loop_history(_registry(ctx), scenario)
    table = Table("turn", "production success", "model share", "datasets", "candidate",
                  "cand. success", "decision", "seconds")
    for t in turns:
        table.add_row(
            str(t.turn), _text(t.production_success),
            ", ".join(f"{a} {v:.2f}" for a, v in t.model_share.items() if v is not None) or "-",
            "\n".join(t.datasets) or "-", t.candidate or "-", _text(t.candidate_success),
            t.decision, f"{t.seconds:.0f}")
    Console().print(table if table.rows else f"no turns of {scenario} yet")
    if chart is not None and turns:
        console.print(f"chart: {write_history_chart(turns, chart, f'{scenario}: the loop')}")


def _text(value: float | None) -> str:
    return "-" if value is None else str(value)
