"""The machine-readable rendering of a plan (the plan file's own format)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable

from reconciler.plan import Plan, plan_to_dict
from reconciler.render.values import redact


def plan_json(plan: Plan, secrets: Callable[[str, str], Iterable[str]] = lambda p, k: ()) -> str:
    data = plan_to_dict(plan)
    for c in data["changes"]:
        hidden = tuple(secrets(c["platform"], c["kind"]))
        c["before"] = redact(c["before"], hidden)
        c["after"] = redact(c["after"], hidden)
        c["sensitive"] = sorted(hidden)
    data["summary"] = plan.counts()
    return json.dumps(data, indent=2, sort_keys=True) + "\n"
