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

Bounds, so that a hostile stack cannot make loading slow or large: the
sandbox is the immutable one (``list.append`` and friends are refused); every
operation that can build something bigger than its inputs (``*``, ``%``,
``str.format``, ``center``/``ljust``/``rjust``/``zfill``, ``replace``,
``join``, the ``center``/``indent``/``wordwrap``/``format``/``batch``/
``string``/``tojson`` filters, ``range``, and every printed value) is charged
against one budget of :data:`MAX_RENDER_SIZE` characters per rendering, and a
rendering on the main thread is stopped after :data:`RENDER_SECONDS` of CPU
time (``ITIMER_VIRTUAL``). ``lipsum`` (which can generate text for ever) is
not available. Templates nested too deeply to parse are reported, not crashed on.
"""

from __future__ import annotations

import contextvars
import functools
import re
import signal
import string
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, meta, nodes
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import missing

from reconciler.providers.base import UNKNOWN
from reconciler.stack.source import Loc
from reconciler.stack.spec import SECTIONS, Deferred

_MAX_SIZE = 1_000_000  # longest string or list `*` may build
_MAX_EXPONENT = 1_000
#: Characters (string lengths, list items) one rendering may build in all.
MAX_RENDER_SIZE = 2_000_000
#: CPU seconds one rendering may take (enforced on the main thread).
RENDER_SECONDS = 0.5
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


# -- bounds ------------------------------------------------------------------------------------------

_BUDGET: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar("template_budget", default=None)
_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?(.)", re.DOTALL)
_WIDENING_METHODS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs", "replace", "join"})


def _weight(value: Any, cap: int = MAX_RENDER_SIZE) -> int:
    """About how many characters ``value`` takes when shown (strings by length, containers summed)."""
    total = 0
    work = [value]
    while work and total <= cap:
        item = work.pop()
        if isinstance(item, (str, bytes)):
            total += len(item)
        elif isinstance(item, Mapping):
            total += 2 + len(item)
            work.extend(item.keys())
            work.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            total += 2 + len(item)
            work.extend(item)
        else:
            total += 8
    return total


def _charge(size: int, what: str) -> None:
    """Count ``size`` characters against the current rendering's budget."""
    if size > _MAX_SIZE:
        raise SecurityError(f"{what} would build a value longer than {_MAX_SIZE}")
    budget = _BUDGET.get()
    if budget is not None:
        budget[0] -= size
        if budget[0] < 0:
            raise SecurityError(f"the template builds more than {MAX_RENDER_SIZE} characters in all")


def _count(value: Any, what: str) -> int:
    """An integer argument that sets a size (a width, a count), refused when absurd."""
    if isinstance(value, bool) or not isinstance(value, int):
        return 0
    if abs(value) > _MAX_SIZE:
        raise SecurityError(f"{what} {value} is too large (at most {_MAX_SIZE})")
    return abs(value)


def _check_percent(fmt: str, args: Any) -> None:
    """``fmt % args``: widths and precisions are bounded; widths taken from arguments (``*``) refused."""
    extra = 0
    for width, precision, _ in _PERCENT_SPEC.findall(fmt):
        if "*" in (width, precision):
            raise SecurityError("'%' formats with a width or precision taken from the arguments ('*')")
        extra += _count(int(width or 0), "width") + _count(int(precision or 0), "precision")
    _charge(len(fmt) + extra + _weight(args), "'%'")


def _check_format(fmt: str, args: Any) -> None:
    """``fmt.format(...)``: no nested replacement fields in specs; widths bounded."""
    extra = 0
    try:
        parsed = list(string.Formatter().parse(fmt))
    except ValueError:
        return  # str.format will say what is wrong
    for _, _, spec, _ in parsed:
        if spec and "{" in spec:
            raise SecurityError("format specs taken from the arguments ('{:{width}}') are not allowed")
        extra += sum(_count(int(n), "width") for n in re.findall(r"\d+", spec or ""))
    _charge(len(fmt) + extra + _weight(args), "format")


def _method_size(obj: str, name: str, args: tuple[Any, ...]) -> int:
    """An upper bound on the length of ``obj.<name>(*args)`` for the widening str methods."""
    if name in ("center", "ljust", "rjust", "zfill"):
        return max(len(obj), _count(args[0] if args else 0, "width"))
    if name == "expandtabs":
        return len(obj) * max(1, _count(args[0] if args else 8, "tab size"))
    if name == "replace" and len(args) >= 2 and isinstance(args[0], str) and isinstance(args[1], str):
        hits = obj.count(args[0]) if args[0] else len(obj) + 1
        return len(obj) + hits * len(args[1])
    if name == "join" and args:
        return _weight(args[0]) + len(obj) * _weight(args[0])
    return len(obj)


@contextmanager
def _bounded() -> Iterator[None]:
    """One rendering: a fresh size budget, and a time limit when on the main thread."""
    token = _BUDGET.set([MAX_RENDER_SIZE])
    timed = (
        threading.current_thread() is threading.main_thread()
        and signal.getitimer(signal.ITIMER_VIRTUAL)[0] == 0
    )
    previous: Any = None
    if timed:
        previous = signal.signal(signal.SIGVTALRM, _out_of_time)
        signal.setitimer(signal.ITIMER_VIRTUAL, RENDER_SECONDS)
    try:
        yield
    finally:
        if timed:
            signal.setitimer(signal.ITIMER_VIRTUAL, 0)
            signal.signal(signal.SIGVTALRM, previous)
        _BUDGET.reset(token)


class _OutOfTime(BaseException):
    """Raised by SIGVTALRM inside a rendering; a BaseException so that no ``except Exception`` eats it."""


