"""A small, safe expression language for rules, derived fields and playbooks, compiled to Python.

Rules are data a business edits, so conditions are short expressions rather than code::

    order.status == 'delivered'
    order.minutes_late >= params.late_full_minutes
    args.amount <= min(order.total * 0.3, params.late_partial_cap)
    'photo' in dialogue.evidence

Grammar: field paths (``namespace.field``), ``now``, numbers, strings, ``true``/``false``/
``null``, lists, ``and``/``or``/``not``, comparisons (``== != < <= > >= in not in``),
arithmetic (``+ - * / % //``), ``a if cond else b``, and the functions in ``FUNCTIONS``.
Anything else (attribute calls, subscripts, lambdas, imports) is rejected when compiling.

Missing values (a record that does not exist, a field that is null) follow one rule, as in
SQL: any comparison or arithmetic involving a missing value is false (or missing). To test
for a missing value, write ``x == null`` or ``x != null``. Compiling checks every field path
against a ``Catalogue`` and string literals against known enums, so a typo in a rules file is
caught when it is loaded, not when a customer hits the rule. A compiled expression is a plain
Python function of one context dict, which is what makes 10,000+ rule checks a second cheap.
"""

from __future__ import annotations

import ast
import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from wow_ray.scenario.catalogue import Catalogue
from wow_ray.scenario.errors import ExpressionError

# ---------------------------------------------------------------------------------------------
# Runtime helpers: null-safe operators and the whitelisted functions.


def _g(record: Any, key: str) -> Any:
    # record[key] runs at C speed on a dict; lazily computed fields come from __missing__.
    if record is None:
        return None
    try:
        return record[key]
    except (KeyError, TypeError):
        return None


