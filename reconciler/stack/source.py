"""Reading YAML into plain values while remembering where every value was written.

The file is composed into PyYAML's node tree with the safe loader and converted
by hand: nothing but mappings, lists, strings, numbers, booleans and null can
come out (no tag can construct an object), duplicate keys are reported instead
of silently overwritten, and every value's line is recorded under its location
(a tuple of keys and list indices, e.g. ``("endpoints", "infer", "name")``).

Hostile input is bounded before any work that could grow with it: a file
larger than :data:`MAX_FILE_BYTES` is refused before it is read (at most that
many bytes are ever read, so ``/dev/zero`` is refused too); after composing,
one pass over the node graph (each node once, however many aliases point at
it) refuses a document nested deeper than :data:`MAX_DEPTH` or whose aliases
would expand it to more than :data:`MAX_VALUES` values (a "billion laughs"),
naming the line and field where it happens.

Problems become :class:`~reconciler.errors.Issue` values; nothing here raises
for bad input.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from reconciler.errors import Issue

Loc = tuple[str | int, ...]

_YAML = "tag:yaml.org,2002:"
_MAP, _SEQ, _STR, _MERGE, _TIMESTAMP = (f"{_YAML}{t}" for t in ("map", "seq", "str", "merge", "timestamp"))
_NULL = f"{_YAML}null"
_SCALAR_TAGS = frozenset(f"{_YAML}{t}" for t in ("str", "int", "float", "bool", "null", "timestamp"))
_ALLOWED_TAGS = "!!map, !!seq, !!str, !!int, !!float, !!bool, !!null"

#: libyaml's parser when PyYAML was built with it (several times faster); both only compose nodes.
_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

#: Upper bound on values produced, so that nested aliases cannot expand without end.
MAX_VALUES = 250_000
#: Deepest nesting of mappings and lists accepted (a stack needs about 8).
MAX_DEPTH = 64
#: Largest stack or var file read (4 MiB holds thousands of resources).
MAX_FILE_BYTES = 4 * 1024 * 1024


def format_loc(loc: Loc) -> str:
    """``("deployments", "chat", "depends_on", 0)`` -> ``deployments.chat.depends_on[0]``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            part = part if len(part) <= 64 else part[:60] + "..."  # a hostile key stays readable
            text = f"{text}.{part}" if text else part
    return text


@dataclass
class Document:
    """A YAML file as plain values plus the line of every value.

    ``lines[loc]`` is the line of the value for scalars and of its key for
    mappings and lists (where a person looks for "the ``reserved_resource``
    block"); ``key_lines[loc]`` is always the line of the key.
    """

    file: str
    data: Any = None
    lines: dict[Loc, int] = field(default_factory=dict)
    key_lines: dict[Loc, int] = field(default_factory=dict)
    reported: set[Loc] = field(default_factory=set)  # locations with a reading issue

    def line(self, loc: Loc, *, key: bool = False) -> int:
        """The line for ``loc``, falling back to its closest recorded parent."""
        table = self.key_lines if key else self.lines
        for end in range(len(loc), 0, -1):
            found = table.get(loc[:end])
            if found is not None:
                return found
            table = self.lines
        return self.lines.get((), 1)


def read_yaml(path: Path, file: str) -> tuple[Document | None, list[Issue]]:
    """Read ``path`` (reported as ``file``); ``None`` when it cannot be parsed at all."""
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        return None, [Issue(file, None, "", f"cannot read file: {exc.strerror or exc}")]
    if len(raw) > MAX_FILE_BYTES:
        return None, [Issue(file, None, "", _too_big())]
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        bad = raw[exc.start]
        return None, [Issue(file, line, "", f"not valid UTF-8 (byte 0x{bad:02x}); save the file as UTF-8")]
    return parse_yaml(text, file)


