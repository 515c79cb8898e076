"""The import boundaries of docs/design.md, checked on the source.

Each stage of the loop is a folder of ``wow_ray/`` with a small public surface, and data flows one
way. These tests read every import statement (function-level imports included: a lazy import is
still a dependency) and fail on one that crosses a boundary the design forbids, so a change that
needs a new arrow has to change the table below, and the design document with it.
"""

from __future__ import annotations

import ast
import sys
import tomllib
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ROOT / "wow_ray"

# Which stages of wow_ray/ each stage may import (besides itself). cli/ is the command line and
# may reach every stage; nothing may reach cli/. Keep in step with docs/design.md.
MAY_IMPORT: dict[str, set[str]] = {
    "errors": set(),
    "config": {"errors"},
    "ray_runtime": {"config"},
    "scenario": {"errors"},
    "registry": {"config", "errors"},
    "dear": set(),
    "llm": {"config", "errors", "registry"},
    "agents": {"errors", "llm", "scenario"},
    "data": {"agents", "errors", "llm", "registry", "scenario", "config", "ray_runtime"},
    "training": {"config", "data", "dear", "errors", "ray_runtime", "registry"},
    "evaluation": {"agents", "config", "data", "errors", "llm", "registry", "scenario"},
    # serving reads the loop's history for the console (flywheel.history); the loop never
    # imports serving: it moves aliases and serving follows them
    "serving": {"agents", "config", "errors", "flywheel", "llm", "ray_runtime", "registry",
                "scenario"},
    "flywheel": {"agents", "config", "data", "errors", "evaluation", "llm", "ray_runtime",
                 "registry", "scenario", "training"},
    "cli": {"agents", "config", "data", "dear", "errors", "evaluation", "flywheel", "llm",
            "ray_runtime", "registry", "scenario", "serving", "training"},
}
ENTRY_POINTS = ("serve_apps", "train_jobs", "evaluators", "benchmarks", "tests")
# Third-party packages a stage must not import: agents run without Ray; the scenario engine is
# data plus deterministic code (no LLM, no Ray, no torch).
FORBIDDEN_THIRD_PARTY: dict[str, set[str]] = {
    "agents": {"ray", "vllm", "torch", "transformers", "fastapi", "starlette"},
    "scenario": {"ray", "vllm", "torch", "transformers", "httpx", "openai", "fastapi"},
    "evaluation": {"ray", "vllm", "fastapi"},
    "flywheel": {"vllm", "fastapi"},
}
# wow_ray/dear knows only torch and numpy (and the standard library).
DEAR_THIRD_PARTY = {"torch", "numpy"}


def _stage(path: Path) -> str:
    rel = path.relative_to(LIBRARY)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _is_code(path: Path) -> bool:
    # Scenario packs and templates are data (their tools.py runs against the pack's backend).
    return not {"scenarios", "templates"} & set(path.relative_to(LIBRARY).parts)


@cache
def _imports(path: Path) -> list[tuple[int, str]]:
    """Every absolute import in ``path``: (line, dotted module)."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def _library_files() -> list[Path]:
    return sorted(p for p in LIBRARY.rglob("*.py") if _is_code(p))


def test_every_stage_is_in_the_table():
    stages = {_stage(p) for p in _library_files()} - {"__init__"}
    assert stages <= set(MAY_IMPORT), f"stages missing from MAY_IMPORT: {stages - set(MAY_IMPORT)}"


def test_stages_import_only_what_the_design_allows():
    crossings = []
    for path in _library_files():
        stage = _stage(path)
        if stage == "__init__":
            continue
        for line, module in _imports(path):
            parts = module.split(".")
            where = f"{path.relative_to(ROOT)}:{line} imports {module}"
            if parts[0] in ENTRY_POINTS:
                crossings.append(f"{where} (the library never imports an entry point)")
            elif parts[0] == "wow_ray" and len(parts) > 1 and parts[1] != stage:
                if parts[1] not in MAY_IMPORT[stage]:
                    crossings.append(f"{where} ({stage} may import {sorted(MAY_IMPORT[stage])})")
            elif parts[0] in FORBIDDEN_THIRD_PARTY.get(stage, ()):
                crossings.append(f"{where} ({stage} must not depend on {parts[0]})")
            elif (stage == "dear" and parts[0] != "wow_ray"
                  and parts[0] not in sys.stdlib_module_names | DEAR_THIRD_PARTY):
                crossings.append(f"{where} (dear knows only torch and numpy)")
    assert not crossings, "\n".join(crossings)


@pytest.mark.parametrize("folder", ["serve_apps", "train_jobs", "evaluators"])
def test_entry_points_import_only_what_the_wheel_ships(folder):
    """An entry point run from an installed wheel finds every first-party module it imports."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    shipped = {p.rstrip("*") for p in config["tool"]["setuptools"]["packages"]["find"]["include"]}
    first_party = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()}
    missing = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in sorted((ROOT / folder).rglob("*.py"))
        for line, module in _imports(path)
        if module.split(".")[0] in first_party and module.split(".")[0] not in shipped
    ]
    assert not missing, "not in the wheel (pyproject packages.find):\n" + "\n".join(missing)


def test_nothing_points_outside_the_repository():
    """Docs and code cite files that exist in the repository, never the design card outside it."""
    offenders = []
    for path in [*ROOT.glob("*.md"), *ROOT.glob("docs/*.md"), *ROOT.glob("benchmarks/*.md"),
                 *(p for folder in ("wow_ray", "serve_apps", "train_jobs", "evaluators",
                                    "benchmarks", "tests", "scripts")
                   for p in (ROOT / folder).rglob("*.py"))]:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if "DESIGN.md" in line or "design card" in line:
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    offenders = [o for o in offenders if not o.startswith("tests/test_boundaries.py")]
    assert not offenders, "\n".join(offenders)
