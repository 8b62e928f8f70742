"""What every modelport resource shares: ``apiVersion``, metadata, strict camelCase parts.

A resource (``Deployment``, ``Experiment``...) is a pydantic model built from :class:`Spec` parts:
camelCase in documents (Kubernetes style), snake_case in Python, frozen, unknown fields refused.
:func:`parse_resource` validates a parsed document and turns pydantic's errors into one
:class:`~modelport.core.errors.InvalidInput` whose message names each bad field by its path in
the document (``spec.variants[1].weight``) and what was expected.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Final, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from modelport.core.errors import InvalidInput
from modelport.core.refs import validate_model_name

__all__ = ["API_VERSION", "Metadata", "Spec", "checked", "parse_duration", "parse_resource"]

API_VERSION = "modelport.io/v1"
"""The ``apiVersion`` of every modelport resource."""

_T = TypeVar("_T")
_R = TypeVar("_R", bound=BaseModel)


class Spec(BaseModel):
    """A part of a resource: camelCase in documents, frozen, unknown fields refused."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True
    )


class Metadata(Spec):
    """The resource's identity."""

    name: str
    """The resource's name (a deployment's is its public name: clients call
    ``/v2/models/{name}/infer``)."""

    labels: dict[str, str] = Field(default_factory=dict)
    """Free-form labels (team, cost centre...)."""

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        return checked(validate_model_name, name)


_UNITS: Final = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION: Final = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")


def parse_duration(value: object) -> float:
    """Seconds of a duration: a number of seconds, or text such as ``90s``, ``10m``, ``2h``, ``7d``.

    Raises:
        ValueError: Anything else, or a negative or non-finite number.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as 600, '10m' or '7d', got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    else:
        raise ValueError(f"expected a duration such as 600, '10m' or '7d', got {value!r}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"a duration must be a finite number of seconds >= 0, got {value!r}")
    return seconds


def parse_resource(model: type[_R], document: object) -> _R:
    """Validate a parsed document as the resource ``model``.

    Raises:
        InvalidInput: The document is not a valid resource of that kind; the message names
            every bad field by its path in the document and says what was expected.
    """
    kind = model.__name__
    if not isinstance(document, dict):
        raise InvalidInput(f"a {kind} document is a mapping, got {type(document).__name__}")
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        raise InvalidInput(_explain(exc, kind)) from None


def checked(check: Callable[[str], _T], value: str) -> _T:
    """Run one of core's checks inside a validator, its refusal turned into a ``ValueError``.

    pydantic reports a ``ValueError`` with the field's path, and lets any other exception escape
    without one.
    """
    try:
        return check(value)
    except InvalidInput as exc:
        raise ValueError(exc.message) from None


def _explain(exc: ValidationError, kind: str) -> str:
    problems = []
    for error in exc.errors(include_url=False):
        where = _path(error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "literal_error" and where in ("apiVersion", "kind"):
            message = f"expected {API_VERSION!r}" if where == "apiVersion" else f"expected {kind!r}"
        elif error["type"] == "extra_forbidden":
            message = "unknown field"
        given = error.get("input")
        if isinstance(given, str | int | float | bool) and error["type"] != "extra_forbidden":
            message += f" (got {_shown(given)})"
        problems.append(f"{where or 'the document'}: {message}")
    return f"invalid {kind}: " + "; ".join(problems)


def _path(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
