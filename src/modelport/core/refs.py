"""References to registered models: ``NAME``, ``NAME@VERSION`` or ``NAME@ALIAS``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from modelport.core.errors import InvalidInput

__all__ = ["ModelRef", "validate_alias", "validate_model_name"]

_NAME = re.compile(r"^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$")
_ALIAS = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")


def validate_model_name(name: str) -> str:
    """Return ``name`` if it is a valid model name.

    Model names are 1-63 characters of lowercase letters, digits, ``.``, ``_`` and ``-``, starting
    and ending with a letter or digit (they become URL path segments and Kubernetes names).

    Raises:
        InvalidInput: The name breaks those rules.
    """
    if not _NAME.fullmatch(name):
        raise InvalidInput(
            f"invalid model name {name!r}: expected 1-63 lowercase letters, digits, '.', '_' "
            "or '-', starting and ending with a letter or digit"
        )
    return name


def validate_alias(alias: str) -> str:
    """Return ``alias`` if valid: a lowercase letter, then up to 62 letters, digits, ``_`` or ``-``.

    Raises:
        InvalidInput: The alias breaks those rules (an all-digit alias would read as a version).
    """
    if not _ALIAS.fullmatch(alias):
        raise InvalidInput(
            f"invalid alias {alias!r}: expected a lowercase letter followed by up to 62 lowercase "
            "letters, digits, '_' or '-'"
        )
    return alias


@dataclass(frozen=True, slots=True)
class ModelRef:
    """A model name with an optional version number or alias (never both)."""

    name: str
    version: int | None = None
    alias: str | None = None

    @classmethod
    def parse(cls, text: str) -> ModelRef:
        """Parse ``NAME``, ``NAME@VERSION`` or ``NAME@ALIAS``.

        Raises:
            InvalidInput: The text is not one of those forms.
        """
        name, sep, selector = text.partition("@")
        validate_model_name(name)
        if not sep:
            return cls(name=name)
        # isdecimal, not isdigit: int() cannot read superscripts such as '²'.
        if selector.isascii() and selector.isdecimal():
            version = int(selector)
            if version < 1:
                raise InvalidInput(f"invalid version in {text!r}: versions start at 1")
            return cls(name=name, version=version)
        return cls(name=name, alias=validate_alias(selector))

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}@{self.version}"
        if self.alias is not None:
            return f"{self.name}@{self.alias}"
        return self.name
