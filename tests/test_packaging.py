"""What the entry points import ships in the wheel: every first-party package an entry point
(serve_apps, train_jobs, evaluators) imports is one that pyproject's packages.find includes."""

from __future__ import annotations

import ast
import fnmatch
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENTRY_POINTS = ("serve_apps", "train_jobs", "evaluators")


def imported_top_levels(folder: Path) -> dict[str, str]:
    """Top-level module names imported anywhere under ``folder`` -> a file importing it."""
    found: dict[str, str] = {}
    for path in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], str(path.relative_to(ROOT)))
    return found


def test_every_first_party_package_an_entry_point_imports_is_shipped():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    include = config["tool"]["setuptools"]["packages"]["find"]["include"]
    first_party = {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()}
    missing = {}
    for entry in ENTRY_POINTS:
        assert any(fnmatch.fnmatch(entry, pattern) for pattern in include), entry
        for name, where in imported_top_levels(ROOT / entry).items():
            if name in first_party and not any(fnmatch.fnmatch(name, p) for p in include):
                missing[name] = where
    assert not missing, f"imported by entry points but not in the wheel: {missing}"
