"""Resource documents: several per YAML file, JSON, and clear errors for what is not a resource."""

from __future__ import annotations

import pytest

from modelport.core.documents import load_documents
from modelport.core.errors import InvalidInput


def test_several_documents_in_one_file_and_empty_ones_skipped() -> None:
    text = "---\nkind: Deployment\nmetadata: {name: a}\n---\n---\nkind: Deployment\nmetadata:\n  name: b\n"
    docs = load_documents(text, "deploy.yaml")
    assert [d["metadata"]["name"] for d in docs] == ["a", "b"]


def test_json_is_read_as_well() -> None:
    assert load_documents('{"kind": "Deployment", "spec": {"x": [1, 2]}}', "body") == [
        {"kind": "Deployment", "spec": {"x": [1, 2]}}
    ]


def test_a_syntax_error_names_the_line_and_column() -> None:
    with pytest.raises(
        InvalidInput, match=r"deploy.yaml: not valid YAML at line 3, column 7: mapping values"
    ):
        load_documents("kind: Deployment\nspec:\n  a: b: c\n", "deploy.yaml")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no document"),
        ("---\n---\n", "no document"),
        ("- a\n- b\n", "document 1 is a list; expected a mapping"),
        ("kind: Deployment\n---\njust text\n", "document 2 is a str; expected a mapping"),
    ],
)
def test_what_is_not_a_resource_is_refused(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        load_documents(text, "f.yaml")


def test_python_objects_and_aliases_are_refused() -> None:
    with pytest.raises(InvalidInput, match="not valid YAML"):
        load_documents("a: !!python/object/apply:os.system ['true']\n", "f.yaml")
    bomb = "a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\n"
    with pytest.raises(InvalidInput, match="aliases .* are not allowed here"):
        load_documents(bomb, "f.yaml")
