"""State operations through the CLI (click's CliRunner, and real subprocesses for concurrency).

Most tests run twice: against a local state file and against PostgreSQL
(``tests/state/conftest.py``), on the embedded Fabric emulator.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler import operations
from reconciler.cli import cli
from reconciler.errors import StateError, UsageError
from reconciler.stack import load_stack
from reconciler.state import LocalBackend, ResourceState, StateDoc, transfer
from reconciler.state.backend import Backend
from reconciler.state.transfer import moved, removed, transfer_of
from tests.cli.conftest import start_emulator

from .conftest import PG, stack_name

QUICKSTART = Path(__file__).resolve().parents[2] / "stacks" / "quickstart.yaml"
ADDRESSES = ["deployments.chat", "endpoints.infer", "models.llama", "workspaces.main"]


@dataclass
class Result:
    code: int
    out: str
    err: str


@dataclass
class Project:
    """A copy of the quickstart stack in a temporary directory (the working directory)."""

    path: Path
    kind: str
    name: str

    def run(self, *args: str, stdin: str | None = None) -> Result:
        result = CliRunner().invoke(cli, list(args), input=stdin, catch_exceptions=False)
        return Result(result.exit_code, result.stdout, result.stderr)

    def backend(self) -> Backend:
        return operations.backend_for(load_stack(self.path))

    def state(self) -> StateDoc:
        doc = self.backend().read()
        assert doc is not None
        return doc


def write_stack(path: Path, name: str, backend: str, fabric: str | None = None) -> None:
    text = QUICKSTART.read_text().replace("stack: quickstart", f"stack: {name}")
    text = text.replace("backend: {local: {path: state/quickstart.json}}", f"backend: {backend}")
    providers = fabric or "{url: embedded, provision_seconds: 0,"
    path.write_text(text.replace("{url: embedded,", providers))


def pg_block(pg: PG) -> str:
    return '{postgres: {dsn: "{{ env.RECONCILER_PG_DSN }}", schema: ' + pg.schema + "}}"


@pytest.fixture(params=["local", "postgres"])
def project(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    monkeypatch.chdir(tmp_path)
    name = stack_name(tmp_path)
    if request.param == "postgres":
        pg: PG = request.getfixturevalue("pg")
        monkeypatch.setenv("RECONCILER_PG_DSN", pg.dsn)
        block = pg_block(pg)
    else:
        block = f"{{local: {{path: state/{name}.json}}}}"
    write_stack(tmp_path / "s.yaml", name, block)
    return Project(tmp_path / "s.yaml", request.param, name)


@pytest.fixture
def applied(project: Project) -> Project:
    result = project.run("apply", str(project.path), "--auto-approve")
    assert result.code == 0, result.err
    return project


# -- rm and mv -------------------------------------------------------------------------------


def test_rm_forgets_and_the_next_plan_refuses_to_take_the_forgotten_object(applied: Project) -> None:
    stack = str(applied.path)
    before = applied.state()
    chat = before.resources["deployments.chat"]
    result = applied.run("state", "rm", stack, "deployments.chat")
    assert result.code == 0, result.err
    assert result.out == (
        f"Removed deployments.chat (fabric service_instance {chat.id}) from the state; "
        "the platform object was left as it is.\n"
    )
    after = applied.state()
    assert after.serial == before.serial + 1 and sorted(after.resources) == ADDRESSES[1:]
    assert applied.run("state", "list", stack).out.split() == ADDRESSES[1:]
    # the object is still there, and no longer this stack's: a create would collide with it
    plan = applied.run("plan", stack, "--detailed-exitcode")
    assert plan.code == 1
    assert (
        f"deployments.chat: fabric service_instance chat-dev ({chat.id}) exists, not managed by this stack: "
        f"import it with `reconciler import {stack} deployments.chat {chat.id}`" in plan.err
    )

    missing = applied.run("state", "rm", stack, "deployments.chat", "models.nope")
    assert missing.code == 1 and "not in the state: deployments.chat, models.nope" in missing.err
    assert applied.state() == after


def test_mv_renames_an_address_and_the_dependencies_on_it(applied: Project) -> None:
    stack = str(applied.path)
    before = applied.state()
    result = applied.run("state", "mv", stack, "endpoints.infer", "endpoints.serving")
    assert result.code == 0, result.err
    assert result.out.startswith("Moved endpoints.infer to endpoints.serving (fabric endpoint ")
    after = applied.state()
    assert after.serial == before.serial + 1
    assert after.resources["endpoints.serving"].id == before.resources["endpoints.infer"].id
    assert "endpoints.serving" in after.resources["deployments.chat"].dependencies
    assert "endpoints.infer" not in after.resources["deployments.chat"].dependencies

    refused = applied.run("state", "mv", stack, "models.llama", "endpoints.llama")
    assert refused.code == 1 and "the section decides the kind" in refused.err
    taken = applied.run("state", "mv", stack, "models.llama", "models.llama")
    assert taken.code == 1 and "already in the state" in taken.err
    back = applied.run("state", "mv", stack, "endpoints.serving", "endpoints.infer")
    assert back.code == 0
    assert applied.state().resources == before.resources
    assert applied.run("plan", stack, "--detailed-exitcode").code == 0


# -- pull and push ------------------------------------------------------------------------------


def test_pull_prints_the_state_and_push_writes_it_back_with_checks(applied: Project, tmp_path: Path) -> None:
    stack = str(applied.path)
    pulled = applied.run("state", "pull", stack)
    assert pulled.code == 0 and pulled.out == applied.state().to_json()
    (tmp_path / "old.json").write_text(pulled.out)

    same = applied.run("state", "push", stack, "old.json")
    assert same.code == 0 and "already holds this state" in same.out

    assert applied.run("state", "rm", stack, "deployments.chat").code == 0
    current = applied.state()
    older = applied.run("state", "push", stack, "old.json")
    assert older.code == 1
    assert f"serial {current.serial - 1} is older than the stored serial {current.serial}" in older.err
    assert "--force" in older.err
    assert applied.state() == current

    unrelated = StateDoc.new(applied.name).bumped().bumped().bumped().bumped().bumped()
    (tmp_path / "other.json").write_text(unrelated.to_json())
    refused = applied.run("state", "push", stack, "other.json")
    assert refused.code == 1 and f"lineage {unrelated.lineage} differs" in refused.err

    forced = applied.run("state", "push", stack, "-", "--force", stdin=pulled.out)
    assert forced.code == 0, forced.err
    assert f"as serial {current.serial + 1} (forced)" in forced.out
    restored = applied.state()
    assert restored.serial == current.serial + 1 and sorted(restored.resources) == ADDRESSES

    newer = restored.with_outputs({"note": "edited"}).bumped().bumped()
    (tmp_path / "newer.json").write_text(newer.to_json())
    pushed = applied.run("state", "push", stack, "newer.json")
    assert pushed.code == 0 and applied.state() == newer

    corrupted = newer.to_json().replace('"edited"', '"tampered"')
    bad = applied.run("state", "push", stack, "-", stdin=corrupted)
    assert bad.code == 1 and "checksum mismatch" in bad.err
    assert applied.state() == newer


def test_pull_without_state_says_so(project: Project) -> None:
    result = project.run("state", "pull", str(project.path))
    assert result.code == 1 and "there is no state" in result.err and result.out == ""


# -- history and restore ------------------------------------------------------------------------


def test_history_lists_versions_and_restore_writes_an_old_one_as_a_new_serial(applied: Project) -> None:
    stack = str(applied.path)
    applied_doc = applied.state()
    listed = applied.run("state", "history", stack, "--json")
    assert listed.code == 0
    versions = json.loads(listed.out)
    assert versions[0]["serial"] == applied_doc.serial and versions[0]["command"] == "reconciler apply"
    assert [v["serial"] for v in versions] == sorted((v["serial"] for v in versions), reverse=True)

    assert applied.run("state", "rm", stack, "deployments.chat", "models.llama").code == 0
    table = applied.run("state", "history", stack, "--limit", "2")
    lines = table.out.splitlines()
    assert lines[0].split() == ["SERIAL", "WRITTEN", "AT", "WHO", "COMMAND", "LINEAGE"]
    assert lines[1].split()[0] == str(applied_doc.serial + 1) and "reconciler state rm" in lines[1]
    assert len(lines) == 3

    result = applied.run("state", "restore", stack, str(applied_doc.serial))
    assert result.code == 0, result.err
    assert f"Restored serial {applied_doc.serial} as serial {applied_doc.serial + 2}" in result.out
    now = applied.state()
    assert now.serial == applied_doc.serial + 2 and now.lineage == applied_doc.lineage
    assert now.resources == applied_doc.resources
    newest = json.loads(applied.run("state", "history", stack, "--json", "--limit", "1").out)
    assert newest[0]["serial"] == now.serial and newest[0]["command"] == "reconciler state restore"
    assert applied.run("plan", stack, "--detailed-exitcode").code == 0

    current = applied.run("state", "restore", stack, str(now.serial))
    assert current.code == 1 and "is the current state" in current.err
    gone = applied.run("state", "restore", stack, "9999")
    assert gone.code == 1 and "no version with serial 9999" in gone.err


# -- import -------------------------------------------------------------------------------------


def test_import_records_live_objects_so_the_next_plan_shows_no_changes(applied: Project) -> None:
    stack = str(applied.path)
    ids = {a: r.id for a, r in applied.state().resources.items()}
    assert applied.run("state", "rm", stack, *ADDRESSES).code == 0
    refused = applied.run("plan", stack, "--detailed-exitcode")
    assert refused.code == 1 and "exists, not managed by this stack: import it with" in refused.err

    early = applied.run("import", stack, "endpoints.infer", ids["endpoints.infer"])
    assert early.code == 1
    assert "workspace_id comes from workspaces.main" in early.err
    assert "import workspaces.main first" in early.err

    for address in ("workspaces.main", "endpoints.infer", "models.llama", "deployments.chat"):
        result = applied.run("import", stack, address, ids[address])
        assert result.code == 0, result.err
        assert result.out.startswith(f"Imported {address} (fabric ")
    imported = applied.state()
    assert {a: r.id for a, r in imported.resources.items()} == ids
    plan = applied.run("plan", stack, "--detailed-exitcode")
    assert plan.code == 0, plan.out + plan.err
    assert "No changes." in plan.out

    again = applied.run("import", stack, "models.llama", ids["models.llama"])
    assert again.code == 1 and "already in the state" in again.err
    unknown = applied.run("import", stack, "models.nope", "x")
    assert unknown.code == 1 and "models.nope is not a resource of stack" in unknown.err
    assert applied.run("state", "rm", stack, "models.llama").code == 0
    missing = applied.run("import", stack, "models.llama", "no-such-id")
    assert missing.code == 1 and "fabric has no model with id 'no-such-id'" in missing.err


def test_import_shows_only_the_differences(applied: Project) -> None:
    stack = str(applied.path)
    chat = applied.state().resources["deployments.chat"]
    assert applied.run("state", "rm", stack, "deployments.chat").code == 0
    text = applied.path.read_text()
    applied.path.write_text(text.replace("description: chat service", "description: chat"))
    assert applied.run("import", stack, "deployments.chat", chat.id).code == 0
    plan = applied.run("plan", stack, "--detailed-exitcode")
    assert plan.code == 2
    assert "Plan: 0 to create, 1 to update, 0 to replace, 0 to delete." in plan.out


# -- locks ----------------------------------------------------------------------------------------


def test_lock_timeout_waits_and_force_unlock_names_the_holder(project: Project) -> None:
    stack = str(project.path)
    taken, release = threading.Event(), threading.Event()

    def hold() -> None:
        with project.backend().lock("reconciler apply (another terminal)"):
            taken.set()
            release.wait(timeout=30)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert taken.wait(timeout=30)
        refused = project.run("state", "rm", stack, "models.llama")
        assert refused.code == 1
        assert "locked by" in refused.err and "reconciler apply (another terminal)" in refused.err
        threading.Timer(0.5, release.set).start()
        started = time.monotonic()
        waited = project.run("plan", stack, "--lock-timeout", "30s", "--detailed-exitcode")
        assert waited.code == 2, waited.err
        assert time.monotonic() - started >= 0.4
    finally:
        release.set()
        holder.join(timeout=30)
    assert project.run("force-unlock", stack, "any-id").out == "The state was not locked.\n"


def test_force_unlock_removes_a_lock_and_explains(project: Project) -> None:
    stack = str(project.path)
    backend = project.backend()
    lock = backend.lock("reconciler apply")
    held = lock.__enter__()
    try:
        wrong = project.run("force-unlock", stack, "not-the-id")
        assert wrong.code == 1 and "not lock not-the-id; nothing removed" in wrong.err, wrong.err
        result = project.run("force-unlock", stack, held.id)
        if project.kind == "local":  # the holder is this live process: refused, the lock stays
            assert result.code == 1 and "running on this host" in result.err, result.err
            assert f"kill {held.pid}" in result.err
            return
        assert result.code == 0, result.err
        assert result.out.startswith(f"Removed the lock ({held.describe()}).")
        if project.kind == "postgres":
            assert "ended the session that still held it" in result.out
        with project.backend().lock("reconciler plan"):
            pass
    finally:
        lock.__exit__(None, None, None)


# -- migrate ------------------------------------------------------------------------------------


def test_migrate_local_to_postgres_and_back_keeps_lineage_and_serial(
    pg: PG, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RECONCILER_PG_DSN", pg.dsn)
    name = stack_name(tmp_path)
    stack = tmp_path / "s.yaml"
    write_stack(stack, name, f"{{local: {{path: state/{name}.json}}}}")
    project = Project(stack, "local", name)
    assert project.run("apply", str(stack), "--auto-approve").code == 0
    local = project.state()

    to_pg = project.run("state", "migrate", str(stack), "--to", "postgres", "--schema", pg.schema)
    assert to_pg.code == 0, to_pg.err
    assert f"(lineage {local.lineage}, serial {local.serial})" in to_pg.out
    assert "{{ env.RECONCILER_PG_DSN }}" in to_pg.out and pg.dsn not in to_pg.out
    assert pg.backend(name).read() == local
    again = project.run("state", "migrate", str(stack), "--to", "postgres", "--schema", pg.schema)
    assert again.code == 0 and "already holds this state" in again.out

    write_stack(stack, name, pg_block(pg))
    project = Project(stack, "postgres", name)
    assert project.run("plan", str(stack), "--detailed-exitcode").code == 0
    assert project.run("state", "rm", str(stack), "deployments.chat").code == 0
    in_pg = project.state()

    # the local copy is older: it is updated in place
    back = project.run("state", "migrate", str(stack), "--to", "local", "--path", f"state/{name}.json")
    assert back.code == 0, back.err
    copied = LocalBackend(tmp_path / "state" / f"{name}.json").read()
    assert copied == in_pg and copied.lineage == local.lineage and copied.serial == local.serial + 1

    # an unrelated local state is not overwritten without --force
    other = tmp_path / "state" / "other.json"
    LocalBackend(other).write(StateDoc.new(name).bumped().bumped())
    refused = project.run("state", "migrate", str(stack), "--to", "local", "--path", str(other))
    assert refused.code == 1 and "differs from the stored lineage" in refused.err
    forced = project.run("state", "migrate", str(stack), "--to", "local", "--path", str(other), "--force")
    assert forced.code == 0
    assert LocalBackend(other).read() == in_pg.model_copy(update={"serial": max(in_pg.serial, 3)})

    monkeypatch.delenv("RECONCILER_PG_DSN")
    write_stack(stack, name, f"{{local: {{path: state/{name}.json}}}}")
    no_dsn = Project(stack, "local", name).run("state", "migrate", str(stack), "--to", "postgres")
    assert no_dsn.code == 1 and "set RECONCILER_PG_DSN" in no_dsn.err


# -- concurrency and secrets, through real processes --------------------------------------------------


@pytest.fixture
def served_stack(pg: PG, tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """A stack on a served emulator with its state in PostgreSQL, and the environment to run it."""
    served = start_emulator(tmp_path)
    try:
        stack = tmp_path / "s.yaml"
        write_stack(stack, stack_name(tmp_path), pg_block(pg), f'{{url: "{served.url}",')
        root = str(Path(__file__).resolve().parents[2])
        env = {
            **os.environ,
            "RECONCILER_PG_DSN": pg.dsn,
            "FABRIC_TOKEN": served.token,
            "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])),
        }
        yield stack, env
    finally:
        served.process.terminate()
        served.process.wait(timeout=10)


def _reconciler(cwd: Path, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "reconciler", *args],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_applies_at_once_one_waits_and_nothing_is_corrupted(
    served_stack: tuple[Path, dict[str, str]],
) -> None:
    stack, env = served_stack
    loaded = load_stack(stack, env=env)
    backend = operations.backend_for(loaded)

    with backend.lock("reconciler apply (held by the test)"):
        refused = _reconciler(stack.parent, env, "apply", str(stack), "--auto-approve")
        out, err = refused.communicate(timeout=120)
        assert refused.returncode == 1, out + err
        assert "is locked by" in err and "`reconciler apply (held by the test)`" in err
    assert backend.read() is None

    runs = [
        _reconciler(stack.parent, env, "apply", str(stack), "--auto-approve", "--lock-timeout", "120s")
        for _ in range(2)
    ]
    results = [(run.communicate(timeout=180), run.returncode) for run in runs]
    assert [code for _, code in results] == [0, 0], results
    outs = sorted(out for (out, _), _ in results)
    assert sum("Apply complete! Resources: 4 created" in out for out in outs) == 1, outs
    assert sum("No changes." in out for out in outs) == 1, outs
    doc = backend.read()
    assert doc is not None and sorted(doc.resources) == ADDRESSES and not doc.journal
    serials = [v.serial for v in transfer.history(backend)]
    assert serials[0] == doc.serial and serials == sorted(set(serials), reverse=True)
    plan = _reconciler(stack.parent, env, "plan", str(stack), "--detailed-exitcode")
    out, err = plan.communicate(timeout=120)
    assert plan.returncode == 0 and "No changes." in out, out + err


def test_the_dsn_never_reaches_output_state_or_plan_files(
    pg: PG, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "pg-SECRET-93b1"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RECONCILER_PG_DSN", f"{pg.dsn} password={secret}")  # trusted: unused
    name = stack_name(tmp_path)
    write_stack(tmp_path / "s.yaml", name, pg_block(pg))
    project = Project(tmp_path / "s.yaml", "postgres", name)
    stack = str(project.path)
    outputs = [
        project.run("plan", stack, "--out", "saved.plan"),
        project.run("apply", "saved.plan"),
        project.run("state", "pull", stack),
        project.run("state", "history", stack),
        project.run("state", "show", stack),
        project.run("force-unlock", stack, "no-lock"),
        project.run("plan", stack, "--format", "json"),
    ]
    assert [r.code for r in outputs] == [0] * len(outputs), [r.err for r in outputs]
    with project.backend().lock("reconciler apply"):
        outputs.append(project.run("plan", stack))
    assert outputs[-1].code == 1
    monkeypatch.setenv("RECONCILER_PG_DSN", f"host=/nonexistent user=x password={secret}")
    down = project.run("plan", stack)
    assert down.code == 1 and "cannot connect to the PostgreSQL state backend" in down.err
    outputs.append(down)
    for result in outputs:
        assert secret not in result.out + result.err
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert secret not in path.read_text(errors="replace"), path
    with pg.connect() as conn:
        rows = conn.execute(f"SELECT * FROM {pg.schema}.state_history").fetchall()
    assert rows and secret not in repr(rows)


# -- the pure decisions ---------------------------------------------------------------------------


def _doc() -> StateDoc:
    doc = StateDoc.new("demo")
    for address, deps in (("workspaces.w", ()), ("endpoints.e", ("workspaces.w",))):
        doc = doc.with_resource(
            ResourceState(address=address, platform="fabric", kind="x", id=address, dependencies=deps)
        )
    return doc


def test_moved_and_removed_are_pure_and_reversible() -> None:
    doc = _doc()
    there = moved(doc, "workspaces.w", "workspaces.v")
    assert doc == _doc().model_copy(update={"lineage": doc.lineage})
    assert there.resources["endpoints.e"].dependencies == ("workspaces.v",)
    assert moved(there, "workspaces.v", "workspaces.w") == doc
    assert there.serial == doc.serial
    assert sorted(removed(doc, ["endpoints.e"]).resources) == ["workspaces.w"]
    with pytest.raises(UsageError, match="not a resource address"):
        moved(doc, "workspaces.w", "nowhere")


def test_transfer_of_decides_write_replace_or_nothing() -> None:
    stored = _doc().bumped().bumped()
    assert transfer_of(None, stored, stack="demo", force=False, what="push").how == "write"
    assert transfer_of(stored, stored, stack="demo", force=False, what="push").how == "none"
    assert transfer_of(stored, stored.bumped(), stack="demo", force=False, what="push").how == "write"
    older = stored.model_copy(update={"serial": 1})
    with pytest.raises(StateError, match="serial 1 is older than the stored serial 2"):
        transfer_of(stored, older, stack="demo", force=False, what="push")
    forced = transfer_of(stored, older, stack="demo", force=True, what="push")
    assert (forced.how, forced.doc.serial, forced.over_serial) == ("replace", 3, 2)
    diverged = stored.with_outputs({"x": 1})
    with pytest.raises(StateError, match="other contents: the two copies diverged"):
        transfer_of(stored, diverged, stack="demo", force=False, what="push")
    with pytest.raises(StateError, match="state of stack 'demo', not 'other'"):
        transfer_of(None, stored, stack="other", force=False, what="push")
