"""Load a pack folder: read every file, validate it, cross-check the files, build the pack.

Problems are collected, not raised one at a time: a ``PackValidationError`` carries every issue
found (file, line, field, message). Checks that depend on an earlier file (rules need the tools
and the fixture schema) are skipped when that file is broken, so one mistake does not cascade
into a page of noise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from wow_ray.scenario.binding import Toolset, bind, load_module
from wow_ray.scenario.catalogue import Catalogue, pack_catalogue, without
from wow_ray.scenario.errors import ExpressionError, PackIssue, PackValidationError, ScenarioError
from wow_ray.scenario.expr import compile_expr, compile_value
from wow_ray.scenario.fixtures import check_references, check_table
from wow_ray.scenario.kb import KnowledgeBase, read_article
from wow_ray.scenario.ownership import ownership_issues
from wow_ray.scenario.pack import ScenarioPack
from wow_ray.scenario.rules import RuleCompiler, RuleEngine
from wow_ray.scenario.spec import (
    CallStep,
    ChooseStep,
    FixtureSchema,
    IntentsFile,
    PackManifest,
    PlaybooksFile,
    SayStep,
    ToolsFile,
)
from wow_ray.scenario.tasks import Task
from wow_ray.scenario.yamlio import LineMap, load_json, load_yaml, pydantic_issues

BUILTIN_ROOT = Path(__file__).resolve().parent.parent / "scenarios"
TASKS = TypeAdapter(list[Task])


def builtin_packs() -> list[str]:
    """Names of the packs shipped with wow_ray."""
    return sorted(p.name for p in BUILTIN_ROOT.iterdir() if (p / "pack.yaml").is_file())


def resolve_pack_path(name_or_path: str | Path) -> Path:
    """A folder path as given, or the folder of a built-in pack by name."""
    path = Path(name_or_path)
    if path.is_dir():
        return path.resolve()
    if isinstance(name_or_path, str) and (BUILTIN_ROOT / name_or_path / "pack.yaml").is_file():
        return BUILTIN_ROOT / name_or_path
    raise ScenarioError(f"no scenario pack at '{name_or_path}' (built-in packs: {', '.join(builtin_packs())})")


class _Reader:
    """Collects issues while reading the files of one pack."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.issues: list[PackIssue] = []

    def model(self, rel: str, model: type[BaseModel]) -> tuple[Any, LineMap]:
        try:
            data, lines = load_yaml(self.root / rel, rel)
        except PackValidationError as exc:
            self.issues += exc.issues
            return None, LineMap()
        try:
            return model.model_validate(data if data is not None else {}), lines
        except ValidationError as exc:
            self.issues += pydantic_issues(exc, rel, lines)
            return None, lines

    def add(self, rel: str, message: str, field: str = "", lines: LineMap | None = None, path: tuple = ()) -> None:
        self.issues.append(PackIssue(rel, message, field, lines.line(path) if lines else None))

    def unique(self, rel: str, names: list[str], what: str, lines: LineMap, key: str) -> None:
        seen: dict[str, int] = {}
        for i, name in enumerate(names):
            if name in seen:
                self.add(rel, f"duplicate {what} '{name}' (first at {key}[{seen[name]}])", f"{key}[{i}].name", lines, (key, i))
            seen.setdefault(name, i)


def load_pack(name_or_path: str | Path) -> ScenarioPack:
    """Load and validate a pack; raises PackValidationError listing every problem found."""
    root = resolve_pack_path(name_or_path)
    r = _Reader(root)
    manifest, manifest_lines = r.model("pack.yaml", PackManifest)
    policy = _read_text(r, "policy.md")
    schema, rows = _read_fixtures(r)
    tools_file, tools_lines = r.model("tools.yaml", ToolsFile)
    toolset = _bind_tools(r, tools_file, tools_lines, manifest)
    intents_file, intents_lines = r.model("intents.yaml", IntentsFile)
    if intents_file is not None:
        r.unique("intents.yaml", [i.name for i in intents_file.intents], "intent", intents_lines, "intents")
    kb = _read_kb(r)
    if manifest is None or schema is None or toolset is None or intents_file is None:
        raise PackValidationError(r.issues)  # later checks need all four

    catalogue = pack_catalogue(manifest, schema, [t.spec for t in toolset], intents_file.intents)
    _check_entities(r, manifest, schema, catalogue, manifest_lines)
    compiler = RuleCompiler(without(catalogue, "slots"), toolset.specs())
    engine = None
    try:
        engine = RuleEngine(compiler, compiler.compile_text(_read_text(r, "rules.yaml") or "", "rules.yaml"),
                            root / "rules.yaml")
    except PackValidationError as exc:
        r.issues += exc.issues
    if engine is not None:
        r.issues += ownership_issues(manifest, [t.spec for t in toolset], engine.rules)
    playbooks, pb_lines = r.model("playbooks.yaml", PlaybooksFile)
    if playbooks is not None and engine is not None:
        _check_playbooks(r, playbooks, pb_lines, intents_file, toolset, engine, catalogue)
    tasks = _read_tasks(r, manifest, intents_file, toolset)
    if r.issues:
        raise PackValidationError(r.issues)
    return ScenarioPack(
        path=root,
        manifest=manifest,
        policy=policy or "",
        schema=schema,
        fixtures=rows,
        tools=toolset,
        intents=intents_file.intents,
        playbooks=playbooks,
        kb=kb,
        tasks=tasks,
        rules=engine,
        catalogue=catalogue,
    )