def _cmp(op: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def compare(a: Any, b: Any) -> bool:
        if a is None or b is None:
            return False
        try:
            return bool(op(a, b))
        except TypeError:
            return False

    return compare


def _arith(op: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    def apply(a: Any, b: Any) -> Any:
        if a is None or b is None:
            return None
        try:
            return op(a, b)
        except (TypeError, ZeroDivisionError, OverflowError):
            return None

    return apply


def _neg(a: Any) -> Any:
    return None if a is None else -a


_contains = None  # set below, once _cmp exists


def _in(a: Any, b: Any) -> bool:
    return a is not None and b is not None and _contains(b, a)


def _not_in(a: Any, b: Any) -> bool:
    return a is not None and b is not None and not _contains(b, a)


_contains = _cmp(operator.contains)


def _null_safe(fn: Callable[..., Any]) -> Callable[..., Any]:
    def call(*args: Any) -> Any:
        if any(a is None for a in args):
            return None
        try:
            return fn(*args)
        except (TypeError, ValueError, ZeroDivisionError, OverflowError):
            return None

    call.__name__ = fn.__name__
    return call


def _minutes_between(start: datetime, end: datetime) -> float:
    return (end - start).total_seconds() / 60.0


def _coalesce(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


def _money(value: float) -> str:
    # The shortest exact form (12.5, 30, 12.35): communicate_info is matched as a substring,
    # and "12.5" is found in both "12.5" and "12.50" while "12.50" is not found in "12.5".
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _round(value: float, digits: int = 0) -> float:
    # Decimal-style half-up rounding of money, so 12.345 -> 12.35 everywhere (Python rounds
    # half to even on the binary value, which surprises people reading a policy).
    scale = 10**digits
    return math.floor(value * scale + 0.5 + 1e-9) / scale


FUNCTIONS: dict[str, tuple[Callable[..., Any], int, int]] = {
    # name: (function, min args, max args); every function returns null on a null argument
    "min": (_null_safe(min), 1, 8),
    "max": (_null_safe(max), 1, 8),
    "abs": (_null_safe(abs), 1, 1),
    "round": (_null_safe(_round), 1, 2),
    "len": (_null_safe(len), 1, 1),
    "lower": (_null_safe(str.lower), 1, 1),
    "upper": (_null_safe(str.upper), 1, 1),
    "str": (_null_safe(str), 1, 1),
    "int": (_null_safe(int), 1, 1),
    "float": (_null_safe(float), 1, 1),
    "money": (_null_safe(_money), 1, 1),
    "coalesce": (_coalesce, 1, 8),
    "minutes_between": (_null_safe(_minutes_between), 2, 2),
    "hours_between": (_null_safe(lambda a, b: _minutes_between(a, b) / 60.0), 2, 2),
    "days_between": (_null_safe(lambda a, b: _minutes_between(a, b) / 1440.0), 2, 2),
    "minutes": (_null_safe(lambda n: timedelta(minutes=n)), 1, 1),
    "hours": (_null_safe(lambda n: timedelta(hours=n)), 1, 1),
    "days": (_null_safe(lambda n: timedelta(days=n)), 1, 1),
}

CONSTANTS = {"true": True, "false": False, "null": None, "none": None}

_COMPARE = {
    ast.Eq: "_eq",
    ast.NotEq: "_ne",
    ast.Lt: "_lt",
    ast.LtE: "_le",
    ast.Gt: "_gt",
    ast.GtE: "_ge",
    ast.In: "_in",
    ast.NotIn: "_not_in",
}
_ARITH = {
    ast.Add: "_add",
    ast.Sub: "_sub",
    ast.Mult: "_mul",
    ast.Div: "_div",
    ast.FloorDiv: "_floordiv",
    ast.Mod: "_mod",
}
_RUNTIME: dict[str, Any] = {
    "_g": _g,
    "_eq": _cmp(operator.eq),
    "_ne": _cmp(operator.ne),
    "_lt": _cmp(operator.lt),
    "_le": _cmp(operator.le),
    "_gt": _cmp(operator.gt),
    "_ge": _cmp(operator.ge),
    "_in": _in,
    "_not_in": _not_in,
    "_add": _arith(operator.add),
    "_sub": _arith(operator.sub),
    "_mul": _arith(operator.mul),
    "_div": _arith(operator.truediv),
    "_floordiv": _arith(operator.floordiv),
    "_mod": _arith(operator.mod),
    "_neg": _neg,
    **{f"_f_{name}": fn for name, (fn, _, _) in FUNCTIONS.items()},
}

# ---------------------------------------------------------------------------------------------
# Compilation.


@dataclass(frozen=True)
class Compiled:
    """A compiled expression: its source, a function of the context, and the paths it reads."""

    source: str
    fn: Callable[[Mapping[str, Any]], Any]
    fields: frozenset[tuple[str, ...]]

    def __call__(self, context: Mapping[str, Any]) -> Any:
        return self.fn(context)


def compile_expr(source: str, catalogue: Catalogue | None = None) -> Compiled:
    """Compile one expression; raises ExpressionError saying what is wrong with it."""
    return compile_all([source], catalogue)


def compile_all(sources: list[str], catalogue: Catalogue | None = None) -> Compiled:
    """Compile several conditions into one function that is true when all of them are."""
    if not sources:
        return Compiled("true", lambda c: True, frozenset())
    trees = []
    for src in sources:
        if not isinstance(src, str) or not src.strip():
            raise ExpressionError("an expression must be a non-empty string")
        try:
            trees.append(ast.parse(src.strip(), mode="eval").body)
        except SyntaxError as exc:
            raise ExpressionError(f"syntax error in '{src}': {exc.msg}") from None
    builder = _Builder(catalogue)
    bodies = [builder.visit(tree) for tree in trees]
    body = bodies[0] if len(bodies) == 1 else ast.BoolOp(op=ast.And(), values=bodies)
    lam = ast.Lambda(
        args=ast.arguments(posonlyargs=[], args=[ast.arg("c")], kwonlyargs=[], kw_defaults=[], defaults=[]),
        body=body,
    )
    tree = ast.fix_missing_locations(ast.Expression(body=lam))
    source = " and ".join(f"({s})" if len(sources) > 1 else s for s in sources)
    fn = eval(compile(tree, f"<expr {source[:60]}>", "eval"), dict(_RUNTIME))  # noqa: S307 - AST whitelisted above
    return Compiled(source, fn, frozenset(builder.fields))


def _call(name: str, *args: ast.expr) -> ast.Call:
    return ast.Call(func=ast.Name(name, ast.Load()), args=list(args), keywords=[])


class _Builder:
    """Rewrites a whitelisted Python AST into calls of the null-safe runtime helpers."""

    def __init__(self, catalogue: Catalogue | None) -> None:
        self.catalogue = catalogue
        self.fields: set[tuple[str, ...]] = set()

    def visit(self, node: ast.AST) -> ast.expr:
        method = getattr(self, f"_{type(node).__name__}", None)
        if method is None:
            raise ExpressionError(f"'{ast.unparse(node)}' is not allowed in an expression")
        return method(node)

    def _Constant(self, node: ast.Constant) -> ast.expr:
        if not isinstance(node.value, str | int | float | bool | type(None)):
            raise ExpressionError(f"constant {node.value!r} is not allowed")
        return ast.Constant(node.value)

    def _List(self, node: ast.List | ast.Tuple) -> ast.expr:
        return ast.Tuple([self.visit(e) for e in node.elts], ast.Load())

    _Tuple = _List

    def _Name(self, node: ast.Name) -> ast.expr:
        if node.id in CONSTANTS:
            return ast.Constant(CONSTANTS[node.id])
        return self._path((node.id,))

    def _Attribute(self, node: ast.Attribute) -> ast.expr:
        return self._path(_dotted(node))

    def _path(self, path: tuple[str, ...]) -> ast.expr:
        if self.catalogue is not None:
            is_constant, value = self.catalogue.constant(path)
            if is_constant:
                return ast.Constant(value)
            self.catalogue.lookup(path)
        self.fields.add(path)
        out: ast.expr = _call_attr_get(path[0])
        for key in path[1:]:
            out = _call("_g", out, ast.Constant(key))
        return out

    def _BoolOp(self, node: ast.BoolOp) -> ast.expr:
        return ast.BoolOp(op=node.op, values=[self.visit(v) for v in node.values])

    def _UnaryOp(self, node: ast.UnaryOp) -> ast.expr:
        if isinstance(node.op, ast.Not):
            return ast.UnaryOp(ast.Not(), self.visit(node.operand))
        if isinstance(node.op, ast.USub):
            return _call("_neg", self.visit(node.operand))
        if isinstance(node.op, ast.UAdd):
            return self.visit(node.operand)
        raise ExpressionError(f"operator in '{ast.unparse(node)}' is not allowed")

    def _BinOp(self, node: ast.BinOp) -> ast.expr:
        helper = _ARITH.get(type(node.op))
        if helper is None:
            raise ExpressionError(f"operator in '{ast.unparse(node)}' is not allowed")
        return _call(helper, self.visit(node.left), self.visit(node.right))

    def _IfExp(self, node: ast.IfExp) -> ast.expr:
        return ast.IfExp(self.visit(node.test), self.visit(node.body), self.visit(node.orelse))

    def _Compare(self, node: ast.Compare) -> ast.expr:
        parts = []
        left = node.left
        for op, right in zip(node.ops, node.comparators, strict=True):
            parts.append(self._compare_pair(left, op, right))
            left = right
        return parts[0] if len(parts) == 1 else ast.BoolOp(ast.And(), parts)

    def _compare_pair(self, left: ast.expr, op: ast.cmpop, right: ast.expr) -> ast.expr:
        if isinstance(op, ast.Eq | ast.NotEq) and (_is_null(left) or _is_null(right)):
            other = right if _is_null(left) else left
            is_op = ast.Is() if isinstance(op, ast.Eq) else ast.IsNot()
            return ast.Compare(self.visit(other), [is_op], [ast.Constant(None)])
        if isinstance(op, ast.Is | ast.IsNot):
            raise ExpressionError("use '== null' / '!= null' instead of 'is'")
        self._check_literals(left, op, right)
        return _call(_COMPARE[type(op)], self.visit(left), self.visit(right))

    def _check_literals(self, left: ast.expr, op: ast.cmpop, right: ast.expr) -> None:
        """A string literal compared with an enum field must be one of its values."""
        if self.catalogue is None:
            return
        if isinstance(op, ast.In | ast.NotIn):
            pairs = [(right, e) for e in _literal_items(left)] if _is_field(right) else []
            pairs += [(left, e) for e in _literal_items(right)] if _is_field(left) else []
        else:
            pairs = [(a, b) for a, b in ((left, right), (right, left)) if _is_field(a)]
        for field_node, literal in pairs:
            if not (isinstance(literal, ast.Constant) and isinstance(literal.value, str)):
                continue
            info = self.catalogue.lookup(_dotted(field_node))
            if info.values is not None and literal.value not in info.values:
                name = ".".join(_dotted(field_node))
                allowed = ", ".join(sorted(info.values))
                raise ExpressionError(f"{name} has no value '{literal.value}' (values: {allowed})")

    def _Call(self, node: ast.Call) -> ast.expr:
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            known = ", ".join(sorted(FUNCTIONS))
            raise ExpressionError(f"unknown function in '{ast.unparse(node)}' (functions: {known})")
        if node.keywords:
            raise ExpressionError(f"keyword arguments are not allowed: '{ast.unparse(node)}'")
        _, lo, hi = FUNCTIONS[node.func.id]
        if not lo <= len(node.args) <= hi:
            raise ExpressionError(f"{node.func.id}() takes {lo} to {hi} arguments")
        return _call(f"_f_{node.func.id}", *[self.visit(a) for a in node.args])


def _call_attr_get(root: str) -> ast.expr:
    return _call("_g", ast.Name("c", ast.Load()), ast.Constant(root))


def _dotted(node: ast.expr) -> tuple[str, ...]:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        raise ExpressionError(f"'{ast.unparse(node)}' is not a field path")
    return (node.id, *reversed(parts))


def _is_field(node: ast.expr) -> bool:
    return (isinstance(node, ast.Name) and node.id not in CONSTANTS) or isinstance(node, ast.Attribute)


def _is_null(node: ast.expr) -> bool:
    return (isinstance(node, ast.Constant) and node.value is None) or (
        isinstance(node, ast.Name) and node.id in {"null", "none"}
    )


def _literal_items(node: ast.expr) -> list[ast.expr]:
    if isinstance(node, ast.List | ast.Tuple):
        return list(node.elts)
    return [node] if isinstance(node, ast.Constant) else []


# ---------------------------------------------------------------------------------------------
# Values that are expressions: playbook arguments and aggregate matches write "=expr".


def is_expression(value: Any) -> bool:
    """A string value starting with '=' is an expression; anything else is a literal."""
    return isinstance(value, str) and value.startswith("=")


def compile_value(value: Any, catalogue: Catalogue | None = None) -> Callable[[Mapping[str, Any]], Any]:
    """Compile a literal-or-expression value (recursing into dicts and lists)."""
    if is_expression(value):
        return compile_expr(value[1:], catalogue).fn
    if isinstance(value, dict):
        parts = {k: compile_value(v, catalogue) for k, v in value.items()}
        return lambda c: {k: f(c) for k, f in parts.items()}
    if isinstance(value, list):
        items = [compile_value(v, catalogue) for v in value]
        return lambda c: [f(c) for f in items]
    return lambda c: value


def compile_template(text: str, catalogue: Catalogue | None = None) -> Callable[[Mapping[str, Any]], str]:
    """Compile a message with ``{expression}`` placeholders (e.g. a customer-facing reason)."""
    pieces: list[str | Compiled] = []
    pos = 0
    for match in re.finditer(r"\{([^{}]+)\}", text):
        pieces.append(text[pos : match.start()])
        pieces.append(compile_expr(match.group(1), catalogue))
        pos = match.end()
    pieces.append(text[pos:])
    if len(pieces) == 1:
        return lambda c: text

    def render(c: Mapping[str, Any]) -> str:
        return "".join(p if isinstance(p, str) else _show(p.fn(c)) for p in pieces)

    return render


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.2f}".rstrip("0").rstrip(".") if value != int(value) else str(int(value))
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    return "unknown" if value is None else str(value)
