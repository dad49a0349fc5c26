"""``load_stack``: read, render and validate a stack file into a :class:`Stack`.

Steps, each adding to one list of issues (a later step stays quiet about a
location an earlier step already reported):

1. read the YAML (:mod:`.source`);
2. settle the variables: file defaults (which may use ``env``), then var
   files in order, then ``--var`` values; names must be declared;
3. render templates (:mod:`.templates`); those reading resources stay
   :class:`Deferred` and must name existing resources;
4. validate every part against :mod:`.models`;
5. check across resources: references, workspaces, endpoint capacity,
   ``depends_on``, cycles;
6. build the immutable :class:`Stack` and its digest.

Any issue raises one :class:`StackError` holding all of them.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pydantic import TypeAdapter, ValidationError

from reconciler.errors import Issue, StackError
from reconciler.stack import models, templates
from reconciler.stack.expressions import referenced
from reconciler.stack.source import Document, Loc, format_loc, read_yaml
from reconciler.stack.spec import SECTIONS, Deferred, HealthCheck, Lifecycle, ResourceSpec, Stack

SINGULAR = {
    "workspaces": "workspace",
    "endpoints": "endpoint",
    "models": "model",
    "deployments": "deployment",
}
_ADAPTERS: Mapping[str, TypeAdapter[Any]] = {s: TypeAdapter(t) for s, t in models.RESOURCE_TYPES.items()}
_NO_VARS: Mapping[str, str] = MappingProxyType({})
#: Environment setting: when true (``1``, ``true``, ``yes``), ``--var-file`` paths that
#: resolve (symbolic links followed) outside the current directory are refused.
VAR_FILES_INSIDE = "RECONCILER_VAR_FILES_INSIDE"


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def load_stack(
    path: str | Path,
    *,
    variables: Mapping[str, str] = _NO_VARS,
    var_files: Sequence[str | Path] = (),
    env: Mapping[str, str] | None = None,
) -> Stack:
    """Load the stack file at ``path``; raise :class:`StackError` listing every problem found.

    ``variables`` are ``--var`` values (kept as strings); ``var_files`` are YAML
    or JSON mappings applied in order before them; ``env`` defaults to
    ``os.environ``. Reads only these files: no network, no state. With
    ``RECONCILER_VAR_FILES_INSIDE=1`` in ``env``, a var file that resolves
    (symbolic links followed) outside the current directory is refused.
    """
    loader = _Loader(str(path), dict(os.environ if env is None else env))
    return loader.load(Path(path), variables, var_files)


class _Loader:
    def __init__(self, file: str, env: dict[str, str]) -> None:
        self.file = file
        self.env = env
        self.issues: list[Issue] = []
        self.reported: set[Loc] = set()
        self.doc = Document(file)
        self.keys: dict[str, list[str]] = {s: [] for s in SECTIONS}
        self.addresses: set[str] = set()
        self.valid: set[str] = set()  # addresses whose resource validated (set by resources())

    # -- reporting --------------------------------------------------------------------------------

    def report(self, loc: Loc, message: str, *, key: bool = False, line_loc: Loc | None = None) -> None:
        if any(loc[:end] in self.reported for end in range(1, len(loc) + 1)):
            return
        line = self.doc.line(loc if line_loc is None else line_loc, key=key)
        self.issues.append(Issue(self.file, line, format_loc(loc), message))
        self.reported.add(loc)

    def fail(self) -> StackError:
        return StackError(self.issues)

    # -- the steps --------------------------------------------------------------------------------

    def load(self, path: Path, values: Mapping[str, str], var_files: Sequence[str | Path]) -> Stack:
        doc, issues = read_yaml(path, self.file)
        self.issues.extend(issues)
        if doc is None:
            raise self.fail()
        self.doc = doc
        self.reported.update(doc.reported)
        if not isinstance(doc.data, dict):
            what = "empty" if doc.data is None else f"a {models.describe(doc.data)}"
            expected = f"expected a mapping with 'stack' and the sections {', '.join(SECTIONS)}"
            self.issues.append(Issue(self.file, doc.line(()), "", f"the file is {what}; {expected}"))
            raise self.fail()
        data = {k: ({} if k in SECTIONS and v is None else v) for k, v in doc.data.items()}
        for section in SECTIONS:
            if isinstance(data.get(section), dict):
                self.keys[section] = list(data[section])
                self.addresses.update(f"{section}.{key}" for key in data[section])

        variables = self.variables(data.get("variables"), values, var_files)
        renderer = templates.TreeRenderer(templates.context(variables, self.env), self.report)
        rendered = {key: self.render(renderer, key, value) for key, value in data.items()}
        for loc, deferred in renderer.deferred:
            for address in deferred.refs:
                if address not in self.addresses:
                    self.report(loc, self.missing(*address.split(".", 1)))

        header = {k: ({} if k in SECTIONS and isinstance(v, dict) else v) for k, v in rendered.items()}
        try:
            stack_file: models.StackFile | None = models.StackFile.model_validate(header)
        except ValidationError as exc:
            self.errors(exc, models.StackFile, ())
            stack_file = None
        valid = self.resources(rendered)
        edges = self.references(rendered, renderer.deferred)
        self.workspaces(valid)
        self.capacity(valid)
        self.cycles(edges)
        if self.issues or stack_file is None:
            raise self.fail()
        return self.build(stack_file, valid, variables)

    def variables(
        self, raw: Any, values: Mapping[str, str], var_files: Sequence[str | Path]
    ) -> dict[str, Any]:
        declared = raw if isinstance(raw, dict) else {}
        defaults = templates.context({}, self.env)
        defaults["var"] = templates.Namespace("var", {}, "variable defaults can use env but not var")
        renderer = templates.TreeRenderer(defaults, self.report)
        result = {
            name: renderer.render(v, ("variables", name), deferred_ok=False) for name, v in declared.items()
        }
        inside = Path.cwd().resolve() if _flag(self.env.get(VAR_FILES_INSIDE)) else None
        for var_file in var_files:
            resolved = Path(var_file).resolve()
            if inside is not None and not resolved.is_relative_to(inside):
                message = (
                    f"is outside the working directory {inside} (it is {resolved});"
                    f" {VAR_FILES_INSIDE}=1 allows var files only inside it"
                )
                self.issues.append(Issue(str(var_file), None, "--var-file", message))
                continue
            doc, issues = read_yaml(Path(var_file), str(var_file))
            self.issues.extend(issues)
            content = {} if doc is None or doc.data is None else doc.data
            if doc is not None and not isinstance(content, dict):
                message = "a var file must be a mapping of variable names to values"
                self.issues.append(Issue(str(var_file), doc.line(()), "", message))
                continue
            for name, value in content.items():
                if name in declared:
                    result[name] = value
                elif doc is not None:
                    message = f"undeclared variable{models.allowed(name, declared, 'declared')}"
                    self.issues.append(Issue(str(var_file), doc.line((name,), key=True), name, message))
        for name, value in values.items():
            if name in declared:
                result[name] = value
            else:
                message = f"undeclared variable{models.allowed(name, declared, 'declared')}"
                self.issues.append(Issue("--var", None, name, message))
        for name, value in result.items():
            if value is None:
                self.report(("variables", name), f"no value: pass --var {name}=... or set it in a --var-file")
        return result

    def render(self, renderer: templates.TreeRenderer, key: str, value: Any) -> Any:
        if key == "variables":
            return value  # validated as written; variables() rendered the defaults
        if key not in SECTIONS or not isinstance(value, dict):
            return renderer.render(value, (key,), deferred_ok=key == "outputs")
        out: dict[str, Any] = {}
        for name, raw in value.items():
            if not isinstance(raw, dict):
                out[name] = raw
                continue
            cls = models.resource_class(key, raw)
            fixed = models.META_FIELDS | set(cls.ref_fields if cls else ())
            out[name] = {
                f: renderer.render(v, (key, name, f), deferred_ok=f not in fixed) for f, v in raw.items()
            }
        return out

    def errors(self, error: ValidationError, root: Any, prefix: Loc) -> None:
        for found in models.field_errors(error, root, prefix):
            self.report(found.loc, found.message, key=found.key_line, line_loc=found.line_loc)

    def resources(self, rendered: Mapping[str, Any]) -> dict[str, models.Resource]:
        """Validate each resource on its own, so one bad resource does not hide the others' problems."""
        valid: dict[str, models.Resource] = {}
        for section in SECTIONS:
            for key, raw in _items(rendered.get(section)):
                if (message := models.check_key(key)) is not None:
                    self.report((section, key), message, key=True)
                root = models.resource_class(section, raw) if section == "models" else None
                adapter = _adapter(root) if root is not None else _ADAPTERS[section]
                try:
                    valid[f"{section}.{key}"] = adapter.validate_python(raw)
                except ValidationError as exc:
                    self.errors(exc, root or models.RESOURCE_TYPES[section], (section, key))
        self.valid = set(valid)
        return valid

    def missing(self, section: str, key: str) -> str:
        if section not in SINGULAR:
            return f"no section {section!r}{models.allowed(section, SECTIONS)}"
        return f"no {SINGULAR[section]} {key!r} in {section}{models.suggestion(key, self.keys[section])}"

    def wrong_kind(
        self, rendered: Mapping[str, Any], section: str, raw: Mapping[str, Any], field: str, target: str
    ) -> str | None:
        """Why the resource ``raw[field]`` names cannot be referenced there (another platform's kind)."""
        platform = raw.get("platform") or "fabric"
        theirs = (rendered.get(target) or {}).get(raw[field])
        if not isinstance(theirs, dict) or not isinstance(platform, str):
            return None
        other = theirs.get("platform") or "fabric"
        their_class = models.resource_class(target, theirs)
        own_class = models.resource_class(section, raw)
        if other == platform or their_class is None or own_class is None:
            return None
        same = [
            k
            for k, r in _items(rendered.get(target))
            if isinstance(r, dict) and (r.get("platform") or "fabric") == platform
        ]
        wanted = f"a {platform} {SINGULAR[target]}"
        allowed = f"; {platform} {target} here: {', '.join(same)}" if same else f"; none in {target}"
        return (
            f"{raw[field]!r} is a {other} {their_class.kind}; a {platform} {own_class.kind}'s {field} "
            f"must be {wanted}{allowed}"
        )

    def references(
        self, rendered: Mapping[str, Any], deferred: Iterable[tuple[Loc, Deferred]]
    ) -> dict[str, set[str]]:
        """Check structural references and ``depends_on``; return the dependency edges of every resource."""
        edges: dict[str, set[str]] = {}
        for section in SECTIONS:
            for key, raw in _items(rendered.get(section)):
                needs = edges.setdefault(f"{section}.{key}", set())
                if not isinstance(raw, dict):
                    continue
                cls = models.resource_class(section, raw)
                for field, target in (cls.ref_fields if cls else {}).items():
                    value = raw.get(field)
                    if isinstance(value, str) and f"{target}.{value}" in self.addresses:
                        needs.add(f"{target}.{value}")
                        checked = cls is not None and f"{section}.{key}" in self.valid
                        wrong = self.wrong_kind(rendered, section, raw, field, target) if checked else None
                        if wrong:
                            self.report((section, key, field), wrong)
                    elif isinstance(value, str):
                        self.report((section, key, field), self.missing(target, value))
                depends_on = raw.get("depends_on")
                for i, address in enumerate(depends_on if isinstance(depends_on, list) else ()):
                    if not isinstance(address, str):
                        continue
                    if address in self.addresses:
                        needs.add(address)
                    else:
                        hint = models.suggestion(address, sorted(self.addresses))
                        self.report((section, key, "depends_on", i), f"no resource {address!r}{hint}")
        for loc, value in deferred:
            if loc[0] in SECTIONS and len(loc) > 2:
                edges[f"{loc[0]}.{loc[1]}"].update(a for a in value.refs if a in self.addresses)
        return edges

    def workspaces(self, valid: Mapping[str, models.Resource]) -> None:
        """A resource's references (other than to workspaces) must stay inside its workspace."""
        for address, resource in valid.items():
            own = getattr(resource, "workspace", None)
            section, key = address.split(".", 1)
            for field, target in type(resource).ref_fields.items():
                other = valid.get(f"{target}.{getattr(resource, field)}")
                theirs = getattr(other, "workspace", None)
                known = f"workspaces.{own}" in self.addresses and f"workspaces.{theirs}" in self.addresses
                if target != "workspaces" and known and theirs != own:  # a missing one is reported already
                    self.report(
                        (section, key, field),
                        f"{SINGULAR[target]} {getattr(resource, field)!r} is in"
                        f" workspace {theirs!r}, but this {SINGULAR[section]} is in workspace {own!r}",
                    )

    def capacity(self, valid: Mapping[str, models.Resource]) -> None:
        """Fabric deployments must fit, alone and together, in their endpoint's reserved ``mu``."""
        on_endpoint: dict[str, tuple[int, list[tuple[str, int]]]] = {}  # key -> (reserved max, uses)
        for address, resource in valid.items():
            endpoint = valid.get(f"endpoints.{getattr(resource, 'endpoint', '')}")
            if not isinstance(resource, models.FabricDeployment) or not isinstance(endpoint, models.Endpoint):
                continue
            if resource.config is None:
                continue  # no resource demand stated: nothing to hold against the endpoint's reserve
            key, name = address.split(".", 1)[1], resource.endpoint
            at: Loc = ("deployments", key, "config", "model_instance_config", "resource")
            wanted = resource.config.model_instance_config.resource
            mu = endpoint.reserved_resource.mu if endpoint.reserved_resource else None
            if mu is None:
                message = f"endpoint {name!r} reserves no mu resources (reserved_resource.mu)"
                self.report(("deployments", key, "endpoint"), f"{message}, which a fabric deployment needs")
                continue
            if wanted.max > mu.max:
                reserves = f"reserves (reserved_resource.mu.max: {mu.max})"
                message = f"{wanted.max} is more than endpoint {name!r} {reserves}"
                self.report((*at, "max"), message)
            codes = (wanted.spec_code, mu.spec_code)
            if all(isinstance(code, str) for code in codes) and codes[0] != codes[1]:
                message = (
                    f"{codes[0]!r} does not match the spec_code reserved by endpoint {name!r} ({codes[1]!r})"
                )
                self.report((*at, "spec_code"), message)
            on_endpoint.setdefault(name, (mu.max, []))[1].append((address, wanted.max))
        for name, (reserved, uses) in on_endpoint.items():
            total = sum(n for _, n in uses)
            if len(uses) > 1 and total > reserved:
                parts = " + ".join(f"{address} max {n}" for address, n in uses)
                self.report(
                    ("endpoints", name, "reserved_resource", "mu", "max"),
                    f"the deployments on this endpoint can scale to {total} together ({parts}),"
                    f" more than its reserved maximum {reserved}",
                )

    def cycles(self, edges: Mapping[str, set[str]]) -> None:
        """Report each resource that needs itself, and each group of resources needing each other.

        A group (strongly connected component) is named by its shortest cycle
        from its first resource in file order, plus any other members.
        """
        order = {address: i for i, address in enumerate(edges)}
        found = [([address], "") for address in edges if address in edges[address]]
        for component in _strongly_connected(edges):
            if len(component) > 1:
                path = _shortest_cycle(min(component, key=order.__getitem__), edges, component)
                rest = sorted(component - set(path), key=order.__getitem__)
                found.append((path, f" (and through {', '.join(rest)})" if rest else ""))
        for path, extra in sorted(found, key=lambda item: order[item[0][0]]):
            section, key = path[0].split(".", 1)
            line = self.doc.line((section, key), key=True)
            message = f"cycle: {' -> '.join([*path, path[0]])}{extra}"
            self.issues.append(Issue(self.file, line, path[0], message))

    # -- the result -------------------------------------------------------------------------------

    def build(
        self, stack_file: models.StackFile, valid: Mapping[str, models.Resource], variables: Mapping[str, Any]
    ) -> Stack:
        resources: dict[str, ResourceSpec] = {}
        for address, resource in valid.items():  # validated in section order, then file order
            section, key = address.split(".", 1)
            cls = type(resource)
            refs = {field: f"{target}.{getattr(resource, field)}" for field, target in cls.ref_fields.items()}
            attrs = models.plain(resource, exclude=models.META_FIELDS | set(cls.ref_fields))
            needs = {*refs.values(), *referenced(attrs), *resource.depends_on}
            lifecycle = resource.lifecycle.to_spec() if resource.lifecycle else Lifecycle()
            resources[address] = ResourceSpec(
                address,
                section,
                key,
                getattr(resource, "platform", None) or "fabric",
                cls.kind,
                attrs,
                refs,
                tuple(sorted(needs)),
                lifecycle,
                self.file,
                self.doc.line((section, key), key=True),
                _health(resource),
            )
        backend = models.plain(stack_file.backend) if stack_file.backend else {}
        providers = models.plain(stack_file.providers) if stack_file.providers else {}
        outputs = dict(stack_file.outputs)
        digest = _digest(stack_file.stack, resources, outputs, backend, variables, self.env)
        return Stack(
            stack_file.stack,
            self.file,
            providers,
            backend,
            dict(variables),
            resources,
            outputs,
            digest,
            self.env,
            models.plain(stack_file.policy) if stack_file.policy else {},
        )


