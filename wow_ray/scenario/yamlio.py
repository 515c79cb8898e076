"""Read YAML and JSON while remembering the line of every value, for error messages.

``load_yaml`` composes the node tree (which carries marks) and constructs plain Python data
from it, recording ``path -> line`` for every mapping value and sequence item. JSON files are
read with ``json`` (fast); their lines are only looked up when there is an error to report,
by composing the same text as YAML (JSON is, for our files, valid YAML).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from wow_ray.scenario.errors import PackIssue, PackValidationError

Path_ = tuple[str | int, ...]


class LineMap:
    """Lines of the values in one document, keyed by their path (keys and list indices)."""

    def __init__(self, lines: dict[Path_, int] | None = None) -> None:
        self._lines = lines or {}

    def line(self, path: Path_) -> int | None:
        """The line of ``path``, or of its nearest ancestor that has one."""
        path = tuple(path)
        while path:
            if path in self._lines:
                return self._lines[path]
            path = path[:-1]
        return self._lines.get((), None)


def field_path(path: Path_) -> str:
    """``('rules', 3, 'when', 1)`` -> ``rules[3].when[1]``: how a person writes a field path."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _record(node: yaml.Node, path: Path_, lines: dict[Path_, int]) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node)
            _record(value_node, (*path, key), lines)
            lines[(*path, key)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _record(item, (*path, index), lines)


def parse_yaml(text: str, file: str) -> tuple[Any, LineMap]:
    """Parse YAML text; a syntax error becomes a PackValidationError with file and line."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise PackValidationError([PackIssue(file, f"invalid YAML: {problem}", line=line)]) from None
    if node is None:
        return None, LineMap()
    loader = yaml.SafeLoader("")
    try:
        data = loader.construct_document(node)
    except yaml.YAMLError as exc:  # e.g. an unhashable key, a bad timestamp
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise PackValidationError([PackIssue(file, f"invalid YAML: {exc}", line=line)]) from None
    finally:
        loader.dispose()
    lines: dict[Path_, int] = {}
    _record(node, (), lines)
    return data, LineMap(lines)


def load_yaml(path: Path, file: str | None = None) -> tuple[Any, LineMap]:
    """Read and parse one YAML file (``file`` is the name used in messages)."""
    name = file or path.name
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PackValidationError([PackIssue(name, "file is missing")]) from None
    return parse_yaml(text, name)


class LazyJsonLines(LineMap):
    """A LineMap for a JSON text, computed only when a line is first asked for."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self._text: str | None = text

    def line(self, path: Path_) -> int | None:
        if self._text is not None:
            text, self._text = self._text, None
            try:
                self._lines = parse_yaml(text, "")[1]._lines
            except PackValidationError:
                self._lines = {}
        return super().line(path)


def load_json(path: Path, file: str | None = None) -> tuple[Any, LineMap]:
    """Read one JSON file; a syntax error names file and line."""
    name = file or path.name
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PackValidationError([PackIssue(name, "file is missing")]) from None
    try:
        return json.loads(text), LazyJsonLines(text)
    except json.JSONDecodeError as exc:
        raise PackValidationError(
            [PackIssue(name, f"invalid JSON: {exc.msg}", line=exc.lineno)]
        ) from None


def pydantic_issues(exc: Any, file: str, lines: LineMap, prefix: Path_ = ()) -> list[PackIssue]:
    """Turn a pydantic ValidationError into issues naming file, line and field path."""
    issues = []
    for err in exc.errors(include_url=False):
        loc = (*prefix, *(p for p in err["loc"] if not _is_union_tag(p)))
        message = err["msg"]
        if err["type"] in {"missing", "extra_forbidden"}:
            message = "required field is missing" if err["type"] == "missing" else "unknown field"
        issues.append(PackIssue(file, message, field=field_path(loc), line=lines.line(loc)))
    return issues


def _is_union_tag(part: Any) -> bool:
    # pydantic puts the union member or function name into loc ("function-after[...]", "str");
    # those are not fields a person could find in their file.
    return isinstance(part, str) and ("[" in part or part in {"str", "int", "float", "bool"})
