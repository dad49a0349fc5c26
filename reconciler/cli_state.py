"""The state commands: ``state rm|mv|pull|push|history|restore|migrate`` and ``import``.

Thin, like :mod:`reconciler.cli`: parse flags, call
:mod:`reconciler.state.transfer` or :mod:`reconciler.adoption`, print.
Errors propagate to the root group, the one place that turns them into
messages and exit codes. :func:`register` attaches the commands to the
groups of :mod:`reconciler.cli`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from reconciler import adoption, operations
from reconciler.cli_options import lock_timeout_option, seconds, stack_argument, var_file_option, var_option
from reconciler.errors import UsageError
from reconciler.providers.base import Provider
from reconciler.stack.spec import Stack
from reconciler.state import transfer
from reconciler.state.backend import Backend
from reconciler.state.history import HISTORY_KEEP
from reconciler.state.local import LocalBackend

# the same as reconciler.state.postgres.DSN_ENV (not imported from there: psycopg loads only when used)
DSN_ENV = "RECONCILER_PG_DSN"
SCHEMA_ENV = "RECONCILER_PG_SCHEMA"


def register(cli: click.Group, state: click.Group) -> None:
    """Attach the commands of this module to the root group and its ``state`` group."""
    for command in (state_rm, state_mv, state_pull, state_push, state_history, state_restore, state_migrate):
        state.add_command(command)
    cli.add_command(import_command)


# reconciler.cli imports this module at its end: its helpers are imported when a command runs.


def _load(path: str, variables: Sequence[str], var_files: Sequence[str]) -> Stack:
    """Load the stack as every command does (its secrets join the ones scrubbed from messages)."""
    from reconciler.cli import _load as load

    return load(path, variables, var_files)[1]


_seconds = seconds


@click.command("rm")
@stack_argument
@click.argument("addresses", nargs=-1, required=True)
@var_option
@var_file_option
@lock_timeout_option
def state_rm(
    stack: str,
    addresses: tuple[str, ...],
    variables: tuple[str, ...],
    var_files: tuple[str, ...],
    lock_timeout: str,
) -> int:
    """Forget ADDRESSES: the state stops managing them; the platform objects are left as they are.

    A later plan proposes to create what the stack still declares; `reconciler
    import` records an existing object again.
    """
    loaded = _load(stack, variables, var_files)
    backend = operations.backend_for(loaded)
    for resource in transfer.remove(backend, addresses, lock_timeout=_seconds(lock_timeout)):
        click.echo(
            f"Removed {resource.address} ({resource.platform} {resource.kind} {resource.id}) from the state; "
            "the platform object was left as it is."
        )
    return 0


@click.command("mv")
@stack_argument
@click.argument("source")
@click.argument("destination")
@var_option
@var_file_option
@lock_timeout_option
def state_mv(
    stack: str,
    source: str,
    destination: str,
    variables: tuple[str, ...],
    var_files: tuple[str, ...],
    lock_timeout: str,
) -> int:
    """Record the object at SOURCE under the address DESTINATION (after renaming a key in the stack).

    Nothing is called on the platform; resources that depended on SOURCE now
    depend on DESTINATION.
    """
    loaded = _load(stack, variables, var_files)
    backend = operations.backend_for(loaded)
    resource = transfer.move(backend, source, destination, lock_timeout=_seconds(lock_timeout))
    click.echo(f"Moved {source} to {destination} ({resource.platform} {resource.kind} {resource.id}).")
    return 0


@click.command("pull")
@stack_argument
@var_option
@var_file_option
def state_pull(stack: str, variables: tuple[str, ...], var_files: tuple[str, ...]) -> int:
    """Print the stored state (checksummed JSON) to stdout, e.g. to back it up or edit it.

    `reconciler state push STACK FILE` writes it back.
    """
    loaded = _load(stack, variables, var_files)
    click.echo(transfer.pull(operations.backend_for(loaded)), nl=False)
    return 0


@click.command("push")
@stack_argument
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--force", is_flag=True, help="Write it even if its lineage differs or its serial is older.")
@var_option
@var_file_option
@lock_timeout_option
def state_push(
    stack: str,
    file: str,
    force: bool,
    variables: tuple[str, ...],
    var_files: tuple[str, ...],
    lock_timeout: str,
) -> int:
    """Write FILE (a state document; - for stdin) as the stack's state.

    Refused when its lineage differs from the stored one, its serial is older,
    or it has the stored serial with other contents, unless --force (which
    writes it with a serial above the stored one: serials never go back).
    A hand-edited file must have its "checksum" field deleted.
    """
    loaded = _load(stack, variables, var_files)
    if file == "-":
        text, source = sys.stdin.read(), "standard input"
    else:
        try:
            text, source = Path(file).read_text(encoding="utf-8"), file
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read {file}: {exc}") from None
    backend = operations.backend_for(loaded)
    change = transfer.push(
        backend, text, source=source, stack=loaded.name, force=force, lock_timeout=_seconds(lock_timeout)
    )
    if change.how == "none":
        click.echo(
            f"{backend.describe()} already holds this state (serial {change.doc.serial}); nothing written."
        )
    else:
        forced = " (forced)" if change.how == "replace" else ""
        click.echo(f"Pushed {source} to {backend.describe()} as serial {change.doc.serial}{forced}.")
    return 0


@click.command("history")
@stack_argument
@click.option(
    "--limit", default=20, show_default=True, type=click.IntRange(min=0), help="Newest N; 0 for all."
)
@click.option("--json", "as_json", is_flag=True, help="A JSON list, newest first.")
@var_option
@var_file_option
def state_history(
    stack: str, limit: int, as_json: bool, variables: tuple[str, ...], var_files: tuple[str, ...]
) -> int:
    """The kept versions of the state, newest first: serial, when, who, which command.

    Any of them can be brought back with `reconciler state restore STACK SERIAL`.
    """
    loaded = _load(stack, variables, var_files)
    backend = operations.backend_for(loaded)
    versions = transfer.history(backend, limit or None)
    if as_json:
        click.echo(json.dumps([v.to_dict() for v in versions], indent=2))
        return 0
    if not versions:
        click.echo(f"No versions kept in {backend.describe()}.")
        return 0
    rows = [("SERIAL", "WRITTEN AT", "WHO", "COMMAND", "LINEAGE")]
    rows += [(str(v.serial), v.written_at, v.who, v.command, v.lineage[:8]) for v in versions]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        click.echo(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[4]
        )
    return 0


@click.command("restore")
@stack_argument
@click.argument("serial", type=click.IntRange(min=0))
@var_option
@var_file_option
@lock_timeout_option
def state_restore(
    stack: str, serial: int, variables: tuple[str, ...], var_files: tuple[str, ...], lock_timeout: str
) -> int:
    """Write the kept version SERIAL again as the current state (as a new serial).

    Only the state changes: run `reconciler plan STACK` afterwards to see how
    the platforms differ from it.
    """
    loaded = _load(stack, variables, var_files)
    backend = operations.backend_for(loaded)
    doc = transfer.restore(backend, serial, lock_timeout=_seconds(lock_timeout))
    click.echo(
        f"Restored serial {serial} as serial {doc.serial} ({len(doc.resources)} resources). "
        f"Run `reconciler plan {stack}` to see how the platforms differ from it."
    )
    return 0


@click.command("migrate")
@stack_argument
@click.option(
    "--to", "to", type=click.Choice(["local", "postgres"]), required=True, help="The target backend."
)
@click.option(
    "--path", type=click.Path(dir_okay=False), help="--to local: the state file [state/<stack>.json]."
)
@click.option(
    "--dsn",
    envvar=DSN_ENV,
    show_envvar=True,
    help="--to postgres: the connection string (prefer the environment variable: it stays out of `ps`).",
)
@click.option(
    "--schema",
    envvar=SCHEMA_ENV,
    show_envvar=True,
    default="reconciler",
    show_default=True,
    help="--to postgres: the schema of reconciler's tables.",
)
@click.option("--force", is_flag=True, help="Overwrite a different or newer state in the target.")
@var_option
@var_file_option
@lock_timeout_option
def state_migrate(
    stack: str,
    to: str,
    path: str | None,
    dsn: str | None,
    schema: str,
    force: bool,
    variables: tuple[str, ...],
    var_files: tuple[str, ...],
    lock_timeout: str,
) -> int:
    """Copy the state from the stack's backend to another one, keeping lineage and serial.

    Both backends are locked while copying; the source is left as it is. Then
    change the stack's `backend:` block to the target.
    """
    loaded = _load(stack, variables, var_files)
    source = operations.backend_for(loaded)
    target: Backend
    if to == "postgres":
        if not dsn:
            raise UsageError(f"--to postgres needs the connection string: set {DSN_ENV} (or pass --dsn)")
        from reconciler.state.postgres import PostgresBackend

        target = PostgresBackend(dsn, stack=loaded.name, schema=schema, stack_file=stack)
        block = f'backend: {{postgres: {{dsn: "{{{{ env.{DSN_ENV} }}}}", schema: {schema}}}}}'
    else:
        where = path or f"state/{loaded.name}.json"
        target = LocalBackend(where, stack=stack, history_keep=HISTORY_KEEP)
        block = f"backend: {{local: {{path: {where}}}}}"
    change = transfer.migrate(source, target, force=force, lock_timeout=_seconds(lock_timeout))
    doc = change.doc
    if change.how == "none":
        click.echo(f"{target.describe()} already holds this state (serial {doc.serial}); nothing written.")
    else:
        click.echo(
            f"Copied the state of stack {doc.stack!r} (lineage {doc.lineage}, serial {doc.serial}) "
            f"from {source.describe()} to {target.describe()}."
        )
    click.echo(f"Now point the stack at it:\n  {block}\nThe copy in {source.describe()} is left as it was.")
    return 0


@click.command("import")
@stack_argument
@click.argument("address")
@click.argument("id")
@var_option
@var_file_option
@lock_timeout_option
def import_command(
    stack: str,
    address: str,
    id: str,
    variables: tuple[str, ...],
    var_files: tuple[str, ...],
    lock_timeout: str,
) -> int:
    """Record the existing platform object ID at ADDRESS of the stack (nothing is changed on the platform).

    The next plan shows only how the object differs from the stack. Import the
    resources it references (e.g. its workspace) first.
    """
    loaded = _load(stack, variables, var_files)
    backend = operations.backend_for(loaded)

    async def body(providers: dict[str, Provider]) -> Any:
        return await adoption.import_resource(
            loaded, backend, providers, address, id, lock_timeout=_seconds(lock_timeout)
        )

    recorded = operations.run(lambda: operations.with_providers(loaded, body))
    click.echo(
        f"Imported {address} ({recorded.platform} {recorded.kind} {recorded.id}). "
        f"Run `reconciler plan {stack}` to see how it differs from the stack."
    )
    return 0
