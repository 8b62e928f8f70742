"""Resource documents: several per YAML file, JSON, and clear errors for what is not a resource."""

from __future__ import annotations

import pytest

from modelport.core.documents import changes, load_documents
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


def test_changes_name_each_changed_leaf_by_its_path() -> None:
    before = {"spec": {"variants": [{"name": "a", "weight": 90}, {"name": "b", "weight": 10}]}}
    after = {
        "spec": {
            "variants": [{"name": "a", "weight": 50}, {"name": "b", "weight": 50}],
            "cache": {"enabled": True},
        }
    }
    assert changes(before, after) == [
        "spec.cache.enabled: (absent) -> true",
        "spec.variants[0].weight: 90 -> 50",
        "spec.variants[1].weight: 10 -> 50",
    ]
    assert changes(after, after) == []


def test_changes_of_a_creation_a_deletion_and_a_list_that_grew() -> None:
    doc = {"metadata": {"name": "x", "labels": {}}, "spec": {"v": [{"n": 1}], "urls": ["a"]}}
    assert changes(None, doc) == [
        'metadata.name: (absent) -> "x"',
        'spec.urls: (absent) -> ["a"]',
        "spec.v.length: (absent) -> 1",
        "spec.v[0].n: (absent) -> 1",
    ]
    grown = {
        "metadata": {"name": "x", "labels": {}},
        "spec": {"v": [{"n": 1}, {"n": 2}], "urls": ["a", "b"]},
    }
    assert changes(doc, grown) == [
        'spec.urls: ["a"] -> ["a", "b"]',
        "spec.v.length: 1 -> 2",
        "spec.v[1].n: (absent) -> 2",
    ]
    assert changes(doc, None)[0] == 'metadata.name: "x" -> (absent)'
