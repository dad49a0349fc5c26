"""Plans, drift reports, apply reports and states as text, JSON and markdown. Pure: returns strings."""

from reconciler.render.drift_json import drift_json
from reconciler.render.drift_markdown import drift_markdown
from reconciler.render.drift_text import drift_text
from reconciler.render.plan_json import plan_json
from reconciler.render.plan_markdown import plan_markdown
from reconciler.render.plan_text import plan_text
from reconciler.render.values import REDACTED, redact

__all__ = [
    "REDACTED",
    "drift_json",
    "drift_markdown",
    "drift_text",
    "plan_json",
    "plan_markdown",
    "plan_text",
    "redact",
]
