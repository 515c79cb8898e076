"""``wow-ray train ...``: run a fine-tuning job, or register a tiny random model to try it on.

``run`` is ``python -m train_jobs.finetune`` from the CLI: it joins the configured Ray (or
``RAY_ADDRESS``, as under ``ray job submit``) or starts a local one, trains, and registers the
result with its lineage. The job's options live in its YAML (see ``train_jobs/configs/``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

app = typer.Typer(help="Fine-tuning on Ray Train (SFT, DPO; LoRA or full; DeAR or DDP).",
                  no_args_is_help=True)
console = Console()


@app.command()
def run(
    ctx: typer.Context,
    job: Annotated[Path, typer.Argument(help="The job's YAML (python -m train_jobs.finetune "
                                                "--help lists every option).")],
) -> None:
    """Fine-tune a registered model on a registered dataset and register the result."""
    from wow_ray.cli import settings_from
    from wow_ray.training import load_finetune_config, run_finetune

    result = run_finetune(load_finetune_config(job), settings_from(ctx))
    entry = result.entry
    console.print(f"registered {entry.kind} [bold]{entry.ref}[/bold] over {entry.base_model} "
                  f"(loss {result.metrics.get('loss', float('nan')):.4f}, eval loss "
                  f"{result.metrics.get('eval_loss', float('nan')):.4f}); run: {result.run_path}")
    if entry.kind == "adapter":
        base = entry.base_model.split(":")[0]
        console.print(f"the running LLM app serves it now as model [bold]{base}:{entry.name}"
                      "[/bold]")


@app.command("tiny-model")
def tiny_model(
    ctx: typer.Context,
    name: Annotated[str, typer.Option(help="Registry name.")] = "tiny-llama",
    hidden: Annotated[int, typer.Option(help="Width.")] = 32,
    layers: Annotated[int, typer.Option(help="Decoder layers.")] = 2,
) -> None:
    """Register a randomly initialised Llama with SmolLM2's tokenizer (for quick trials)."""
    from wow_ray.cli import settings_from
    from wow_ray.registry import Registry
    from wow_ray.training import register_random_llama

    entry = register_random_llama(Registry(settings_from(ctx).storage_path), name,
                                  hidden=hidden, layers=layers)
    console.print(f"registered model [bold]{entry.ref}[/bold] "
                  f"({entry.metadata['parameters']:,} parameters)")