def _items(section: Any) -> Iterable[tuple[str, Any]]:
    return section.items() if isinstance(section, dict) else ()


def _strongly_connected(edges: Mapping[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm without recursion (stacks can be large)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[set[str]] = []
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            nxt = next(successors, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(edges.get(nxt, ())))))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component: set[str] = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                found.append(component)
    return found


def _shortest_cycle(start: str, edges: Mapping[str, set[str]], component: set[str]) -> list[str]:
    """The shortest path start -> ... back to start inside ``component`` (without the final start)."""
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following: list[str] = []
        for node in frontier:
            for nxt in sorted(edges[node] & component - {node}):
                if nxt == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return path[::-1]
                if nxt not in previous:
                    previous[nxt] = node
                    following.append(nxt)
        frontier = following
    return [start]


def _digest(
    name: str,
    resources: Mapping[str, ResourceSpec],
    outputs: Mapping[str, Any],
    backend: Mapping[str, Any],
    variables: Mapping[str, Any],
    env: Mapping[str, str],
) -> str:
    """sha256 of a canonical JSON of the stack without provider blocks.

    Deferred values enter as their template text, plus the values of the
    ``var``/``env`` names those templates read (a changed variable that only a
    Deferred uses must still change the digest).
    """
    inputs: dict[str, Any] = {}

    def canonical(value: Any) -> Any:
        if isinstance(value, Deferred):
            for name in templates.analyse(value.template).inputs:
                scope, _, item = name.partition(".")
                source: Mapping[str, Any] = variables if scope == "var" else env
                inputs[name] = source.get(item) if item else dict(source)
            return value.template
        raise TypeError(f"not JSON-able: {type(value).__name__}")

    payload = {
        "name": name,
        "resources": [
            {
                "address": r.address,
                "platform": r.platform,
                "kind": r.kind,
                "attrs": r.attrs,
                "refs": r.refs,
                "depends_on": r.depends_on,
                "lifecycle": asdict(r.lifecycle),
                "health_check": asdict(r.health_check) if r.health_check else None,
            }
            for r in resources.values()
        ],
        "outputs": outputs,
        # the backend's kind and location, never its credentials (a postgres DSN holds a password)
        "backend": {
            kind: {k: v for k, v in (block or {}).items() if k != "dsn"} for kind, block in backend.items()
        },
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=canonical)
    if inputs:
        text += json.dumps(inputs, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _health(resource: models.Resource) -> HealthCheck | None:
    block = getattr(resource, "health_check", None)
    return block.to_spec() if isinstance(block, models.HealthCheckBlock) else None


@functools.cache
def _adapter(cls: type[models.Resource]) -> TypeAdapter[Any]:
    return TypeAdapter(cls)
