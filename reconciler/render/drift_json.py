"""The machine-readable drift report (schema: ``schemas/drift.schema.json``)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from reconciler.drift import DriftReport
from reconciler.render.drift_text import hidden
from reconciler.render.values import REDACTED

SecretsOf = Callable[[str, str], Iterable[str]]


def _no_secrets(platform: str, kind: str) -> Iterable[str]:
    return ()


def drift_to_dict(report: DriftReport, secrets: SecretsOf = _no_secrets) -> dict[str, Any]:
    def value(r: Any, path: str, v: Any) -> Any:
        return REDACTED if hidden(r, path, secrets) else v

    return {
        "format_version": report.format_version,
        "stack": report.stack,
        "checked_at": report.checked_at,
        "drift": report.has_drift,
        "summary": report.counts(),
        "scopes": list(report.scopes),
        "notes": list(report.notes),
        "resources": [
            {
                "status": r.status,
                "address": r.address,
                "platform": r.platform,
                "kind": r.kind,
                "id": r.id,
                "name": r.name,
                "scope": dict(r.scope),
                "where": r.where,
                "attributes": [
                    {
                        "path": a.path,
                        "recorded": value(r, a.path, a.recorded),
                        "live": value(r, a.path, a.live),
                    }
                    for a in r.attributes
                ],
            }
            for r in report.resources
        ],
    }


def drift_json(report: DriftReport, secrets: SecretsOf = _no_secrets) -> str:
    return json.dumps(drift_to_dict(report, secrets), indent=2, sort_keys=True) + "\n"