def parse_yaml(text: str, file: str) -> tuple[Document | None, list[Issue]]:
    """Parse YAML text; see :func:`read_yaml`."""
    try:
        root = yaml.compose(text, Loader=_LOADER)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or "syntax error"
        if "another document" in problem:
            return None, [
                Issue(file, line, "", "invalid YAML: a stack file holds one document; found a second")
            ]
        if exc.context and exc.context_mark is not None:
            problem = f"{problem} ({exc.context} at line {exc.context_mark.line + 1})"
        marks = [m for m in (exc.context_mark, exc.problem_mark) if m is not None]
        problem += _template_hint(text, [m.line for m in marks])
        return None, [Issue(file, line, "", f"invalid YAML: {problem}")]
    except yaml.reader.ReaderError as exc:
        line = text[: exc.position].count("\n") + 1
        return None, [Issue(file, line, "", f"invalid YAML: {exc.reason} (character {exc.character!r})")]
    except RecursionError:
        return None, [
            Issue(file, _deep_line(text), "", f"invalid YAML: nested more than {MAX_DEPTH} levels deep")
        ]
    doc = Document(file)
    if root is None:
        return doc, []
    if (issue := _measure(root, file)) is not None:
        return None, [issue]
    converter = _Converter(doc)
    try:
        doc.data = converter.value(root, ())
    except _TooLarge:
        return None, [Issue(file, None, "", f"the document expands to more than {converter.limit} values")]
    except RecursionError:
        return None, [Issue(file, None, "", f"the document is nested more than {MAX_DEPTH} levels deep")]
    return doc, converter.issues


def _too_big() -> str:
    mib = MAX_FILE_BYTES // (1024 * 1024)
    return f"the file is larger than {mib} MiB, the most a stack or var file may be; nothing was parsed"


def _children(node: Node) -> list[tuple[str | int, Node]]:
    """A node's children with their location part (a key's text, or a list index)."""
    if isinstance(node, SequenceNode):
        return list(enumerate(node.value))
    if isinstance(node, MappingNode):
        out: list[tuple[str | int, Node]] = []
        for key, value in node.value:
            part = str(key.value) if isinstance(key, ScalarNode) else "?"
            out += [(part, key), (part, value)]
        return out
    return []


def _measure(root: Node, file: str) -> Issue | None:
    """Refuse a node graph nested deeper than MAX_DEPTH or expanding to more than MAX_VALUES values.

    Visits every node once (iteratively: no recursion), computing how many
    values each expands to when every alias is copied out; a node reached
    while it is still being measured (a recursive alias) counts as one,
    the converter reports it.
    """
    if _small_tree(root):
        return None
    limit = MAX_VALUES
    sizes: dict[int, int] = {}
    uses: dict[int, int] = {}
    first_loc: dict[int, Loc] = {id(root): ()}
    nodes: dict[int, Node] = {id(root): root}
    open_: set[int] = set()
    work: list[tuple[Node, int, bool]] = [(root, 1, False)]
    while work:
        node, depth, finished = work.pop()
        key = id(node)
        if finished:
            total = 1 + sum(sizes.get(id(child), 1) for _, child in _children(node))
            sizes[key] = min(total, limit + 1)
            open_.discard(key)
            continue
        if depth > MAX_DEPTH:
            loc = first_loc[key]
            where = format_loc(loc[:8]) + ("..." if len(loc) > 8 else "")
            return Issue(file, node.start_mark.line + 1, where, f"nested more than {MAX_DEPTH} levels deep")
        if key in sizes or key in open_:
            continue
        open_.add(key)
        work.append((node, depth, True))
        for part, child in _children(node):
            uses[id(child)] = uses.get(id(child), 0) + 1
            if id(child) not in first_loc:
                first_loc[id(child)] = (*first_loc[key], part)
                nodes[id(child)] = child
            if id(child) not in sizes and id(child) not in open_:
                work.append((child, depth + 1, False))
    if sizes.get(id(root), 1) <= limit:
        return None
    repeated = [k for k, n in uses.items() if n > 1 and sizes.get(k, 1) > 1]
    worst = max(repeated, key=lambda k: sizes[k] * uses[k], default=id(root))
    node = nodes[worst]
    each = f"more than {limit}" if sizes[worst] > limit else str(sizes[worst])
    message = (
        f"aliases expand the document to more than {limit} values (the value anchored here is"
        f" used {uses.get(worst, 1)} times, expanding to {each} values each); refusing to expand it"
    )
    return Issue(file, node.start_mark.line + 1, format_loc(first_loc[worst]), message)


