"""JSON Schemas of the pack files, for editors (YAML language servers, VS Code, JetBrains).

The schemas are generated from the pydantic models, so they cannot drift from what the loader
accepts; the copies shipped in ``wow_ray/scenario/schemas/`` are checked by a test to equal a
fresh export. A YAML file opts in with a first line such as::

    # yaml-language-server: $schema=https://.../rules.schema.json   (or a relative path)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from wow_ray.scenario.rulespec import RulesFile
from wow_ray.scenario.spec import FixtureSchema, IntentsFile, PackManifest, PlaybooksFile, ToolsFile
from wow_ray.scenario.tasks import Task

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"

_FILES: dict[str, Any] = {
    "pack": PackManifest,
    "rules": RulesFile,
    "tools": ToolsFile,
    "intents": IntentsFile,
    "playbooks": PlaybooksFile,
    "fixtures-schema": FixtureSchema,
    "tasks": TypeAdapter(list[Task]),
}


def json_schemas() -> dict[str, dict[str, Any]]:
    """File kind -> JSON Schema (draft 2020-12, as pydantic writes it)."""
    out = {}
    for kind, model in _FILES.items():
        schema = model.json_schema() if isinstance(model, TypeAdapter) else model.model_json_schema()
        schema = {**schema, "$schema": "https://json-schema.org/draft/2020-12/schema", "title": f"WOW-Ray scenario {kind}"}
        out[kind] = schema
    return out


def export_json_schemas(folder: str | Path = SCHEMA_DIR) -> list[Path]:
    """Write ``<kind>.schema.json`` files into ``folder``; returns their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for kind, schema in json_schemas().items():
        path = folder / f"{kind}.schema.json"
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        paths.append(path)
    return paths
