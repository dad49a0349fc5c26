"""Reading YAML into plain values while remembering where every value was written.

The file is composed into PyYAML's node tree with the safe loader and converted
by hand: nothing but mappings, lists, strings, numbers, booleans and null can
come out (no tag can construct an object), duplicate keys are reported instead
of silently overwritten, and every value's line is recorded under its location
(a tuple of keys and list indices, e.g. ``("endpoints", "infer", "name")``).

Problems become :class:`~reconciler.errors.Issue` values; nothing here raises
for bad input.
"""

from __future__ import annotations

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
_SCALAR_TAGS = frozenset(f"{_YAML}{t}" for t in ("str", "int", "float", "bool", "null", "timestamp"))
_ALLOWED_TAGS = "!!map, !!seq, !!str, !!int, !!float, !!bool, !!null"

#: libyaml's parser when PyYAML was built with it (several times faster); both only compose nodes.
_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

#: Upper bound on values produced, so that nested aliases cannot expand without end.
MAX_VALUES = 1_000_000


def format_loc(loc: Loc) -> str:
    """``("deployments", "chat", "depends_on", 0)`` -> ``deployments.chat.depends_on[0]``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
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
        raw = path.read_bytes()
    except OSError as exc:
        return None, [Issue(file, None, "", f"cannot read file: {exc.strerror or exc}")]
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
        return None, [Issue(file, line, "", f"invalid YAML: {problem}")]
    except yaml.reader.ReaderError as exc:
        line = text[: exc.position].count("\n") + 1
        return None, [Issue(file, line, "", f"invalid YAML: {exc.reason} (character {exc.character!r})")]
    except RecursionError:
        return None, [Issue(file, None, "", "invalid YAML: nested too deeply")]
    doc = Document(file)
    if root is None:
        return doc, []
    converter = _Converter(doc)
    try:
        doc.data = converter.value(root, ())
    except _TooLarge:
        return None, [Issue(file, None, "", f"the document expands to more than {converter.limit} values")]
    except RecursionError:
        return None, [Issue(file, None, "", "the document is nested too deeply")]
    return doc, converter.issues


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


def _short(tag: str) -> str:
    return "!!" + tag[len(_YAML) :] if tag.startswith(_YAML) else tag
