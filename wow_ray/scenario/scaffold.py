"""``wow-ray scenario new NAME``: write a small, valid pack to start a new business from.

The skeleton (``templates/basic``) is a working pack: it validates, its oracle agrees with its
tasks, and each file has a comment on what it is for. A business then edits files only; no
engine code changes.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from wow_ray.scenario.errors import ScenarioError
from wow_ray.scenario.json_schemas import SCHEMA_DIR

TEMPLATE = Path(__file__).resolve().parent / "templates" / "basic"


def scaffold_pack(name: str, directory: str | Path = ".", title: str | None = None) -> Path:
    """Create ``<directory>/<name>/`` from the template; refuses to overwrite a folder."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise ScenarioError(f"pack name '{name}' must be lower_snake_case (letters, digits, _)")
    target = Path(directory) / name
    if target.exists():
        raise ScenarioError(f"{target} already exists; choose another name or --dir")
    title = title or name.replace("_", " ").title()
    shutil.copytree(TEMPLATE, target, ignore=shutil.ignore_patterns("__pycache__"))
    for path in target.rglob("*"):
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            text = text.replace("__NAME__", name).replace("__TITLE__", title)
            text = text.replace("__SCHEMAS__", SCHEMA_DIR.as_posix())
            path.write_text(text, encoding="utf-8")
    return target
