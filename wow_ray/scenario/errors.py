"""Errors for scenario packs: every message names the file, the line where known, and the field.

A pack is written by people in an editor, so an error must point at the place to fix:
``rules.yaml:42: rules[7].when[1]: unknown field 'order.minutes_lat'``. Loading collects every
problem it can find before raising, so one run of ``wow-ray scenario validate`` lists them all.
"""

from __future__ import annotations

from dataclasses import dataclass

from wow_ray.errors import WowRayError


@dataclass(frozen=True)
class PackIssue:
    """One problem in one file: where it is (file, line, field path) and what is wrong."""

    file: str
    message: str
    field: str = ""
    line: int | None = None

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class ScenarioError(WowRayError):
    """Base of all scenario-pack errors."""


class PackValidationError(ScenarioError):
    """A pack (or one of its files) failed validation; ``issues`` lists every problem found."""

    def __init__(self, issues: list[PackIssue]) -> None:
        self.issues = list(issues)
        head = str(self.issues[0]) if self.issues else "invalid scenario pack"
        more = len(self.issues) - 1
        super().__init__(head if more <= 0 else f"{head} (and {more} more problem(s))")

    def report(self) -> str:
        """All issues, one a line, for a terminal."""
        return "\n".join(str(issue) for issue in self.issues)


class RulesError(PackValidationError):
    """A rules file was rejected; the rules in force stay in force."""


class ToolError(ScenarioError):
    """A tool refused its call (unknown record, bad state). Becomes an error observation."""


class ExpressionError(ScenarioError):
    """An expression in a rule, playbook or derived field is not valid; raised while compiling."""
