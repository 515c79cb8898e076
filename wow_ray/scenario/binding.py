"""Tools bound to Python functions: what agents call.

A pack declares each tool in ``tools.yaml`` (name, description, JSON-schema parameters, read or
write) and implements it in the pack's ``tools.py`` as ``def name(db: Backend, **params)``.
The loader checks that the two agree. Agents then use:

- ``tools.openai_schemas()``: the OpenAI function-calling definitions;
- ``tools.validate(name, args)``: arguments checked by a pydantic model built from the schema;
- ``tools.invoke(backend, name, args)``: a ``ToolResult``. Bad arguments, a ``ToolError`` raised
  by the tool, or any other exception become an error result (rolled back), never a crash.
  ``tools.run(backend, name, clean)`` is the same for arguments ``validate`` already returned
  (the rule gate validates once, before it asks the rules).
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import sys
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from wow_ray.scenario.backend import Backend, jsonable
from wow_ray.scenario.errors import PackIssue, ToolError
from wow_ray.scenario.spec import ParamSchema, ToolSpec

_PY = {"string": str, "integer": int, "number": float, "boolean": bool, "object": dict[str, Any]}


@dataclass
class ToolResult:
    """The outcome of one tool call, as the agent will see it."""

    tool: str
    ok: bool
    content: Any = None
    error: str | None = None
    decision: Any = None  # the rule engine's Decision, when the call went through the gate

    def observation(self) -> str:
        """The text an LLM reads back: the JSON result, or ``{"error": ...}``."""
        body = self.content if self.ok else {"error": self.error}
        return json.dumps(body, ensure_ascii=False, sort_keys=True)

    def to_dict(self) -> dict[str, Any]:
        out = {"tool": self.tool, "ok": self.ok, "content": self.content, "error": self.error}
        if self.decision is not None:
            out["decision"] = self.decision.to_dict()
        return out


def _annotation(schema: ParamSchema) -> Any:
    if schema.enum:
        return Literal[tuple(schema.enum)]
    if schema.type == "array":
        return list[_annotation(schema.items)] if schema.items else list[Any]
    return _PY[schema.type]


def _field(schema: ParamSchema, required: bool) -> tuple[Any, Any]:
    constraints = {
        "ge": schema.minimum,
        "le": schema.maximum,
        "gt": schema.exclusiveMinimum,
        "lt": schema.exclusiveMaximum,
        "min_length": schema.minLength,
        "max_length": schema.maxLength,
        "pattern": schema.pattern,
    }
    kwargs = {k: v for k, v in constraints.items() if v is not None}
    annotation = _annotation(schema)
    if required:
        return annotation, Field(..., description=schema.description, **kwargs)
    return annotation | None, Field(None, description=schema.description, **kwargs)


def args_model(spec: ToolSpec) -> type[BaseModel]:
    """A pydantic model of the tool's parameters (unknown arguments are rejected)."""
    params = spec.parameters
    fields = {name: _field(s, name in params.required) for name, s in params.properties.items()}
    return create_model(f"{spec.name}_args", __config__=ConfigDict(extra="forbid"), **fields)


@dataclass
class BoundTool:
    spec: ToolSpec
    fn: Callable[..., Any]
    model: type[BaseModel]

    def openai_schema(self) -> dict[str, Any]:
        params = _drop_empty(self.spec.parameters.model_dump(exclude_none=True))
        return {
            "type": "function",
            "function": {"name": self.spec.name, "description": self.spec.description, "parameters": params},
        }


def _drop_empty(value: Any) -> Any:
    # Empty descriptions are noise in a prompt; the schema means the same without them.
    if isinstance(value, dict):
        return {k: _drop_empty(v) for k, v in value.items() if not (k == "description" and v == "")}
    return value


def load_module(path: Path, name: str) -> ModuleType:
    """Import a pack's ``tools.py`` under a private module name."""
    module_name = f"wow_ray_pack_{name}_tools_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return module