def validate_pack(name_or_path: str | Path) -> list[PackIssue]:
    """Every problem in a pack (empty when it is valid)."""
    try:
        load_pack(name_or_path)
    except PackValidationError as exc:
        return exc.issues
    return []


def _read_text(r: _Reader, rel: str) -> str | None:
    path = r.root / rel
    if not path.is_file():
        r.add(rel, "file is missing")
        return None
    text = path.read_text(encoding="utf-8")
    if rel.endswith(".md") and not text.strip():
        r.add(rel, "file is empty")
    return text


def _read_fixtures(r: _Reader) -> tuple[FixtureSchema | None, dict[str, list[dict]]]:
    schema, _ = r.model("fixtures/schema.yaml", FixtureSchema)
    if schema is None:
        return None, {}
    rows: dict[str, list[dict]] = {}
    files: dict[str, str] = {}
    lines: dict[str, LineMap] = {}
    bad = False
    for table in schema.tables:
        rel = files[table] = f"fixtures/{table}.json"
        try:
            data, lines[table] = load_json(r.root / rel, rel)
        except PackValidationError as exc:
            r.issues += exc.issues
            bad = True
            continue
        problems = check_table(schema, table, data, rel, lines[table])
        r.issues += problems
        bad |= bool(problems)
        rows[table] = data if isinstance(data, list) else []
    for extra in sorted((r.root / "fixtures").glob("*.json")):
        if extra.stem not in schema.tables:
            r.add(f"fixtures/{extra.name}", f"no table '{extra.stem}' in fixtures/schema.yaml")
    if not bad:
        r.issues += check_references(schema, rows, files, lines)
    return schema, rows


def _bind_tools(r: _Reader, tools_file: ToolsFile | None, lines: LineMap, manifest: Any) -> Toolset | None:
    if tools_file is None:
        return None
    r.unique("tools.yaml", [t.name for t in tools_file.tools], "tool", lines, "tools")
    path = r.root / "tools.py"
    if not path.is_file():
        r.add("tools.py", "file is missing")
        return None
    try:
        module = load_module(path, manifest.name if manifest else r.root.name)
    except Exception as exc:  # noqa: BLE001 - any error importing a pack's code is a pack problem
        line = getattr(exc, "lineno", None)
        r.add("tools.py", f"cannot import: {type(exc).__name__}: {exc}")
        if line:
            r.issues[-1] = PackIssue("tools.py", r.issues[-1].message, line=line)
        return None
    bound, issues = bind(tools_file.tools, module, "tools.py")
    for issue in issues:  # point tools.yaml problems at their line
        if issue.field.startswith("tools["):
            index = int(issue.field[6 : issue.field.index("]")])
            issue = PackIssue("tools.yaml", issue.message, issue.field, lines.line(("tools", index)))
        r.issues.append(issue)
    return Toolset(bound) if not issues else None


def _read_kb(r: _Reader) -> KnowledgeBase:
    folder = r.root / "kb"
    articles = []
    paths = sorted(folder.glob("*.md")) if folder.is_dir() else []
    if not paths:
        r.add("kb/", "needs at least one article (kb/<id>.md)")
    for path in paths:
        article, issues = read_article(path, f"kb/{path.name}")
        r.issues += issues
        if article is not None:
            articles.append(article)
    return KnowledgeBase(articles)


