"""``wow-ray serve``, ``wow-ray chat`` and ``wow-ray demo``."""

import typer


def register(app: typer.Typer) -> None:
    """Add the serving commands to the top-level app."""