def bind(specs: list[ToolSpec], module: ModuleType | None, file: str) -> tuple[dict[str, BoundTool], list[PackIssue]]:
    """Pair each spec with its function; report missing functions and parameter mismatches."""
    tools: dict[str, BoundTool] = {}
    issues: list[PackIssue] = []
    for index, spec in enumerate(specs):
        fn_name = spec.function or spec.name
        fn = getattr(module, fn_name, None) if module is not None else None
        if not callable(fn):
            issues.append(PackIssue(file, f"no function '{fn_name}' for tool '{spec.name}'", f"tools[{index}]"))
            continue
        problem = _signature_problem(fn, spec)
        if problem:
            line = inspect.getsourcelines(fn)[1] if hasattr(fn, "__code__") else None
            issues.append(PackIssue(file, problem, fn_name, line))
            continue
        tools[spec.name] = BoundTool(spec, fn, args_model(spec))
    return tools, issues


def _signature_problem(fn: Callable[..., Any], spec: ToolSpec) -> str | None:
    params = list(inspect.signature(fn).parameters.values())
    if not params:
        return "a tool function takes the backend as its first parameter"
    declared = spec.parameters.properties
    got = {p.name: p for p in params[1:]}
    missing = [n for n in declared if n not in got]
    extra = [n for n in got if n not in declared and got[n].default is inspect.Parameter.empty]
    if missing or extra:
        parts = [f"missing parameters {missing}" if missing else "", f"undeclared parameters {extra}" if extra else ""]
        return f"function does not match tools.yaml for '{spec.name}': " + "; ".join(p for p in parts if p)
    optional_without_default = [
        n for n in declared if n not in spec.parameters.required and got[n].default is inspect.Parameter.empty
    ]
    if optional_without_default:
        return f"optional parameters need a default in Python: {optional_without_default}"
    return None


class Toolset:
    """All tools of a pack, bound and ready to call on a backend."""

    def __init__(self, tools: Mapping[str, BoundTool]) -> None:
        self._tools = dict(tools)

    def __contains__(self, name: str) -> bool:
        return name in self._tools

    def __iter__(self) -> Iterator[BoundTool]:
        return iter(self._tools.values())

    @property
    def names(self) -> list[str]:
        return list(self._tools)

    def spec(self, name: str) -> ToolSpec:
        return self._tools[name].spec

    def specs(self) -> dict[str, ToolSpec]:
        return {name: t.spec for name, t in self._tools.items()}

    def openai_schemas(self, kind: str | None = None) -> list[dict[str, Any]]:
        """OpenAI function-calling definitions (all tools, or only ``read``/``write`` ones)."""
        return [t.openai_schema() for t in self._tools.values() if kind is None or t.spec.kind == kind]

    def validate(self, name: str, args: Mapping[str, Any] | None) -> dict[str, Any]:
        """Arguments checked and converted; raises ToolError with a readable message."""
        tool = self._tools.get(name)
        if tool is None:
            raise ToolError(f"unknown tool '{name}' (tools: {', '.join(self._tools)})")
        try:
            model = tool.model.model_validate(dict(args or {}))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}" for e in exc.errors()
            )
            raise ToolError(f"invalid arguments for {name}: {problems}") from None
        return {k: v for k, v in model.model_dump().items() if v is not None}

    def invoke(self, backend: Backend, name: str, args: Mapping[str, Any] | None) -> ToolResult:
        """Validate, run the tool in a transaction, and return what the agent should see."""
        try:
            clean = self.validate(name, args)
        except ToolError as exc:
            return ToolResult(name, False, error=str(exc))
        return self.run(backend, name, clean)

    def run(self, backend: Backend, name: str, clean: Mapping[str, Any]) -> ToolResult:
        """Run the tool in a transaction on arguments ``validate`` returned (not validated again)."""
        try:
            content = self._tools[name].fn(backend, **clean)
            backend.commit()
        except ToolError as exc:
            backend.rollback()
            return ToolResult(name, False, error=str(exc))
        except Exception as exc:  # noqa: BLE001 - a broken tool is an observation, not a crash
            backend.rollback()
            where = traceback.extract_tb(exc.__traceback__)[-1]
            return ToolResult(name, False, error=f"tool {name} failed: {type(exc).__name__}: {exc} "
                                                 f"({Path(where.filename).name}:{where.lineno})")
        return ToolResult(name, True, content=jsonable(content))
