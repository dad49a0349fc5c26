"""The loaded stack as plain immutable values: what the loader returns and the planner reads.

Purely data: no I/O, no rendering. A value that refers to another resource's
attributes (``{{ endpoints.infer.id }}``) is kept as a :class:`Deferred` and is
resolved by :mod:`reconciler.stack.expressions` once those attributes are known.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

SECTIONS: tuple[str, ...] = ("workspaces", "endpoints", "models", "deployments")


@dataclass(frozen=True)
class Deferred:
    """A template string that needs other resources' attributes.

    ``template`` is the Jinja source (variables and env already fixed at load
    time are *not* substituted; the whole string is rendered again later with
    ``var``, ``env`` and the resource sections). ``refs`` are the addresses it reads.
    """

    template: str
    refs: tuple[str, ...]


@dataclass(frozen=True)
class Lifecycle:
    prevent_destroy: bool = False
    ignore_changes: tuple[str, ...] = ()
    create_before_destroy: bool = False


@dataclass(frozen=True)
class HealthCheck:
    """A health gate: once ready, an invocation with ``prompt`` must answer within ``timeout`` s."""

    timeout: float = 30.0
    prompt: str = "ping"


@dataclass(frozen=True)
class ResourceSpec:
    """One desired resource.

    ``attrs`` are the resource's fields as written in the stack (API field
    names), without ``platform``, ``lifecycle``, ``depends_on`` and the
    structural reference keys; values may be :class:`Deferred`.
    ``refs`` maps a structural reference field to the address it names,
    e.g. ``{"workspace": "workspaces.main", "model": "models.llama"}``.
    ``depends_on`` holds every address this resource needs first: structural
    references, template references and explicit ``depends_on``.
    """

    address: str
    section: str
    key: str
    platform: str
    kind: str
    attrs: Mapping[str, Any]
    refs: Mapping[str, str] = field(default_factory=dict)
    depends_on: tuple[str, ...] = ()
    lifecycle: Lifecycle = Lifecycle()
    file: str = ""
    line: int | None = None
    health_check: HealthCheck | None = None


@dataclass(frozen=True)
class Stack:
    """A validated stack file. ``providers`` holds rendered provider blocks (secrets included:
    never serialise them); ``digest`` fingerprints the rendered stack without secrets."""

    name: str
    file: str
    providers: Mapping[str, Mapping[str, Any]]
    backend: Mapping[str, Any]
    variables: Mapping[str, Any]
    resources: Mapping[str, ResourceSpec]
    outputs: Mapping[str, Any]
    digest: str
    env: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)
    policy: Mapping[str, Any] = field(default_factory=dict)
