"""Jinja2 templates in stack files: analysis, sandboxed rendering, and errors people can act on.

Every string containing ``{{`` or ``{%`` is a template. It is rendered when the
stack is loaded, with ``var`` (the variables) and ``env`` (the environment),
unless it reads a resource section (``{{ endpoints.infer.id }}``): such a
template becomes a :class:`~reconciler.stack.spec.Deferred`, rendered later by
:mod:`reconciler.stack.expressions` once those resources exist.

Rendering runs in Jinja's sandbox with ``StrictUndefined``: using a name that
does not exist is an error (``| default(...)`` is the way to make it optional);
reaching for Python internals (``''.__class__``) is an error; ``*`` and ``**``
cannot build huge values. ``a.b`` on a mapping reads the key ``b`` before any
method of the same name (so a variable called ``items`` works). Compiled
templates are cached by source text.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, meta, nodes
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment
from jinja2.utils import missing

from reconciler.providers.base import UNKNOWN
from reconciler.stack.source import Loc
from reconciler.stack.spec import SECTIONS, Deferred

_MAX_SIZE = 1_000_000  # longest string or list `*` may build
_MAX_EXPONENT = 1_000
_NAMES = ("var", "env", *SECTIONS)


class TemplateError(Exception):
    """A template failed; ``undefined`` tells a missing value from other failures."""

    def __init__(self, message: str, *, undefined: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.undefined = undefined


class Namespace(dict[str, Any]):
    """A mapping that knows its name (``var``, ``var.db``, ``env``) for error messages."""

    __slots__ = ("_label", "_note")

    def __init__(self, label: str, items: Mapping[str, Any], note: str | None = None) -> None:
        super().__init__(items)
        self._label = label
        self._note = note  # says why a name is missing, instead of listing the names defined


class _Undefined(StrictUndefined):
    """StrictUndefined with messages that say which variable and what exists instead."""

    __slots__ = ()

    @property
    def _undefined_message(self) -> str:
        obj, name = self._undefined_obj, self._undefined_name
        if self._undefined_hint:
            return self._undefined_hint
        if isinstance(obj, Namespace) and isinstance(name, str):
            label = f"{obj._label}.{name}"
            if obj._label == "env":
                return (
                    f"undefined variable '{label}': environment variable {name} is not set;"
                    f" set it or write {{{{ {label} | default('...') }}}}"
                )
            defined = f"defined: {', '.join(sorted(obj)) or 'none'}"
            return f"undefined variable '{label}'; {obj._note or defined}"
        if obj is missing:
            return f"undefined variable '{name}'; available: {', '.join(_NAMES)}"
        return str(super()._undefined_message)


class _Sandbox(SandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, (int, float)) and abs(right) > _MAX_EXPONENT:
            raise SecurityError(f"exponent {right} is too large (at most {_MAX_EXPONENT})")
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                sized = isinstance(seq, (str, list, tuple)) and isinstance(times, int)
                if sized and len(seq) * times > _MAX_SIZE:
                    raise SecurityError(f"'*' would build a value longer than {_MAX_SIZE}")
        return super().call_binop(context, operator, left, right)

    def getattr(self, obj: Any, attribute: str) -> Any:
        if isinstance(obj, dict) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)


ENVIRONMENT = _Sandbox(undefined=_Undefined, autoescape=False, keep_trailing_newline=True)


def is_template(text: str) -> bool:
    return "{{" in text or "{%" in text


@dataclass(frozen=True)
class Analysis:
    """What a template reads, found in its syntax tree.

    ``refs``: resource addresses (``endpoints.infer``); ``deferred``: it reads a
    resource section at all; ``inputs``: ``var.x``/``env.X`` it reads (bare
    ``var``/``env`` when it reads the whole mapping); ``problem``: a way of
    reading resources that cannot be resolved (``endpoints[var.which]``).
    """

    refs: tuple[str, ...]
    deferred: bool
    inputs: tuple[str, ...]
    problem: str | None = None


@functools.lru_cache(maxsize=8192)
def analyse(source: str) -> Analysis:
    try:
        tree = ENVIRONMENT.parse(source)
    except TemplateSyntaxError as exc:
        raise TemplateError(_syntax_message(exc, source)) from None
    names = {n.name for n in tree.find_all(nodes.Name)} & {"var", "env", *SECTIONS}
    if names & set(SECTIONS):  # exact but costly (it generates code): only when it can matter
        names &= meta.find_undeclared_variables(tree)
    read: set[str] = set()  # "endpoints.infer", "var.region"
    keyed: set[int] = set()  # Name nodes read as name.<key> or name['key']
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        base = node.node  # type: ignore[attr-defined]
        key = node.attr if isinstance(node, nodes.Getattr) else getattr(node.arg, "value", None)  # type: ignore[attr-defined]
        if isinstance(base, nodes.Name) and base.name in names and isinstance(key, str):
            read.add(f"{base.name}.{key}")
            keyed.add(id(base))
    whole = {n.name for n in tree.find_all(nodes.Name) if n.name in names and id(n) not in keyed}
    sections = sorted(names & set(SECTIONS))
    problem = None
    if whole & set(SECTIONS):
        which = min(whole & set(SECTIONS))
        problem = (
            f"'{which}' can only be read as {which}.<key>.<attribute>"
            f" (e.g. {{{{ endpoints.infer.id }}}}), with a literal key"
        )
    refs = sorted(a for a in read if a.split(".", 1)[0] in sections)
    inputs = sorted({*(a for a in read if a.split(".", 1)[0] in ("var", "env")), *(whole & {"var", "env"})})
    return Analysis(tuple(refs), bool(sections), tuple(inputs), problem)


@functools.lru_cache(maxsize=8192)
def _compiled(source: str) -> Any:
    return ENVIRONMENT.from_string(source)


def context(variables: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """The load-time context: ``var`` and ``env`` (values reachable by attribute)."""
    return {"var": _namespace("var", variables), "env": Namespace("env", env)}


def _namespace(label: str, value: Any) -> Any:
    if isinstance(value, Mapping):
        return Namespace(label, {str(k): _namespace(f"{label}.{k}", v) for k, v in value.items()})
    if isinstance(value, list):
        return [_namespace(f"{label}[{i}]", v) for i, v in enumerate(value)]
    return value


def render(source: str, ctx: Mapping[str, Any]) -> str:
    """Render ``source`` with ``ctx``; every failure becomes a :class:`TemplateError`."""
    try:
        template = _compiled(source)
        return str(template.render(ctx))
    except TemplateSyntaxError as exc:
        raise TemplateError(_syntax_message(exc, source)) from None
    except SecurityError as exc:
        raise TemplateError(f"rejected by the template sandbox: {exc}") from None
    except UndefinedError as exc:
        raise TemplateError(str(exc), undefined=True) from None
    except Exception as exc:  # a user's template can fail in any filter or operator; say how
        raise TemplateError(f"template failed: {type(exc).__name__}: {exc}") from None


def probe(source: str, ctx: Mapping[str, Any]) -> None:
    """Render a deferred template with stand-ins for resources, to find bad ``var``/``env`` early.

    Only undefined names and sandbox violations count: anything else may be
    an artefact of the stand-ins and is left for the real rendering.
    """
    try:
        render(source, {**ctx, **{s: _STAND_IN for s in SECTIONS}})
    except TemplateError as exc:
        if exc.undefined or exc.message.startswith(("rejected", "template syntax")):
            raise


class _StandIn:
    """Any attribute, item or call of a resource during :func:`probe`: itself; shown as ``""``."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("unsafe_callable", "alters_data", "jinja_pass_arg"):
            raise AttributeError(name)
        return self

    def __getitem__(self, key: Any) -> Any:
        return self

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self

    def __iter__(self) -> Any:
        return iter(())

    def __str__(self) -> str:
        return ""


