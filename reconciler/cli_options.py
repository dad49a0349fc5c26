"""Options and argument parsing shared by every `reconciler` command module."""

from __future__ import annotations

import click

from reconciler.errors import UsageError

stack_argument = click.argument("stack", type=click.Path(dir_okay=False))
var_option = click.option("--var", "variables", multiple=True, metavar="NAME=VALUE", help="Set a variable.")
var_file_option = click.option(
    "--var-file",
    "var_files",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="YAML/JSON file of variables.",
)
lock_timeout_option = click.option(
    "--lock-timeout",
    default="0s",
    show_default=True,
    help="How long to wait for the state lock (e.g. 30s, 2m).",
)


def seconds(text: str) -> float:
    """A duration like ``30s``, ``2m``, ``500ms`` or ``1h`` (bare numbers are seconds)."""
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    for suffix in ("ms", "s", "m", "h"):
        if text.endswith(suffix):
            number = text[: -len(suffix)]
            break
    else:
        suffix, number = "s", text
    try:
        return float(number) * units[suffix]
    except ValueError:
        raise UsageError(f"--lock-timeout {text!r}: expected a duration like 30s, 2m or 500ms") from None