def _check_entities(r: _Reader, manifest: PackManifest, schema: FixtureSchema, catalogue: Catalogue, lines: LineMap) -> None:
    """Entity tables, lookups, derived fields and aggregates must name real things."""
    lookup_catalogue = catalogue.extended(args=None)
    for name, entity in manifest.entities.items():
        base = ("entities", name)
        if entity.table not in schema.tables:
            r.add("pack.yaml", f"unknown table '{entity.table}' (tables: {', '.join(schema.tables)})",
                  f"entities.{name}.table", lines, (*base, "table"))
            continue
        if entity.owner is not None and entity.owner not in schema.tables[entity.table].columns:
            r.add("pack.yaml", f"table '{entity.table}' has no column '{entity.owner}'",
                  f"entities.{name}.owner", lines, (*base, "owner"))
        for i, path in enumerate(entity.lookup):
            _compile(r, "pack.yaml", lambda p=path: compile_expr(p, lookup_catalogue), f"entities.{name}.lookup[{i}]", lines, (*base, "lookup", i))
        for field, source in entity.derived.items():
            _compile(r, "pack.yaml", lambda s=source: compile_expr(s, lookup_catalogue), f"entities.{name}.derived.{field}", lines, (*base, "derived", field))
        for field, agg in entity.aggregates.items():
            where = f"entities.{name}.aggregates.{field}"
            path = (*base, "aggregates", field)
            table = schema.tables.get(agg.table)
            if table is None:
                r.add("pack.yaml", f"unknown table '{agg.table}'", f"{where}.table", lines, path)
                continue
            named = [agg.column] + list(agg.match) + ([agg.within.column] if agg.within else [])
            for col in filter(None, named):
                if col not in table.columns:
                    r.add("pack.yaml", f"table '{agg.table}' has no column '{col}'", where, lines, path)
            if agg.within and agg.within.column in table.columns and table.columns[agg.within.column].type != "datetime":
                r.add("pack.yaml", f"window column '{agg.within.column}' is not a datetime", f"{where}.within", lines, path)
            _compile(r, "pack.yaml", lambda a=agg: compile_value(a.match, lookup_catalogue), f"{where}.match", lines, (*path, "match"))
    _check_derived_cycles(r, manifest, lines)


def _check_derived_cycles(r: _Reader, manifest: PackManifest, lines: LineMap) -> None:
    graph: dict[tuple[str, str], set[tuple[str, str]]] = {}
    for name, entity in manifest.entities.items():
        for field, source in entity.derived.items():
            try:
                refs = compile_expr(source).fields
            except ExpressionError:
                continue
            graph[(name, field)] = {(p[0], p[1]) for p in refs if len(p) > 1}
    state: dict[tuple[str, str], int] = {}

    def visit(node: tuple[str, str]) -> bool:
        if state.get(node) == 1:
            return True
        if state.get(node) == 2 or node not in graph:
            return False
        state[node] = 1
        cyclic = any(visit(n) for n in graph[node])
        state[node] = 2
        return cyclic

    for node in graph:
        if state.get(node) is None and visit(node):
            r.add("pack.yaml", "derived field depends on itself", f"entities.{node[0]}.derived.{node[1]}",
                  lines, ("entities", node[0], "derived", node[1]))


def _compile(r: _Reader, rel: str, build: Any, field: str, lines: LineMap, path: tuple) -> bool:
    try:
        build()
        return True
    except ExpressionError as exc:
        r.add(rel, str(exc), field, lines, path)
        return False


