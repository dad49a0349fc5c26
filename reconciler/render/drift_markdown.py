"""A drift report as the body of a GitHub issue (or a job summary), under GitHub's size limit."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from reconciler.drift import DriftReport, ResourceDrift
from reconciler.render.drift_text import next_steps, shown, title
from reconciler.render.markdown import GITHUB_COMMENT_LIMIT, Comment, cell, text

SecretsOf = Callable[[str, str], Iterable[str]]
ATTRIBUTES_SHOWN = 50


def _no_secrets(platform: str, kind: str) -> Iterable[str]:
    return ()


def marker(stack: str) -> str:
    return f"<!-- reconciler-drift: {text(stack, 100)} -->"


def _changed(r: ResourceDrift, secrets: SecretsOf) -> str:
    rows = ["| attribute | recorded | live |", "|---|---|---|"]
    for a in r.attributes[:ATTRIBUTES_SHOWN]:
        recorded, live = shown(r, a.path, a.recorded, secrets), shown(r, a.path, a.live, secrets)
        rows.append(f"| `{cell(a.path, 200)}` | `{cell(recorded, 300)}` | `{cell(live, 300)}` |")
    if len(r.attributes) > ATTRIBUTES_SHOWN:
        rows.append(f"| ... and {len(r.attributes) - ATTRIBUTES_SHOWN} more | | |")
    return "\n".join(
        [f"<details><summary><code>~ {cell(title(r), 300)}</code></summary>", "", *rows, "", "</details>"]
    )


def drift_markdown(
    report: DriftReport,
    secrets: SecretsOf = _no_secrets,
    stack_file: str = "STACK",
    *,
    limit: int = GITHUB_COMMENT_LIMIT,
) -> str:
    comment = Comment(limit)
    comment.add(marker(report.stack))
    comment.add(f"### reconciler drift report for `{cell(report.stack, 64)}`\n")
    comment.add(f"Checked {text(report.checked_at, 40)} against the recorded state.\n")
    for note in report.notes:
        comment.add(f"> [!NOTE]\n> {text(note, 500)}\n")
    if not report.has_drift:
        comment.add("No drift. The platforms match the recorded state.\n")
    else:
        n = report.counts()
        comment.add(
            "| changed | deleted | unmanaged |\n|---:|---:|---:|\n"
            f"| {n['changed']} | {n['deleted']} | {n['unmanaged']} |\n"
        )
    changed = [r for r in report.resources if r.status == "changed"]
    if changed:
        comment.add("#### Changed out of band\n")
        for i, r in enumerate(changed):
            if not comment.add(_changed(r, secrets) + "\n"):
                comment.items([f"- `~ {cell(title(x), 300)}`" for x in changed[i:]])
                break
    deleted = [r for r in report.resources if r.status == "deleted"]
    if deleted:
        comment.add("#### Deleted out of band\n")
        comment.items([f"- `- {cell(title(r), 300)}`" for r in deleted])
        comment.add("")
    stray = [r for r in report.resources if r.status == "unmanaged"]
    if stray:
        comment.add("#### Unmanaged (in a managed scope, in no state)\n")
        rows = ["| platform | kind | name | id | found in |", "|---|---|---|---|---|"]
        for r in stray:
            name, oid = cell(r.name or "", 100), cell(r.id, 100)
            rows.append(f"| {r.platform} | {r.kind} | `{name}` | `{oid}` | {cell(r.where, 200)} |")
        comment.items(rows, "| ... and {n} more | | | | |")
        comment.add("")
    steps = next_steps(report, stack_file)
    if steps:
        comment.add("#### What to do\n")
        comment.items([f"- {text(s, 300)}" for s in steps])
    if report.scopes:
        comment.add(f"\n_Searched for unmanaged objects in: {text('; '.join(report.scopes), 1500)}._")
    if comment.summarised:
        comment.force(
            f"\n_Summarised to stay under GitHub's {limit:,}-character limit; "
            "`reconciler drift --format json` lists everything._"
        )
    return comment.render()
