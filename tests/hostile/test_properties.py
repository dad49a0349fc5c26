"""The laws, for random stacks (hypothesis, bounded examples).

* plan -> apply -> plan is empty: random DAGs on the recording fake provider
  (a first stack, then a second over the same resources: creates, updates,
  replacements, deletes), and random valid stacks over all three platforms on
  the embedded emulators (``provision_seconds: 0``), loaded from YAML text;
* the apply order respects every edge: a resource is created after everything
  it needs, and deleted before everything it needed;
* state round-trips byte for byte through every backend: the local file, and
  PostgreSQL (the ``pg`` fixture of ``tests/state``; skipped without a server
  except under ``CI=true``, where it fails);
* a failure at a random step of an apply is rolled back and leaves the live
  platform exactly as it was (server-assigned ids aside: references are
  compared by what they point at).
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler import operations
from reconciler.errors import ProviderError
from reconciler.plan import Action, Plan
from reconciler.providers.base import Provider
from reconciler.stack import load_stack
from reconciler.stack.spec import Stack
from reconciler.state.document import JournalEntry, ResourceState, StateDoc
from reconciler.state.local import LocalBackend
from tests.fakes import FakeProvider, MemoryBackend, res, stack_of

try:  # the postgres fixtures of tests/state (psycopg is a dependency; the server may be missing)
    from tests.state.conftest import pg, pg_server  # noqa: F401
except ImportError:  # pragma: no cover
    pg = None

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class OneShotFake(FakeProvider):
    """The fake provider, whose injected failures happen once (so that the rollback can succeed)."""

    def _check(self, op: str, name: str | None) -> None:
        key = (op, name or "")
        try:
            super()._check(op, name)
        finally:
            self.fail_on.discard(key)


# -- random DAGs on the fake provider ----------------------------------------------------------


@st.composite
def universes(draw: st.DrawFn) -> dict[int, frozenset[int]]:
    """Resource i -> the resources it references (all lower-numbered: acyclic)."""
    n = draw(st.integers(1, 7))
    return {i: frozenset(draw(st.sets(st.integers(0, i - 1), max_size=3)) if i else ()) for i in range(n)}


def closed(universe: Mapping[int, frozenset[int]], chosen: set[int]) -> set[int]:
    """``chosen`` with everything it needs, transitively."""
    out, work = set(), list(chosen)
    while work:
        i = work.pop()
        if i not in out:
            out.add(i)
            work.extend(universe[i])
    return out


@st.composite
def stacks_over(draw: st.DrawFn, universe: Mapping[int, frozenset[int]]) -> Stack:
    members = closed(universe, draw(st.sets(st.sampled_from(sorted(universe)))))
    return stack_of(
        *(
            res(
                f"workspaces.w{i}",
                {
                    "name": f"w{i}",
                    "zone": draw(st.sampled_from(["z1", "z2"])),
                    "size": draw(st.integers(0, 2)),
                },
                refs={f"r{j}": f"workspaces.w{j}" for j in sorted(universe[i])},
            )
            for i in sorted(members)
        )
    )


@st.composite
def two_stacks(draw: st.DrawFn) -> tuple[Stack, Stack]:
    universe = draw(universes())
    return draw(stacks_over(universe)), draw(stacks_over(universe))


def converge(stack: Stack, provider: FakeProvider, backend: MemoryBackend, *, rollback: bool = True) -> Any:
    providers: dict[str, Provider] = {"fake": provider}  # type: ignore[dict-item]

    async def go() -> tuple[Plan, operations.ApplyOutcome]:
        plan, _, _ = await operations.plan_async(stack, backend, providers)  # type: ignore[arg-type]
        outcome = await operations.apply_async(plan, stack, backend, providers, rollback=rollback)  # type: ignore[arg-type]
        return plan, outcome

    return asyncio.run(go())


def replan(stack: Stack, provider: FakeProvider, backend: MemoryBackend) -> Plan:
    async def go() -> Plan:
        plan, _, _ = await operations.plan_async(stack, backend, {"fake": provider})  # type: ignore[arg-type,dict-item]
        return plan

    return asyncio.run(go())


def recorded(backend: MemoryBackend) -> list[str]:
    doc = backend.read()
    return sorted(doc.resources) if doc is not None else []


def live(provider: FakeProvider) -> dict[str, dict[str, Any]]:
    """The fake platform by object name, ids replaced by the name of the object they name."""
    names = {oid: obj.get("name") for oid, obj in provider.objects.items()}
    return {
        str(obj["name"]): {k: names.get(v, v) if k.endswith("_id") else v for k, v in obj.items()}
        for obj in provider.objects.values()
    }


def check_order(calls: list[tuple[str, str]], needs: Mapping[str, set[str]]) -> None:
    """Creates come after the creates of what they need; deletes before the deletes of what they needed."""
    creates = [name for op, name in calls if op == "create"]
    deletes = [name for op, name in calls if op == "delete"]
    for name, deps in needs.items():
        for dep in deps:
            if name in creates and dep in creates:
                assert creates.index(dep) < creates.index(name), (dep, name, calls)
            if name in deletes and dep in deletes:
                assert deletes.index(name) < deletes.index(dep), (name, dep, calls)


def needs_of(*stacks: Stack) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for stack in stacks:
        for r in stack.resources.values():
            out.setdefault(str(r.attrs["name"]), set()).update(a.split(".")[1] for a in r.depends_on)
    return out


@FAST
@given(two_stacks())
def test_apply_then_plan_is_empty_and_every_edge_is_respected(pair: tuple[Stack, Stack]) -> None:
    first, second = pair
    provider, backend = FakeProvider(), MemoryBackend()
    for stack in (first, second):
        provider.calls.clear()
        _plan, outcome = converge(stack, provider, backend)
        assert outcome.report.ok
        check_order(provider.calls, needs_of(first, second))
        assert not replan(stack, provider, backend).has_changes
        assert recorded(backend) == sorted(stack.resources)


def _steps(plan: Plan) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for change in plan.actionable:
        name = str((change.after or change.before or {}).get("name") or change.name)
        if change.action is Action.REPLACE:
            out += [("delete", name), ("create", name)]
        else:
            out.append((change.action.value, name))
    return out


@FAST
@given(two_stacks(), st.data())
def test_a_failure_at_any_step_is_rolled_back_exactly(pair: tuple[Stack, Stack], data: st.DataObject) -> None:
    first, second = pair
    provider, backend = OneShotFake(), MemoryBackend()
    assert converge(first, provider, backend)[1].report.ok
    before, addresses = live(provider), recorded(backend)
    steps = _steps(replan(second, provider, backend))
    if not steps:
        return
    provider.fail_on.add(data.draw(st.sampled_from(steps), label="failing step"))

    _plan, outcome = converge(second, provider, backend)

    assert not outcome.report.ok
    assert outcome.restored or not outcome.report.done, (outcome.rollback_error, outcome.rollback)
    assert live(provider) == before
    assert recorded(backend) == addresses
    assert not replan(first, provider, backend).has_changes


# -- random valid stacks on the three platforms' emulators ------------------------------------------

PROVIDERS = """\
providers:
  fabric: {url: embedded, provision_seconds: 0, wait_timeout: 30, poll_interval: 0.01}
  modelstudio: {url: embedded, provision_seconds: 0, wait_timeout: 30, poll_interval: 0.01}
  zstack: {url: embedded, provision_seconds: 0, wait_timeout: 30, poll_interval: 0.01}