def _out_of_time(signum: int, frame: FrameType | None) -> None:
    raise _OutOfTime


def _filter(name: str, check: Callable[..., None]) -> Callable[..., Any]:
    original = ENVIRONMENT.filters[name]

    @functools.wraps(original)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        check(*args, **kwargs)
        return original(*args, **kwargs)

    return bounded


def _check_center(value: Any, width: Any = 80, *rest: Any, **kw: Any) -> None:
    _charge(max(_weight(value), _count(width, "width")), "center")


def _check_indent(value: Any, width: Any = 4, *rest: Any, **kw: Any) -> None:
    pad = _weight(width) if isinstance(width, str) else _count(width, "width")
    _charge(_weight(value) + (str(value).count("\n") + 1) * pad, "indent")


def _check_wordwrap(value: Any, width: Any = 79, *rest: Any, **kw: Any) -> None:
    _count(width, "width")
    _charge(2 * _weight(value) + _weight(rest) + _weight(kw), "wordwrap")


def _check_format_filter(value: Any, *args: Any, **kwargs: Any) -> None:
    _check_percent(str(value), (args, kwargs))


def _check_join(value: Any, d: Any = "", *rest: Any, **kw: Any) -> None:
    items = value if isinstance(value, (list, tuple, str)) else ()
    _charge(_weight(items) + len(items) * _weight(d), "join")


def _check_batch(value: Any, linecount: Any = 1, *rest: Any, **kw: Any) -> None:
    _charge(_weight(value) + _count(linecount, "line count"), "batch")


def _check_slice(value: Any, slices: Any = 1, *rest: Any, **kw: Any) -> None:
    _charge(_weight(value) + _count(slices, "slice count"), "slice")


def _check_shown(value: Any, *rest: Any, **kw: Any) -> None:
    _charge(2 * _weight(value), "the filter")


def _check_replace(value: Any, old: Any = "", new: Any = "", *rest: Any, **kw: Any) -> None:
    text = str(value)
    _charge(_method_size(text, "replace", (str(old), str(new))), "replace")


_MAX_RANGE = 100_000
_MAX_BITS = 16_384


def _bounded_range(*args: Any) -> range:
    for value in args:
        _count(value, "range bound")
    made = range(*args)
    if len(made) > _MAX_RANGE:
        raise SecurityError(f"range() of {len(made)} numbers is too long (at most {_MAX_RANGE})")
    _charge(len(made), "range")
    return made


def _finalize(value: Any) -> Any:
    _charge(_weight(value), "the output")
    return value


class _Sandbox(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "%"})

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, (int, float)) and abs(right) > _MAX_EXPONENT:
            raise SecurityError(f"exponent {right} is too large (at most {_MAX_EXPONENT})")
        if operator in ("*", "**") and isinstance(left, int) and isinstance(right, int):
            bits = (
                left.bit_length() * abs(right) if operator == "**" else left.bit_length() + right.bit_length()
            )
            if bits > _MAX_BITS:
                raise SecurityError(f"'{operator}' would build a number of more than {_MAX_BITS} bits")
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                sized = isinstance(seq, (str, list, tuple)) and isinstance(times, int)
                if sized and _weight(seq, _MAX_SIZE) * times > _MAX_SIZE:
                    raise SecurityError(f"'*' would build a value longer than {_MAX_SIZE}")
                if sized:
                    _charge(_weight(seq) * max(times, 0), "'*'")
        if operator == "%" and isinstance(left, str):
            _check_percent(left, right)
        return super().call_binop(context, operator, left, right)

    def getattr(self, obj: Any, attribute: str) -> Any:
        if isinstance(obj, dict) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        owner = getattr(__obj, "__self__", None)
        name = getattr(__obj, "__name__", "")
        if isinstance(owner, str) and name in _WIDENING_METHODS:
            _charge(_method_size(owner, name, args), f"str.{name}")
        return super().call(__context, __obj, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        fmt = value.__self__

        def checked(*args: Any, **kwargs: Any) -> str:
            _check_format(fmt, (args, kwargs))
            return wrapped(*args, **kwargs)

        return checked


ENVIRONMENT = _Sandbox(undefined=_Undefined, autoescape=False, keep_trailing_newline=True, finalize=_finalize)
ENVIRONMENT.globals["range"] = _bounded_range
del ENVIRONMENT.globals["lipsum"]
for _name, _check in (
    ("center", _check_center),
    ("indent", _check_indent),
    ("wordwrap", _check_wordwrap),
    ("format", _check_format_filter),
    ("join", _check_join),
    ("batch", _check_batch),
    ("slice", _check_slice),
    ("replace", _check_replace),
    ("string", _check_shown),
    ("tojson", _check_shown),
    ("pprint", _check_shown),
    ("list", _check_shown),
    ("urlize", _check_shown),
    ("xmlattr", _check_shown),
):
    ENVIRONMENT.filters[_name] = _filter(_name, _check)


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
    except RecursionError:
        raise TemplateError(_TOO_DEEP) from None
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
        with _bounded():
            return str(template.render(ctx))
    except _OutOfTime:
        raise TemplateError(
            f"rejected by the template sandbox: rendering took longer than {RENDER_SECONDS:g}s"
        ) from None
    except TemplateSyntaxError as exc:
        raise TemplateError(_syntax_message(exc, source)) from None
    except RecursionError:
        raise TemplateError("rejected by the template sandbox: recursion too deep") from None
    except MemoryError:
        raise TemplateError("rejected by the template sandbox: it needs too much memory") from None
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


_TOO_DEEP = "template syntax error: expressions nested too deeply"


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
