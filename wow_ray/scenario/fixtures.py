"""Checks of backend fixture rows against ``fixtures/schema.yaml``: types, enums, keys."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from wow_ray.scenario.errors import PackIssue
from wow_ray.scenario.spec import ColumnSpec, FixtureSchema
from wow_ray.scenario.yamlio import LineMap


def _type_problem(value: Any, column: ColumnSpec) -> str | None:
    kind = column.type
    if kind == "string" and not isinstance(value, str):
        return "must be a string"
    if kind == "integer" and (isinstance(value, bool) or not isinstance(value, int)):
        return "must be an integer"
    if kind == "number" and (isinstance(value, bool) or not isinstance(value, int | float)):
        return "must be a number"
    if kind == "boolean" and not isinstance(value, bool):
        return "must be true or false"
    if kind == "datetime":
        if not isinstance(value, str):
            return "must be an ISO datetime string"
        try:
            datetime.fromisoformat(value)
        except ValueError:
            return f"'{value}' is not an ISO datetime"
    if column.enum is not None and value not in column.enum:
        return f"'{value}' is not one of {column.enum}"
    return None


def check_table(schema: FixtureSchema, table: str, rows: Any, file: str, lines: LineMap) -> list[PackIssue]:
    """Every problem in one table's rows, each naming the row index and column."""
    if not isinstance(rows, list):
        return [PackIssue(file, "must be a JSON list of rows", line=1)]
    spec = schema.tables[table]
    issues = []
    keys: dict[Any, int] = {}
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            issues.append(PackIssue(file, "a row must be an object", f"[{i}]", lines.line((i,))))
            continue
        for col in row:
            if col not in spec.columns:
                issues.append(PackIssue(file, f"unknown column (columns of {table}: {', '.join(spec.columns)})",
                                        f"[{i}].{col}", lines.line((i, col))))
        for col, column in spec.columns.items():
            value = row.get(col)
            if value is None:
                if not column.nullable:
                    issues.append(PackIssue(file, "required column is missing or null", f"[{i}].{col}", lines.line((i,))))
                continue
            problem = _type_problem(value, column)
            if problem:
                issues.append(PackIssue(file, problem, f"[{i}].{col}", lines.line((i, col))))
        key = row.get(spec.primary_key)
        if key in keys:
            issues.append(PackIssue(file, f"duplicate primary key '{key}' (first at [{keys[key]}])",
                                    f"[{i}].{spec.primary_key}", lines.line((i, spec.primary_key))))
        elif key is not None:
            keys[key] = i
    return issues


def check_references(
    schema: FixtureSchema, rows: dict[str, list[dict]], files: dict[str, str], lines: dict[str, LineMap]
) -> list[PackIssue]:
    """Foreign keys: every ``references: table.column`` value must exist there."""
    issues = []
    for table, spec in schema.tables.items():
        for col, column in spec.columns.items():
            if not column.references:
                continue
            target, _, target_col = column.references.partition(".")
            if target not in schema.tables or target_col not in schema.tables[target].columns:
                issues.append(PackIssue("fixtures/schema.yaml", f"references unknown column '{column.references}'",
                                        f"tables.{table}.columns.{col}.references"))
                continue
            known = {r.get(target_col) for r in rows.get(target, []) if isinstance(r, dict)}
            for i, row in enumerate(rows.get(table, [])):
                value = row.get(col) if isinstance(row, dict) else None
                if value is not None and value not in known:
                    issues.append(PackIssue(files[table], f"'{value}' does not exist in {column.references}",
                                            f"[{i}].{col}", lines[table].line((i, col))))
    return issues
