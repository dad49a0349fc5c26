"""Turning plans, apply reports and states into text, JSON and markdown. Pure: returns strings."""

from reconciler.render.plan_json import plan_json
from reconciler.render.plan_markdown import plan_markdown
from reconciler.render.plan_text import plan_text
from reconciler.render.values import REDACTED, redact

__all__ = ["REDACTED", "plan_json", "plan_markdown", "plan_text", "redact"]