_STAND_IN = _StandIn()


def pending(value: Any) -> Any:
    """``value`` with every UNKNOWN replaced by an undefined value, so that using it fails."""
    if value is UNKNOWN:
        return ENVIRONMENT.undefined(hint="value known only after apply")
    if isinstance(value, Mapping):
        return {k: pending(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [pending(v) for v in value]
    return value


def _syntax_message(exc: TemplateSyntaxError, source: str) -> str:
    where = f" (template line {exc.lineno})" if "\n" in source.strip() else ""
    return f"template syntax error: {exc.message}{where}"


Report = Callable[[Loc, str], None]


class TreeRenderer:
    """Renders every template in a tree of plain values at load time.

    Templates that read resources become :class:`Deferred` where ``deferred_ok``;
    elsewhere they are reported. Failures are reported through ``report`` and
    leave the original text in place. Deferred values made are kept in
    ``deferred`` with their location, for the loader's reference checks.
    """

    def __init__(self, ctx: Mapping[str, Any], report: Report) -> None:
        self.ctx = ctx
        self.report = report
        self.deferred: list[tuple[Loc, Deferred]] = []

    def render(self, value: Any, loc: Loc, *, deferred_ok: bool) -> Any:
        if isinstance(value, dict):
            return {k: self.render(v, (*loc, k), deferred_ok=deferred_ok) for k, v in value.items()}
        if isinstance(value, list):
            return [self.render(v, (*loc, i), deferred_ok=deferred_ok) for i, v in enumerate(value)]
        if not isinstance(value, str) or not is_template(value):
            return value
        try:
            analysis = analyse(value)
            if not analysis.deferred:
                return render(value, self.ctx)
            if analysis.problem:
                self.report(loc, analysis.problem)
                return value
            if not deferred_ok:
                self.report(loc, "cannot reference resources here; only var and env can be used")
                return value
            probe(value, self.ctx)
        except TemplateError as exc:
            self.report(loc, exc.message)
            return value
        deferred = Deferred(value, analysis.refs)
        self.deferred.append((loc, deferred))
        return deferred
