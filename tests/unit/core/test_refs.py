from __future__ import annotations

import pytest

from modelport.core.errors import InvalidInput
from modelport.core.refs import ModelRef, validate_alias, validate_model_name


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("iris", ModelRef("iris")),
        ("iris@3", ModelRef("iris", version=3)),
        ("iris@champion", ModelRef("iris", alias="champion")),
        ("fraud-v2.x_1@canary-2", ModelRef("fraud-v2.x_1", alias="canary-2")),
    ],
)
def test_parse(text: str, expected: ModelRef) -> None:
    assert ModelRef.parse(text) == expected
    assert str(expected) == text


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("Iris", "invalid model name"),
        ("", "invalid model name"),
        ("iris\n", "invalid model name"),
        ("-iris", "invalid model name"),
        ("a" * 64, "invalid model name"),
        ("iris@0", "versions start at 1"),
        ("iris@Champ", "invalid alias"),
        ("iris@champion\n", "invalid alias"),
        ("iris@", "invalid alias"),
        ("iris@²", "invalid alias"),  # a digit to str.isdigit, not to int()
        ("iris@١", "invalid alias"),  # Arabic-Indic one: decimal, but not ASCII
    ],
)
def test_parse_rejects(text: str, fragment: str) -> None:
    with pytest.raises(InvalidInput, match=fragment):
        ModelRef.parse(text)


def test_validators_return_their_argument() -> None:
    assert validate_model_name("a") == "a"
    assert validate_alias("b_2") == "b_2"
