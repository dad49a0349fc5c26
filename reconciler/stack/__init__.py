"""Stack files: loading, rendering and validating them into a :class:`~reconciler.stack.spec.Stack`.

Pure: reads only the stack file and the ``--var-file`` files it is given; no
network, no state, no provider calls. ``load_stack`` returns immutable values
or raises one :class:`~reconciler.errors.StackError` listing every problem
found, each with file, line and field path. Values that read other resources
(``{{ endpoints.infer.id }}``) stay :class:`~reconciler.stack.spec.Deferred`
until :func:`reconciler.stack.expressions.resolve` is given their attributes.

    source.py       YAML -> plain values + line of every value (safe loader)
    templates.py    Jinja2 analysis and sandboxed rendering
    models.py       pydantic models of the file; per-field rules
    loader.py       load_stack: the steps, cross-resource checks, digest
    expressions.py  resolve / referenced for Deferred values
    spec.py         the values returned (Stack, ResourceSpec, Deferred, Lifecycle)
"""

from __future__ import annotations

from reconciler.stack.loader import load_stack

__all__ = ["load_stack"]
