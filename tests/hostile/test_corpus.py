"""The bad-input corpus: every stack in ``corpus/`` is refused the same way by ``validate`` and ``plan``.

Each case is ``corpus/NAME.yaml`` with ``corpus/NAME.expected``: the lines the
error must contain, exactly (a line starting with ``re:`` is a regular
expression searched for instead). Optional ``NAME.args`` (extra arguments, one
a line), ``NAME.env`` (``KEY=VALUE`` lines) and ``NAME.vars`` (a var file
copied beside the stack).

For every case and both commands: exit code 1, no traceback, the expected
lines, ``NAME.yaml:<line>`` named, well under a few seconds; the provider
(a listening socket standing in for the platform) is never connected to, no
state directory appears and nothing the stack smuggles in runs. The 50 MB
stack is made at test time, not committed.

``RECONCILER_CORPUS_WRITE=1 pytest tests/hostile/test_corpus.py`` rewrites the
``.expected`` files from what the loader says now (review the diff!).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import time
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.cli import cli

CORPUS = Path(__file__).parent / "corpus"
CASES = sorted(p.stem for p in CORPUS.glob("*.yaml"))
COMMANDS = ("validate", "plan")
#: Cases refused as a whole file, before any line can be named.
WHOLE_FILE = frozenset({"var_file_outside", "var_file_symlink_outside", "var_undeclared_cli"})
#: Generous bounds: these are sanity checks, not benchmarks.
SECONDS = 5.0
PEAK_BYTES = 64 * 1024 * 1024
PLATFORM_URL = b"http://127.0.0.1:1"
HEADER = re.compile(r"^Error: the stack is invalid \(\d+ problems?\); nothing was called or written:$")


@dataclass
class Outcome:
    code: int
    out: str
    err: str
    seconds: float
    exception: BaseException | None


@pytest.fixture(scope="module")
def platform() -> Iterator[socket.socket]:
    """A listening socket every corpus provider points at; a connection to it means an API call was made."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        sock.setblocking(False)
        yield sock


def _no_connection(sock: socket.socket) -> None:
    try:
        conn, _ = sock.accept()
    except BlockingIOError:
        return
    conn.close()
    raise AssertionError("a provider connected to the platform: an API call was made for an invalid stack")


def _setup(name: str, tmp: Path, sock: socket.socket) -> tuple[Path, list[str], dict[str, str]]:
    work = tmp / "work"
    work.mkdir()
    (tmp / "outside.yaml").write_text("env: prod\n", encoding="utf-8")
    (work / "linked.yaml").symlink_to(tmp / "outside.yaml")
    url = f"http://127.0.0.1:{sock.getsockname()[1]}".encode()
    (work / f"{name}.yaml").write_bytes((CORPUS / f"{name}.yaml").read_bytes().replace(PLATFORM_URL, url))
    if (CORPUS / f"{name}.vars").exists():
        shutil.copy(CORPUS / f"{name}.vars", work / f"{name}.vars")
    args_file, env_file = CORPUS / f"{name}.args", CORPUS / f"{name}.env"
    args = args_file.read_text(encoding="utf-8").splitlines() if args_file.exists() else []
    env: dict[str, str] = {}
    if env_file.exists():
        env = dict(line.split("=", 1) for line in env_file.read_text(encoding="utf-8").splitlines() if line)
    return work, args, env


def _invoke(work: Path, argv: list[str], env: dict[str, str]) -> Outcome:
    old = Path.cwd()
    os.chdir(work)
    try:
        started = time.monotonic()
        result = CliRunner().invoke(cli, argv, env=env)
        seconds = time.monotonic() - started
    finally:
        os.chdir(old)
    exception = None if isinstance(result.exception, SystemExit) else result.exception
    return Outcome(result.exit_code, result.stdout, result.stderr, seconds, exception)


def _expected(name: str) -> list[str]:
    return (CORPUS / f"{name}.expected").read_text(encoding="utf-8").splitlines()


def _matches(expected: str, lines: list[str]) -> bool:
    if expected.startswith("re:"):
        return any(re.search(expected[3:], line) for line in lines)
    return expected in lines


def test_the_corpus_is_large_enough() -> None:
    assert len(CASES) >= 60
    missing = [name for name in CASES if not (CORPUS / f"{name}.expected").exists()]
    assert not missing or os.environ.get("RECONCILER_CORPUS_WRITE") == "1", missing


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("name", CASES)
def test_case_is_refused_with_its_message(
    name: str, command: str, tmp_path: Path, platform: socket.socket
) -> None:
    work, args, env = _setup(name, tmp_path, platform)
    outcome = _invoke(work, [command, f"{name}.yaml", *args], env)

    assert outcome.exception is None, f"{name}: {outcome.exception!r}"
    assert outcome.code == 1, (outcome.out, outcome.err)
    assert outcome.out == ""
    assert "Traceback" not in outcome.err
    lines = [line.strip() for line in outcome.err.splitlines()]
    assert HEADER.match(lines[0]), outcome.err
    problems = lines[1:]
    if os.environ.get("RECONCILER_CORPUS_WRITE") == "1" and command == "validate":
        (CORPUS / f"{name}.expected").write_text("\n".join(problems) + "\n", encoding="utf-8")
    for expected in _expected(name):
        assert _matches(expected, problems), f"{name}: {expected!r} not in:\n{outcome.err}"
    if name not in WHOLE_FILE:
        assert any(re.match(rf"{re.escape(name)}\.(yaml|vars):\d+: ", p) for p in problems), outcome.err
    assert outcome.seconds < SECONDS, f"{name} took {outcome.seconds:.1f}s"
    _no_connection(platform)
    assert not (work / "state").exists(), "an invalid stack touched the state"
    assert not (work / "pwned").exists(), "a YAML tag ran a command"


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize(
    "name", ["yaml_alias_bomb", "yaml_deep_flow", "tpl_string_multiply", "tpl_power_tower"]
)
def test_expensive_cases_stay_small(name: str, command: str, tmp_path: Path, platform: socket.socket) -> None:
    work, args, env = _setup(name, tmp_path, platform)
    tracemalloc.start()
    try:
        outcome = _invoke(work, [command, f"{name}.yaml", *args], env)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert outcome.code == 1
    assert peak < PEAK_BYTES, f"{name}: peak {peak / 1e6:.0f} MB"


@pytest.mark.parametrize("command", COMMANDS)
def test_a_50_mb_stack_is_refused_unread(command: str, tmp_path: Path, platform: socket.socket) -> None:
    work = tmp_path / "work"
    work.mkdir()
    line = b"    description: " + b"x" * 200 + b"\n"
    with (work / "huge.yaml").open("wb") as fh:
        fh.write(b"stack: hostile\nworkspaces:\n")
        for i in range(50 * 1024 * 1024 // (len(line) + 24)):
            fh.write(b"  w%d:\n    name: w\n" % i + line)
    assert (work / "huge.yaml").stat().st_size >= 50_000_000
    tracemalloc.start()
    try:
        outcome = _invoke(work, [command, "huge.yaml"], {})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert outcome.code == 1 and outcome.exception is None
    assert "huge.yaml: the file is larger than 4 MiB" in outcome.err
    assert outcome.seconds < SECONDS
    assert peak < PEAK_BYTES, f"peak {peak / 1e6:.0f} MB"
    _no_connection(platform)
    assert not (work / "state").exists()