def _small_tree(root: Node) -> bool:
    """True when ``root`` is a tree (no node reached twice: no aliases) within MAX_DEPTH and
    MAX_VALUES: the common case, checked in one cheap pass. False: :func:`_measure` looks closely."""
    seen: set[int] = set()
    work: list[tuple[Node, int]] = [(root, 1)]
    while work:
        node, depth = work.pop()
        if depth > MAX_DEPTH or id(node) in seen or len(seen) >= MAX_VALUES:
            return False
        seen.add(id(node))
        if isinstance(node, MappingNode):
            for key, value in node.value:
                work.append((key, depth + 1))
                work.append((value, depth + 1))
        elif isinstance(node, SequenceNode):
            work.extend((child, depth + 1) for child in node.value)
    return True


def _deep_line(text: str) -> int | None:
    """The line where nesting first goes deeper than MAX_DEPTH, found from the event stream."""
    depth = 0
    try:
        for event in yaml.parse(text, Loader=_LOADER):
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH and event.start_mark is not None:
                    return int(event.start_mark.line) + 1
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    except yaml.YAMLError:
        return None
    return None


class _TooLarge(Exception):
    pass


_Pair = tuple[Node, Node]


class _Converter:
    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.issues: list[Issue] = []
        self.count = 0
        self.limit = MAX_VALUES
        self.active: set[int] = set()
        self.constructor = SafeConstructor()

    def report(self, node: Node, loc: Loc, message: str) -> None:
        self.doc.reported.add(loc)
        self.issues.append(Issue(self.doc.file, node.start_mark.line + 1, format_loc(loc), message))

    def value(self, node: Node, loc: Loc) -> Any:
        self.count += 1
        if self.count > self.limit:
            raise _TooLarge
        line = node.start_mark.line + 1
        if isinstance(node, ScalarNode):
            self.doc.lines[loc] = line
            return self.scalar(node, loc)
        self.doc.lines.setdefault(loc, line)
        if id(node) in self.active:
            self.report(node, loc, "an alias refers to a value that contains it")
            return None
        self.active.add(id(node))
        try:
            template = _unquoted_template(node)
            if template is not None:
                field = loc[-1] if loc else "field"
                self.report(
                    node,
                    loc,
                    f'YAML reads an unquoted {template} as a mapping; quote it: {field}: "{template}"',
                )
                return None
            if isinstance(node, MappingNode) and node.tag == _MAP:
                return self.mapping(node, loc)
            if isinstance(node, SequenceNode) and node.tag == _SEQ:
                return [self.value(item, (*loc, i)) for i, item in enumerate(node.value)]
            self.report(node, loc, f"unsupported YAML tag {_short(node.tag)!r}; allowed: {_ALLOWED_TAGS}")
            return None
        finally:
            self.active.discard(id(node))

    def scalar(self, node: ScalarNode, loc: Loc) -> Any:
        if node.tag not in _SCALAR_TAGS:
            self.report(node, loc, f"unsupported YAML tag {_short(node.tag)!r}; allowed: {_ALLOWED_TAGS}")
            return None
        if node.tag in (_STR, _TIMESTAMP):  # dates stay text: values must be JSON-able
            return node.value
        construct: Callable[[SafeConstructor, ScalarNode], Any] = self.constructor.yaml_constructors[node.tag]
        try:
            return construct(self.constructor, node)
        except (ValueError, yaml.YAMLError):
            self.report(node, loc, f"invalid {_short(node.tag)} value {node.value!r}")
            return None

    def mapping(self, node: MappingNode, loc: Loc) -> dict[str, Any]:
        explicit, merged = self.flatten(node, loc)
        out: dict[str, Any] = {}
        first: dict[str, int] = {}
        for key_node, value_node in explicit:
            key = self.key(key_node, loc)
            if key is None:
                continue
            line = key_node.start_mark.line + 1
            if key in first:
                self.report(key_node, (*loc, key), f"duplicate key {key!r} (first at line {first[key]})")
                continue
            first[key] = line
            self.doc.key_lines[(*loc, key)] = line
            self.doc.lines[(*loc, key)] = line
            out[key] = self.value(value_node, (*loc, key))
        for key_node, value_node in merged:  # earlier merge sources win, explicit keys win over all
            key = self.key(key_node, loc)
            if key is None or key in out:
                continue
            self.doc.key_lines[(*loc, key)] = key_node.start_mark.line + 1
            self.doc.lines[(*loc, key)] = key_node.start_mark.line + 1
            out[key] = self.value(value_node, (*loc, key))
        return out

    def flatten(self, node: MappingNode, loc: Loc) -> tuple[list[_Pair], list[_Pair]]:
        """Split a mapping's pairs into its own and those brought in by ``<<`` merge keys."""
        explicit: list[_Pair] = []
        merged: list[_Pair] = []
        for key_node, value_node in node.value:
            if key_node.tag != _MERGE:
                explicit.append((key_node, value_node))
                continue
            sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
            for source in sources:
                if not isinstance(source, MappingNode) or id(source) in self.active:
                    self.report(source, loc, "a '<<' merge key needs a mapping or a list of mappings")
                    continue
                self.active.add(id(source))
                try:
                    own, inherited = self.flatten(source, loc)
                finally:
                    self.active.discard(id(source))
                merged.extend(own + inherited)
        return explicit, merged

    def key(self, node: Node, loc: Loc) -> str | None:
        if not isinstance(node, ScalarNode) or node.tag not in _SCALAR_TAGS:
            self.report(node, loc, "mapping keys must be plain strings")
            return None
        return str(node.value)