"""


VERSION = "{name: v1, config: {llm_model_config: {base_model_type: b, model_path: p}}}"


@st.composite
def platform_stacks(draw: st.DrawFn) -> dict[str, Any]:
    """The knobs of a random valid stack over workspaces, endpoints, models and the three deployments."""
    return {
        "fabric": draw(st.lists(st.tuples(st.integers(1, 4), st.booleans(), st.integers(1, 4)), max_size=2)),
        "modelstudio": draw(st.lists(st.sampled_from([4, 8, 12]), max_size=2)),
        "zstack": draw(st.lists(st.tuples(st.integers(1, 8), st.booleans()), max_size=2)),
        "description": draw(st.sampled_from(["one", "two"])),
    }


def stack_text(knobs: Mapping[str, Any], state: Path) -> str:
    lines = ["stack: props", PROVIDERS.rstrip(), f"backend: {{local: {{path: {state}}}}}"]
    ws, eps, models, deps = ["workspaces:"], ["endpoints:"], ["models:"], ["deployments:"]
    for i, (reserved, deploy, wanted) in enumerate(knobs["fabric"]):
        ws.append(f"  w{i}: {{name: ws-{i}, description: {knobs['description']}}}")
        eps.append(
            f"  e{i}: {{workspace: w{i}, name: ep-{i}, type: inference,"
            f" reserved_resource: {{mu: {{spec_code: mu.s, min: 0, max: {reserved + 1}}}}}}}"
        )
        if deploy:
            models.append(
                f"  m{i}: {{workspace: w{i}, name: model-{i}, type: LLM_MODEL, version: {VERSION}}}"
            )
            deps.append(
                f"  d{i}: {{platform: fabric, workspace: w{i}, endpoint: e{i}, model: m{i}, name: svc-{i},"
                f" config: {{model_instance_config: {{resource: {{spec_code: mu.s, min: 1,"
                f" max: {min(wanted, reserved + 1)}}}}}}}}}"
            )
    for i, capacity in enumerate(knobs["modelstudio"]):
        deps.append(
            f"  q{i}: {{platform: modelstudio, model_name: qwen3-8b, name: qwen-{i}, plan: mu,"
            f" deploy_spec: MU1, capacity: {capacity}, suffix: p{i}}}"
        )
    for i, (cpu, deploy) in enumerate(knobs["zstack"]):
        models.append(
            f"  z{i}: {{platform: zstack, name: zs-{i}, yaml: 'image: x', requestCpu: {cpu},"
            f" requestMemory: 1024, installPath: /m, startCommand: run}}"
        )
        if deploy:
            deps.append(
                f"  g{i}: {{platform: zstack, model_service: z{i}, name: group-{i}, type: Container}}"
            )
    for section in (ws, eps, models, deps):
        if len(section) > 1:
            lines += section
    return "\n".join(lines) + "\n"


def emulated(stack: Stack) -> Plan:
    """Apply the stack on its embedded emulators, then plan again; returns that second plan."""
    backend = operations.backend_for(stack)

    async def body(providers: dict[str, Provider]) -> Plan:
        plan, _, _ = await operations.plan_async(stack, backend, providers)
        outcome = await operations.apply_async(plan, stack, backend, providers)
        assert outcome.report.ok, outcome.report.failed
        again, _, _ = await operations.plan_async(stack, backend, providers)
        return again

    result: Plan = operations.run(lambda: operations.with_providers(stack, body))
    return result


@SLOW
@given(platform_stacks(), platform_stacks())
def test_random_stacks_on_the_emulators_converge(first: dict[str, Any], second: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as home:
        state = Path(home) / "state" / "props.json"
        for knobs in (first, second):
            path = Path(home) / "stack.yaml"
            path.write_text(stack_text(knobs, state), encoding="utf-8")
            again = emulated(load_stack(path, env={}))
            assert not again.has_changes, [(c.address, c.action, c.diff) for c in again.actionable]


# -- state documents through every backend ----------------------------------------------------------

_json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**53), 2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(),
)
_json = st.recursive(
    _json_leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)
_words = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12)


@st.composite
def state_docs(draw: st.DrawFn) -> StateDoc:
    addresses = draw(
        st.lists(
            st.from_regex(r"(workspaces|endpoints|models|deployments)\.[a-z][a-z0-9_-]{0,8}", fullmatch=True),
            unique=True,
            max_size=4,
        )
    )
    resources = {
        a: ResourceState(
            address=a,
            platform=draw(st.sampled_from(["fabric", "modelstudio", "zstack"])),
            kind=draw(_words),
            id=draw(_words),
            name=draw(st.none() | _words),
            scope=draw(st.dictionaries(_words, _words, max_size=2)),
            attributes=draw(st.dictionaries(_words, _json, max_size=4)),
            status=draw(st.none() | _words),
            dependencies=tuple(draw(st.lists(st.sampled_from(addresses), max_size=2))) if addresses else (),
        )
        for a in addresses
    }
    journal = tuple(
        JournalEntry(
            seq=i + 1, address=draw(_words), action="create", phase="intent", token=draw(_words), time="t"
        )
        for i in range(draw(st.integers(0, 2)))
    )
    doc = StateDoc.new("props").model_copy(
        update={
            "serial": draw(st.integers(1, 10**6)),
            "outputs": draw(st.dictionaries(_words, _json, max_size=3)),
        }
    )
    return doc.model_copy(update={"resources": resources, "journal": journal})


@FAST
@given(state_docs())
def test_state_round_trips_through_the_local_file_byte_for_byte(doc: StateDoc) -> None:
    with tempfile.TemporaryDirectory() as home:
        backend = LocalBackend(Path(home) / "props.json")
        backend.write(doc)
        assert backend.path.read_text(encoding="utf-8") == doc.to_json()
        read = LocalBackend(Path(home) / "props.json").read()
        assert read is not None and read.to_json() == doc.to_json() and read == doc


@pytest.mark.skipif(pg is None, reason="psycopg is not installed")
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(doc=state_docs())
def test_state_round_trips_through_postgres_byte_for_byte(pg: Any, doc: StateDoc) -> None:
    backend = pg.backend(f"p{doc.lineage.replace('-', '')[:20]}")
    backend.write(doc)
    read = backend.read()
    assert read is not None and read.to_json() == doc.to_json() and read == doc


def test_provider_errors_of_the_fake_are_provider_errors() -> None:
    """The injected failure the rollback law relies on is a ProviderError, raised once."""
    provider = OneShotFake()
    provider.fail_on.add(("create", "x"))
    with pytest.raises(ProviderError):
        asyncio.run(provider.create("thing", {"name": "x"}))
    asyncio.run(provider.create("thing", {"name": "x"}))
