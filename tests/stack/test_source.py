"""Reading YAML: safe loading, duplicate keys, tags, syntax errors, encodings, line numbers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.errors import StackError
from reconciler.stack import load_stack, source
from reconciler.stack.source import format_loc, parse_yaml, read_yaml

Problems = Callable[..., list[str]]


def test_duplicate_keys_are_errors(problems: Problems) -> None:
    text = """\
    stack: t
    workspaces:
      main:
        name: a
        name: b
    """
    assert problems(text) == ["stacks/x.yaml:5: workspaces.main.name: duplicate key 'name' (first at line 4)"]


def test_python_tags_are_rejected_without_running_anything(problems: Problems, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    text = f"""\
    stack: t
    workspaces:
      main: {{name: !!python/object/apply:os.system ["touch {marker}"]}}
    """
    assert problems(text) == [
        "stacks/x.yaml:3: workspaces.main.name: unsupported YAML tag '!!python/object/apply:os.system';"
        " allowed: !!map, !!seq, !!str, !!int, !!float, !!bool, !!null"
    ]
    assert not marker.exists()


def test_custom_tags_are_rejected(problems: Problems) -> None:
    assert problems("stack: !secret t\n") == [
        "stacks/x.yaml:1: stack: unsupported YAML tag '!secret';"
        " allowed: !!map, !!seq, !!str, !!int, !!float,"
        " !!bool, !!null"
    ]


def test_syntax_error_names_its_line(problems: Problems) -> None:
    text = """\
    stack: t
    workspaces:
      main:
        name: [a, b
    endpoints: {}
    """
    (issue,) = problems(text)
    assert issue.startswith("stacks/x.yaml:5: invalid YAML: ")


def test_bad_indentation_is_a_syntax_error(problems: Problems) -> None:
    (issue,) = problems("stack: t\nworkspaces:\n  main:\n    name: a\n   description: b\n")
    assert issue.startswith("stacks/x.yaml:5: invalid YAML: ")


def test_non_utf8_is_an_issue(write: Callable[..., str]) -> None:
    path = write("stack: t\n")
    Path(path).write_bytes(b"stack: t\nworkspaces:\n  main: {name: caf\xe9}\n")
    with pytest.raises(StackError) as info:
        load_stack(path, env={})
    assert [str(i) for i in info.value.issues] == [
        "stacks/x.yaml:3: not valid UTF-8 (byte 0xe9); save the file as UTF-8"
    ]


def test_missing_file_is_an_issue(write: Callable[..., str]) -> None:
    write("stack: t\n")
    with pytest.raises(StackError) as info:
        load_stack("stacks/nope.yaml", env={})
    assert str(info.value).startswith("stacks/nope.yaml: cannot read file: ")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "stacks/x.yaml:1: the file is empty; expected a mapping with 'stack' and the sections"),
        (
            "- a\n- b\n",
            "stacks/x.yaml:1: the file is a list; expected a mapping with 'stack' and the sections",
        ),
        (
            "just text\n",
            "stacks/x.yaml:1: the file is a string; expected a mapping with 'stack' and the sections",
        ),
    ],
)
def test_top_level_must_be_a_mapping(problems: Problems, text: str, message: str) -> None:
    (issue,) = problems(text)
    assert issue.startswith(message)


def test_non_string_keys_become_their_text() -> None:
    doc, issues = parse_yaml("1: a\non: b\n", "f.yaml")
    assert issues == [] and doc is not None
    assert doc.data == {"1": "a", "on": "b"}


def test_complex_keys_are_rejected() -> None:
    _, issues = parse_yaml("? [a, b]\n: c\n", "f.yaml")
    assert [str(i) for i in issues] == ["f.yaml:1: mapping keys must be plain strings"]


def test_lines_are_recorded_for_keys_and_values() -> None:
    doc, _ = parse_yaml("a:\n  b:\n    - x\n    - y: 1\n  c: >-\n    folded\n", "f.yaml")
    assert doc is not None
    assert doc.line(("a", "b")) == 2
    assert doc.line(("a", "b", 1, "y")) == 4
    assert doc.line(("a", "c")) == 5
    assert doc.line(("a", "b", 1, "nope")) == 4  # falls back to the closest parent
    assert doc.line(("a",), key=True) == 1


def test_scalars_keep_their_yaml_types_and_dates_stay_text() -> None:
    doc, _ = parse_yaml("a: 1\nb: 1.5\nc: true\nd: null\ne: 2024-01-02\nf: '3'\n", "f.yaml")
    assert doc is not None
    assert doc.data == {"a": 1, "b": 1.5, "c": True, "d": None, "e": "2024-01-02", "f": "3"}


def test_anchors_aliases_and_merge_keys() -> None:
    text = "base: &b {x: 1, y: 2}\nuse:\n  <<: *b\n  y: 3\nlist: [*b]\n"
    doc, issues = parse_yaml(text, "f.yaml")
    assert issues == [] and doc is not None
    assert doc.data["use"] == {"y": 3, "x": 1}
    assert doc.data["list"] == [{"x": 1, "y": 2}]


def test_recursive_alias_is_an_issue_not_a_crash() -> None:
    _, issues = parse_yaml("a: &a [1, *a]\n", "f.yaml")
    assert [str(i) for i in issues] == ["f.yaml:1: a[1]: an alias refers to a value that contains it"]


def test_alias_bomb_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(source, "MAX_VALUES", 10_000)
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]  # 10**9 values
    doc, issues = parse_yaml("\n".join(lines) + "\n", "f.yaml")
    assert doc is None
    assert [str(i) for i in issues] == [
        "f.yaml:4: a3: aliases expand the document to more than 10000 values (the value anchored here is"
        " used 11 times, expanding to more than 10000 values each); refusing to expand it"
    ]


def test_a_second_document_is_an_error() -> None:
    _, issues = parse_yaml("stack: a\n---\nstack: b\n", "f.yaml")
    assert [str(i) for i in issues] == [
        "f.yaml:2: invalid YAML: a stack file holds one document; found a second"
    ]


def test_read_yaml_accepts_a_bom(tmp_path: Path) -> None:
    path = tmp_path / "v.yaml"
    path.write_bytes(b"\xef\xbb\xbfa: 1\n")
    doc, issues = read_yaml(path, "v.yaml")
    assert issues == [] and doc is not None and doc.data == {"a": 1}


def test_format_loc() -> None:
    assert format_loc(("deployments", "chat", "depends_on", 0)) == "deployments.chat.depends_on[0]"
    assert format_loc(()) == ""


def test_an_unquoted_template_as_a_whole_value_is_named_with_the_quoted_form(problems: Problems) -> None:
    text = """\
    stack: t
    variables: {env: dev}
    workspaces:
      main: {name: {{ var.env }}}
    """
    assert problems(text) == [
        'stacks/x.yaml:4: workspaces.main.name: YAML reads an unquoted {{ var.env }} as a mapping; quote it:'
        ' name: "{{ var.env }}"'
    ]


def test_an_unquoted_template_in_a_flow_mapping_gets_a_hint_with_the_parse_error(problems: Problems) -> None:
    text = """\
    stack: t
    variables: {env: dev}
    workspaces:
      main: {name: {{ var.env }}-ws, description: d}
    """
    assert problems(text) == [
        "stacks/x.yaml:4: invalid YAML: did not find expected ',' or '}' (while parsing a flow mapping at"
        ' line 4); line 4 has an unquoted template: quote it: name: "{{ var.env }}-ws"'
    ]


def test_an_unquoted_template_in_a_block_mapping_gets_the_same_hint(problems: Problems) -> None:
    text = """\
    stack: t
    variables: {env: dev}
    workspaces:
      main:
        name: {{ var.env }}-ws
    """
    assert problems(text) == [
        "stacks/x.yaml:5: invalid YAML: did not find expected key (while parsing a block mapping at line 5);"
        ' line 5 has an unquoted template: quote it: name: "{{ var.env }}-ws"'
    ]