def _check_playbooks(r, playbooks: PlaybooksFile, lines: LineMap, intents: IntentsFile, toolset: Toolset,
                     engine: RuleEngine, catalogue: Catalogue) -> None:
    """Every intent has a playbook; steps name real tools, arguments and rules."""
    rel = "playbooks.yaml"
    names = {i.name for i in intents.intents}
    for intent in sorted(names - set(playbooks.playbooks)):
        r.add(rel, f"no playbook for intent '{intent}'", "playbooks", lines, ("playbooks",))
    for intent in sorted(set(playbooks.playbooks) - names):
        r.add(rel, f"unknown intent '{intent}' (intents: {', '.join(sorted(names))})", f"playbooks.{intent}", lines, ("playbooks", intent))
    cat = catalogue.extended(constants={"params": engine.params}, result=None)
    rule_ids = set(engine.rules.by_id)

    def check_step(step: Any, path: tuple, fallback: bool) -> None:
        where = ".".join(str(p) if isinstance(p, str) else f"[{p}]" for p in path).replace(".[", "[")
        if step.when is not None:
            _compile(r, rel, lambda: compile_expr(step.when, cat), f"{where}.when", lines, (*path, "when"))
        denied_by = getattr(step, "when_denied_by", None)
        if denied_by is not None and not fallback:
            r.add(rel, "when_denied_by is only meaningful inside 'otherwise'", f"{where}.when_denied_by", lines, path)
        for rule_id in denied_by or []:
            if rule_id not in rule_ids:
                r.add(rel, f"unknown rule id '{rule_id}'", f"{where}.when_denied_by", lines, (*path, "when_denied_by"))
        if isinstance(step, ChooseStep):
            for i, option in enumerate(step.choose):
                check_step(option, (*path, "choose", i), False)
            for i, other in enumerate(step.otherwise):
                check_step(other, (*path, "otherwise", i), True)
            return
        for i, text in enumerate(step.communicate):
            _compile(r, rel, lambda t=text: compile_value(t, cat), f"{where}.communicate[{i}]", lines, (*path, "communicate", i))
        if isinstance(step, SayStep):
            return
        assert isinstance(step, CallStep)
        if step.call not in toolset:
            r.add(rel, f"unknown tool '{step.call}' (tools: {', '.join(toolset.names)})", f"{where}.call", lines, (*path, "call"))
            return
        params = toolset.spec(step.call).parameters
        for name in step.args:
            if name not in params.properties:
                r.add(rel, f"tool '{step.call}' has no parameter '{name}'", f"{where}.args.{name}", lines, (*path, "args", name))
        for name in params.required:
            if name not in step.args:
                r.add(rel, f"missing required argument '{name}' of '{step.call}'", f"{where}.args", lines, (*path, "args"))
        _compile(r, rel, lambda: compile_value(step.args, cat), f"{where}.args", lines, (*path, "args"))

    for intent, playbook in playbooks.playbooks.items():
        for i, step in enumerate(playbook.steps):
            check_step(step, ("playbooks", intent, "steps", i), False)


def _read_tasks(r: _Reader, manifest: PackManifest, intents: IntentsFile, toolset: Toolset) -> list[Task]:
    rel = "tasks.json"
    try:
        data, lines = load_json(r.root / rel, rel)
    except PackValidationError as exc:
        r.issues += exc.issues
        return []
    try:
        tasks = TASKS.validate_python(data)
    except ValidationError as exc:
        for issue in pydantic_issues(exc, rel, lines):
            r.issues.append(PackIssue(rel, issue.message, "tasks" + issue.field, issue.line))
        return []
    by_name = {i.name: i for i in intents.intents}
    vocab = {"evidence": set(manifest.dialogue.evidence), "flags": set(manifest.dialogue.flags)}
    seen: dict[str, int] = {}
    for t, task in enumerate(tasks):
        def bad(message: str, path: tuple, _t: int = t) -> None:
            r.add(rel, message, "tasks" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in (_t, *path)), lines, (_t, *path))

        if task.id in seen:
            bad(f"duplicate task id '{task.id}' (first at tasks[{seen[task.id]}])", ("id",))
        seen.setdefault(task.id, t)
        if task.user_scenario.instructions.domain != manifest.name:
            bad(f"domain must be '{manifest.name}'", ("user_scenario", "instructions", "domain"))
        for key in ("evidence", "flags"):
            for value in getattr(task.situation, key):
                if value not in vocab[key]:
                    bad(f"unknown {key} '{value}' (pack.yaml dialogue.{key}: {sorted(vocab[key])})", ("situation", key))
        for q, request in enumerate(task.situation.requests):
            path = ("situation", "requests", q)
            spec = by_name.get(request.intent)
            if spec is None:
                bad(f"unknown intent '{request.intent}'", (*path, "intent"))
                continue
            slots = {s.name: s for s in spec.slots}
            for name in request.slots:
                if name not in slots:
                    bad(f"intent '{request.intent}' has no slot '{name}' (slots: {', '.join(slots) or 'none'})", (*path, "slots", name))
            for name, slot in slots.items():
                if slot.required and request.slots.get(name) is None:
                    bad(f"required slot '{name}' of '{request.intent}' is missing", (*path, "slots"))
            if request.demand and request.demand.tool not in toolset:
                bad(f"unknown tool '{request.demand.tool}'", (*path, "demand", "tool"))
        for a, action in enumerate(task.evaluation_criteria.actions):
            try:
                toolset.validate(action.name, action.arguments)
            except ScenarioError as exc:
                bad(str(exc), ("evaluation_criteria", "actions", a))
    return tasks


__all__ = ["builtin_packs", "load_pack", "resolve_pack_path", "validate_pack"]
