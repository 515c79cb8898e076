"""``wow-ray model ...``: prepare the embedded model, register others, list the registry."""

import typer

app = typer.Typer(help="Models in the registry: prepare the embedded default, register, list.", no_args_is_help=True)
