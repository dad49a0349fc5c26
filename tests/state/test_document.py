"""The state document: pure helpers, and refusing what cannot be trusted."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.errors import StateError
from reconciler.state import FORMAT_VERSION, JournalEntry, ResourceState, StateDoc, utc_timestamp

SOURCE = "state/demo.json"


def entry(seq: int, token: str, phase: str, address: str = "deployments.chat") -> JournalEntry:
    return JournalEntry.model_validate(
        {
            "seq": seq,
            "address": address,
            "action": "create",
            "phase": phase,
            "token": token,
            "time": "2026-11-24T15:40:01Z",
        }
    )


def resource(address: str = "deployments.chat", **changes: Any) -> ResourceState:
    fields: dict[str, Any] = {
        "address": address,
        "platform": "fabric",
        "kind": "service_instance",
        "id": "si-1",
        "name": "chat",
        "scope": {"workspace_id": "ws-1"},
        "attributes": {"replicas": 2},
        "status": "running",
        "dependencies": ("models.llama",),
    }
    return ResourceState.model_validate({**fields, **changes})


def sample() -> StateDoc:
    return (
        StateDoc.new("demo")
        .with_resource(resource())
        .with_outputs({"url": "https://chat.example"})
        .with_journal(entry(1, "t1", "intent"))
        .bumped()
    )


def edited(text: str, **changes: Any) -> str:
    data = json.loads(text)
    data.update(changes)
    return json.dumps(data)


# -- helpers -------------------------------------------------------------------------------


def test_new_has_fresh_lineage_and_nothing_recorded() -> None:
    a, b = StateDoc.new("demo"), StateDoc.new("demo")
    assert a.lineage != b.lineage
    assert (a.serial, a.stack, a.resources, a.outputs, a.journal) == (0, "demo", {}, {}, ())
    assert a.format_version == FORMAT_VERSION


def test_helpers_return_new_documents_and_leave_the_original_alone() -> None:
    base = StateDoc.new("demo")
    with_chat = base.with_resource(resource())
    assert base.resources == {}
    assert set(with_chat.resources) == {"deployments.chat"}
    assert with_chat.without_resource("deployments.chat").resources == {}
    assert with_chat.without_resource("nope") is with_chat
    assert with_chat.bumped().serial == 1 and with_chat.serial == 0
    assert base.with_outputs({"a": 1}).outputs == {"a": 1} and base.outputs == {}
    replaced = with_chat.with_resource(resource(id="si-2"))
    assert replaced.resources["deployments.chat"].id == "si-2"
    assert with_chat.resources["deployments.chat"].id == "si-1"


def test_models_are_frozen_and_strict_about_fields() -> None:
    doc = StateDoc.new("demo")
    with pytest.raises(ValueError):
        doc.serial = 3  # type: ignore[misc]
    with pytest.raises(ValueError):
        ResourceState.model_validate({**resource().model_dump(), "secret": "x"})


def test_journal_open_lists_intents_without_an_outcome() -> None:
    doc = StateDoc.new("demo")
    for e in [
        entry(1, "a", "intent"),
        entry(2, "b", "intent", "models.llama"),
        entry(3, "a", "done"),
        entry(4, "c", "intent"),
        entry(5, "c", "failed"),
        entry(6, "d", "intent"),
    ]:
        doc = doc.with_journal(e)
    assert [(e.seq, e.token) for e in doc.journal_open()] == [(2, "b"), (6, "d")]
    assert doc.cleared_journal().journal == ()
    assert doc.cleared_journal().journal_open() == ()


def test_journal_open_an_outcome_before_its_intent_does_not_close_it() -> None:
    doc = StateDoc.new("demo").with_journal(entry(1, "a", "done")).with_journal(entry(2, "a", "intent"))
    assert [e.seq for e in doc.journal_open()] == [2]


def test_journal_seq_must_increase() -> None:
    doc = StateDoc.new("demo").with_journal(entry(1, "a", "intent"))
    assert doc.next_seq == 2
    assert StateDoc.new("demo").next_seq == 1
    with pytest.raises(ValueError, match="does not follow"):
        doc.with_journal(entry(1, "b", "intent"))


def test_utc_timestamp_shape() -> None:
    stamp = utc_timestamp()
    assert len(stamp) == 20 and stamp.endswith("Z") and stamp[10] == "T"


# -- serialisation -------------------------------------------------------------------------


def test_to_json_is_canonical_and_checksummed() -> None:
    doc = sample()
    text = doc.to_json()
    data = json.loads(text)
    assert data["checksum"].startswith("sha256:")
    assert list(data) == sorted(data)
    assert text == doc.to_json()
    assert text.endswith("\n") and '\n  "format_version": 1' in text
    assert StateDoc.from_json(text, SOURCE) == doc


json_scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_-0123456789", min_size=1, max_size=8)
addresses = st.builds(
    lambda s, k: f"{s}.{k}", st.sampled_from(["workspaces", "models", "deployments"]), names
)


@st.composite
def resources(draw: st.DrawFn) -> ResourceState:
    return ResourceState(
        address=draw(addresses),
        platform=draw(st.sampled_from(["fabric", "modelstudio", "zstack"])),
        kind=draw(names),
        id=draw(st.text(max_size=12)),
        name=draw(st.none() | st.text(max_size=12)),
        scope=draw(st.dictionaries(names, st.text(max_size=8), max_size=2)),
        attributes=draw(st.dictionaries(st.text(max_size=8), json_values, max_size=4)),
        status=draw(st.none() | names),
        dependencies=tuple(draw(st.lists(addresses, max_size=3))),
    )


@st.composite
def documents(draw: st.DrawFn) -> StateDoc:
    doc = StateDoc.new(draw(names))
    for rs in draw(st.lists(resources(), max_size=4)):
        doc = doc.with_resource(rs)
    for token, phase in draw(
        st.lists(st.tuples(names, st.sampled_from(["intent", "done", "failed"])), max_size=4)
    ):
        full = entry(doc.next_seq, token, phase).model_copy(
            update={
                "platform": draw(st.none() | st.just("zstack")),
                "kind": draw(st.none() | names),
                "scope": draw(st.dictionaries(names, st.text(max_size=8), max_size=2)),
                "dependencies": tuple(draw(st.lists(addresses, max_size=2))),
                "detail": draw(st.none() | st.text(max_size=20)),
            }
        )
        doc = doc.with_journal(full)
    doc = doc.with_outputs(draw(st.dictionaries(names, json_values, max_size=3)))
    for _ in range(draw(st.integers(0, 3))):
        doc = doc.bumped()
    return doc


@settings(max_examples=150, deadline=None)
@given(documents())
def test_documents_round_trip_through_json(doc: StateDoc) -> None:
    text = doc.to_json()
    again = StateDoc.from_json(text, SOURCE)
    assert again == doc
    assert again.to_json() == text


def test_a_file_without_checksum_is_accepted() -> None:
    doc = sample()
    data = json.loads(doc.to_json())
    del data["checksum"]
    assert StateDoc.from_json(json.dumps(data), SOURCE) == doc


def test_hand_written_minimal_file_is_accepted() -> None:
    doc = StateDoc.from_json('{"format_version": 1, "lineage": "abc", "stack": "demo"}', SOURCE)
    assert (doc.lineage, doc.serial, doc.resources) == ("abc", 0, {})


def test_checksum_mismatch_is_refused_naming_the_backup() -> None:
    text = sample().to_json().replace('"replicas": 2', '"replicas": 3')
    with pytest.raises(StateError) as caught:
        StateDoc.from_json(text, SOURCE)
    message = str(caught.value)
    assert "state file state/demo.json is corrupted (checksum mismatch)" in message
    assert "restore the backup state/demo.json.backup" in message


def test_backup_can_be_named_explicitly() -> None:
    text = edited(sample().to_json(), serial=99)
    with pytest.raises(StateError, match="restore the backup version 4 in table states"):
        StateDoc.from_json(text, "postgres stack demo", backup="version 4 in table states")


@pytest.mark.parametrize("cut", [1, 10, 100, -2])
def test_truncated_file_is_refused(cut: int) -> None:
    text = sample().to_json()[:cut]
    with pytest.raises(
        StateError, match=r"state file state/demo\.json is not valid JSON .*truncated.*backup"
    ):
        StateDoc.from_json(text, SOURCE)


@pytest.mark.parametrize("text", ["", "  \n"])
def test_empty_file_is_refused(text: str) -> None:
    with pytest.raises(StateError, match=r"state file state/demo\.json is empty.*state/demo\.json\.backup"):
        StateDoc.from_json(text, SOURCE)


@pytest.mark.parametrize("text", ["[]", '"state"', "42", "null"])
def test_non_object_is_refused(text: str) -> None:
    with pytest.raises(StateError, match="does not hold a JSON object"):
        StateDoc.from_json(text, SOURCE)


def test_non_json_constants_are_refused() -> None:
    with pytest.raises(StateError, match="not valid JSON"):
        StateDoc.from_json(
            '{"format_version": 1, "lineage": "a", "stack": "s", "outputs": {"x": NaN}}', SOURCE
        )


def test_newer_format_is_refused_before_anything_else() -> None:
    # A newer format may change anything, the checksum included: refuse, never misread.
    text = edited(sample().to_json(), format_version=FORMAT_VERSION + 1, whatever={"new": True})
    with pytest.raises(StateError) as caught:
        StateDoc.from_json(text, SOURCE)
    assert str(caught.value).startswith(
        f"state file {SOURCE} was written by a newer reconciler (format {FORMAT_VERSION + 1}); "
        "upgrade reconciler"
    )


@pytest.mark.parametrize("version", ['"1"', "1.0", "true"])
def test_format_version_must_be_an_integer(version: str) -> None:
    with pytest.raises(StateError, match="format_version must be an integer"):
        StateDoc.from_json(f'{{"format_version": {version}, "lineage": "a", "stack": "s"}}', SOURCE)


def test_missing_format_version_is_refused() -> None:
    with pytest.raises(StateError, match="has no format_version"):
        StateDoc.from_json('{"lineage": "a", "stack": "s"}', SOURCE)


def test_validation_errors_name_the_field() -> None:
    data = json.loads(sample().to_json())
    del data["checksum"]
    del data["resources"]["deployments.chat"]["id"]
    with pytest.raises(StateError) as caught:
        StateDoc.from_json(json.dumps(data), SOURCE)
    message = str(caught.value)
    assert "state file state/demo.json is invalid" in message
    assert "resources.deployments.chat.id: Field required" in message


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(StateError, match="pending: Extra inputs are not permitted"):
        StateDoc.from_json('{"format_version": 1, "lineage": "a", "stack": "s", "pending": []}', SOURCE)


def test_resource_keys_must_match_their_addresses() -> None:
    data = {
        "format_version": 1,
        "lineage": "a",
        "stack": "s",
        "resources": {"deployments.other": resource().model_dump(mode="json")},
    }
    with pytest.raises(
        StateError, match=r"resources\.deployments\.other records address 'deployments\.chat'"
    ):
        StateDoc.from_json(json.dumps(data), SOURCE)


def test_journal_out_of_order_is_refused_on_read() -> None:
    data = {
        "format_version": 1,
        "lineage": "a",
        "stack": "s",
        "journal": [entry(2, "a", "intent").model_dump(), entry(1, "a", "done").model_dump()],
    }
    with pytest.raises(StateError, match="journal seq must strictly increase"):
        StateDoc.from_json(json.dumps(data), SOURCE)