_UNQUOTED = re.compile(r"""(?:^|[\s{,\[])([\w.-]+):\s+(\{\{.*?\}\}\S*)""")


def _template_hint(text: str, lines: list[int]) -> str:
    """A hint when a line near a YAML error holds a value that starts with an unquoted ``{{``."""
    all_lines = text.splitlines()
    for number in sorted({n for line in lines for n in (line - 1, line) if 0 <= n < len(all_lines)}):
        found = _UNQUOTED.search(all_lines[number])
        if found is not None:
            field, value = found.group(1), found.group(2).rstrip(",}")
            return f'; line {number + 1} has an unquoted template: quote it: {field}: "{value}"'
    return ""


def _unquoted_template(node: Node) -> str | None:
    """``{{ expr }}`` when ``node`` is what YAML makes of that text unquoted (a flow mapping whose
    one key is a flow mapping of ``expr`` to nothing), else None."""
    if not (isinstance(node, MappingNode) and node.flow_style and len(node.value) == 1):
        return None
    inner, outer_value = node.value[0]
    if not (isinstance(inner, MappingNode) and inner.flow_style and len(inner.value) == 1):
        return None
    expr, inner_value = inner.value[0]
    empty = [
        v for v in (outer_value, inner_value) if isinstance(v, ScalarNode) and v.tag == _NULL and not v.value
    ]
    if not isinstance(expr, ScalarNode) or len(empty) != 2:
        return None
    return "{{ " + str(expr.value) + " }}"


def _short(tag: str) -> str:
    return "!!" + tag[len(_YAML) :] if tag.startswith(_YAML) else tag
